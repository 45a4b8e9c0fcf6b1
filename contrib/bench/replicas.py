"""Several `relayflow server` replicas on one store, behind `balancer.py`, with workers.

Shared by the scale-out benchmarks (bench_queue.py --replicas, bench_takeover.py) and the
multi-replica process test (tests/replicas/). Also a private PostgreSQL server for the
benchmarks, started the way tests/services.py starts the test suite's: a fresh cluster in a
temporary folder, trust authentication, loopback only, stopped and removed afterwards.

    with postgres_server() as server:             # postgresql://postgres@127.0.0.1:PORT/postgres
        url = create_database(server, "bench1")
        with Cluster(folder, url, "redis://127.0.0.1:6379/0", replicas=3) as cluster:
            cluster.start_workers(2, concurrency=4)
            ...                                    # cluster.url is the balancer
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from balancer import Balancer  # noqa: E402  (a sibling script, not a package)

ROOT = HERE.parents[1]
EXAMPLES = ROOT / "contrib" / "examples"
EXE = str(Path(sys.executable).with_name("relayflow"))
QUEUE = "fnf-demo"
SERVING = re.compile(r"serving the API on http://[^\s:]+:(?P<port>\d+)")
BALANCING = re.compile(r"balancing on (?P<url>http://\S+)")
DEPLOYED_HAPROXY = ROOT / "contrib" / "deploy" / "haproxy.cfg"


def machine_speed() -> dict[str, float]:
    """How this machine runs now: a pure-Python loop's time, the load, and the CPU time so far.

    A shared virtual machine changes speed from hour to hour, and figures from two runs
    compare only when these compare too. The benchmarks take them at their start and end; the
    CPU time lets `machine_line` say how much of the run's CPU time the hypervisor gave to
    others (steal), which slows every wake-up without showing in the loop's time.
    """
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i
    speed = {"load_average": os.getloadavg()[0], "loop_seconds": time.perf_counter() - started}
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as stat:  # Linux: cpu user nice system idle iowait irq ...
            ticks = [int(v) for v in stat.readline().split()[1:]]
        speed["cpu_ticks"] = float(sum(ticks[:8]))  # guest time is counted in user already
        speed["steal_ticks"] = float(ticks[7])
    return speed


def machine_line(start: dict[str, float], end: dict[str, float]) -> str:
    """`machine_speed` at a run's start and end, as the line the benchmarks print."""
    line = (
        "machine: a Python loop of 3 million additions took "
        f"{start['loop_seconds']:.2f} s at the start and {end['loop_seconds']:.2f} s at the end "
        f"(lower is faster); load average {start['load_average']:.1f} and "
        f"{end['load_average']:.1f}"
    )
    if "cpu_ticks" in start and "cpu_ticks" in end and end["cpu_ticks"] > start["cpu_ticks"]:
        stolen = end["steal_ticks"] - start["steal_ticks"]
        share = stolen / (end["cpu_ticks"] - start["cpu_ticks"])
        line += f"; CPU time stolen by the hypervisor during the run (vmstat's st): {share:.1%}"
    return line


def free_port() -> int:
    """A TCP port free on the loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without RELAYFLOW_* variables (they would override the config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
    return {**env, **extra}


# -- PostgreSQL ------------------------------------------------------------------------------


def _postgres_bin() -> str:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.dirname(pg_ctl)


def _as_postgres(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    # The server refuses to run as root: as root, run its programs as the `postgres` user.
    if os.geteuid() == 0:
        args = ["su", "-s", "/bin/sh", "postgres", "-c", shlex.join(args)]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def postgres_server(*, fsync: bool = True, settings: str = "") -> Iterator[str]:
    """A private PostgreSQL server while the block runs; yields its `postgres` database's URL.

    Args:
        fsync: keep PostgreSQL's fsync on (the default, as in production); the test suite
            turns it off.
        settings: more server settings, as `-c name=value` options (for example
            `-c shared_preload_libraries=pg_stat_statements` to see where the statements go).

    Raises:
        SystemExit: PostgreSQL is not installed or does not start.
    """
    bindir = _postgres_bin()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise SystemExit("running as root needs the `postgres` user") from None
    base = tempfile.mkdtemp(prefix="relayflow-bench-postgres-")
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    data, logfile = os.path.join(base, "data"), os.path.join(base, "log")
    pg_ctl = os.path.join(bindir, "pg_ctl")
    try:
        init = _as_postgres(
            [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"], 60
        )
        if init.returncode != 0:
            raise SystemExit(f"initdb failed: {init.stdout}{init.stderr}")
        port = free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not fsync:
            options += " -c fsync=off"
        if settings:
            options += f" {settings}"
        start = _as_postgres(
            [pg_ctl, "-D", data, "-l", logfile, "-o", options, "-w", "-t", "20", "start"], 30
        )
        if start.returncode != 0:
            raise SystemExit(f"PostgreSQL did not start within 20 s: {start.stderr}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            _as_postgres([pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "20", "stop"], 30)
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create the empty database ``name`` on the server of ``server_url``; returns its URL."""
    import psycopg  # only the PostgreSQL runs need it

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server_url: str, name: str) -> None:
    """Drop the database ``name`` on the server of ``server_url``, closing its sessions."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_pid(url: str) -> int:
    """The postmaster's process id of the server of ``url`` (its backends are its children)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    # As root, the data folder belongs to `postgres`; root reads it all the same.
    return int(Path(row[0], "postmaster.pid").read_text().split()[0])


def commits(url: str) -> int:
    """Transactions committed in the database of ``url`` so far (pg_stat_database)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        # The statistics are collected at the end of each transaction of a backend and
        # flushed at most every second: ask for a fresh snapshot.
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def settled_commits(url: str, seconds: float = 5.0) -> int:
    """`commits(url)` once two readings 0.3 s apart agree (each reading adds one)."""
    last = commits(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = commits(url)
        if now - last <= 1:
            return last
        last = now
    return last


# -- processes -------------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM (after SIGCONT, should it be frozen), wait, then SIGKILL its session."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def spawn(command: list[str], folder: Path, log: str, **env: str) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``folder``, its output appended to ``folder/log``."""
    with (folder / log).open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(**env),
            start_new_session=True,  # Ctrl-C reaches the caller only; it stops the rest
        )


# -- measuring and process bookkeeping for the benchmarks ----------------------------------


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    """Count, p50, p90, p99 and mean of durations in seconds, in milliseconds."""
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p90_ms": percentile(samples, 90) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its living descendants, from /proc.

    For this script itself, only its own time: the processes it started are counted apart.
    """
    if pid == os.getpid():
        return time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


class CpuMeter:
    """CPU seconds spent by named processes (and by this one) between start() and stop()."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = {**processes, "this script (client)": os.getpid()}

    def __enter__(self) -> dict[str, float]:
        self.before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self.spent: dict[str, float] = {}
        return self.spent

    def __exit__(self, *exc: object) -> None:
        for name, pid in self.processes.items():
            self.spent[name] = cpu_seconds(pid) - self.before[name]


class Processes:
    """Every process this script starts, stopped in reverse order on the way out."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], folder: Path, log: str, **env: str) -> Any:
        process = spawn(command, folder, log, **env)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        code = stop_process(process)
        if process in self.started:
            self.started.remove(process)
        return code

    def stop_all(self) -> None:
        while self.started:
            self.stop(self.started[-1])


def start_redis(procs: Processes, folder: Path) -> tuple[str, int]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    process = procs.start(command, folder, "redis.log")
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as c:
            c.sendall(b"PING\r\n")
            if c.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:{port}", process.pid
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start:\n{(folder / 'redis.log').read_text()}")
        time.sleep(0.05)


def ready(url: str, timeout: float = 1.0) -> bool:
    """Whether `GET /ready` answers 200 at ``url``."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/ready", timeout=timeout).status_code == 200
    return False


def local_haproxy_config(
    text: str,
    port: int,
    replicas: list[tuple[str, int]],
    stats: Path | None = None,
    *,
    route: bool = True,
) -> str:
    """contrib/deploy/haproxy.cfg's ``text`` with only its addresses made local.

    It listens on 127.0.0.1:``port``; the first backend's servers, in order, become
    ``replicas`` (host, port), and a server of the same name in another backend follows; servers
    beyond ``replicas`` are dropped. The stats socket moves to ``stats`` (dropped when None),
    syslog goes (haproxy's own errors go to its stderr). The checks, timeouts, retries and
    balancing stay as the example has them, except that ``route=False`` drops the routing by
    execution (every call then goes to the least busy replica: the A/B of the routing).

    Raises:
        ValueError: the example no longer has the one bind, or fewer servers than ``replicas``.
    """
    out: list[str] = []
    addresses: dict[str, str] = {}
    pending = iter(replicas)
    binds = 0
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        indent = line[: len(line) - len(line.lstrip())]
        if words[:1] == ["bind"]:
            binds += 1
            line = f"{indent}bind 127.0.0.1:{port}"
        elif words[:1] == ["server"]:
            name = words[1]
            if name not in addresses:
                replica = next(pending, None)
                addresses[name] = "" if replica is None else f"{replica[0]}:{replica[1]}"
            if not addresses[name]:
                continue
            line = f"{indent}{' '.join([words[0], name, addresses[name], *words[3:]])}"
        elif words[:2] == ["stats", "socket"]:
            if stats is None:
                continue
            line = f"{indent}{' '.join(['stats', 'socket', str(stats), *words[3:]])}"
        elif words[:2] == ["log", "/dev/log"] or (words[:1] == ["use_backend"] and not route):
            continue
        out.append(line)
    if binds != 1:
        raise ValueError(f"haproxy.cfg: expected one bind, found {binds}")
    if next(pending, None) is not None:
        raise ValueError("haproxy.cfg: fewer servers than replicas")
    return "\n".join(out) + "\n"


def haproxy_path() -> str | None:
    """Where haproxy is installed (Debian puts it in /usr/sbin, often not on PATH), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")


class Cluster:
    """``replicas`` `relayflow server` processes on one store, behind a balancer.

    Args:
        folder: where the configuration, the logs and the workers' handler go.
        store: the store URL every replica is given.
        transport: the `[integrations.mns]` broker URL.
        replicas: how many servers.
        lease_seconds: `[engine] lease_seconds`; None leaves the store's default.
        poll_seconds: `[engine] poll_seconds`; None leaves the default.
        visibility_timeout: the broker's and the workers' visibility timeout, in seconds.
        client_timeout: `[client] timeout_seconds` of the workers.
        balancer: "thread" runs balancer.py in a thread of the caller, "process" as a
            process of its own (its CPU is then apart from the caller's), "haproxy" runs
            Debian's haproxy with the settings of contrib/deploy/haproxy.cfg (see
            `haproxy_path`); None runs none, and `url` is the first replica's own.
        handlers: extra handler modules for the workers ({file name: source}).
        extra_toml: more configuration for every replica (tables after `[integrations.mns]`).
        route: with haproxy, route the calls of one execution to one replica as the example
            does (see `local_haproxy_config`); False sends each to the least busy one.
    """

    def __init__(
        self,
        folder: Path,
        store: str,
        transport: str,
        replicas: int = 3,
        *,
        lease_seconds: float | None = 3,
        poll_seconds: float | None = 0.5,
        visibility_timeout: float = 2,
        client_timeout: float = 10,
        balancer: str | None = "thread",
        handlers: dict[str, str] | None = None,
        extra_toml: str = "",
        route: bool = True,
    ) -> None:
        self.folder, self.store, self.transport = folder, store, transport
        self.route = route
        self.count = replicas
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "seed_worker.py", folder)
        for name, source in (handlers or {}).items():
            (folder / name).write_text(source, encoding="utf-8")
        # Without access keys a replica answers only requests addressed to it (the Host
        # header names its address and port, against DNS rebinding), and every replica also
        # answers to `localhost:PORT`. So the replicas listen on one port, each on its own
        # loopback address (127.0.0.2, .3, ...), the balancer on 127.0.0.1 and that port,
        # and clients of the balancer call http://localhost:PORT.
        self.port = free_port()
        self.hosts = [f"127.0.0.{2 + i}" for i in range(replicas)]
        engine = f'[engine]\nstore = "{store}"\n'
        if lease_seconds is not None:
            engine += f"lease_seconds = {lease_seconds}\n"
        if poll_seconds is not None:
            engine += f"poll_seconds = {poll_seconds}\n"
        self.engine_toml = (
            f'{engine}\n[integrations.mns]\ntransport = "{transport}"\n'
            f"transport_options = {{ visibility_timeout = {visibility_timeout} }}\n"
            f"{extra_toml}"
        )
        self.configs = []
        for i, host in enumerate(self.hosts):
            config = folder / f"replica{i}.toml"
            config.write_text(
                f'{self.engine_toml}\n[server]\nhost = "{host}"\nport = {self.port}\n',
                encoding="utf-8",
            )
            self.configs.append(config)
        self.client_timeout = client_timeout
        if balancer not in ("thread", "process", "haproxy", None):
            raise ValueError(
                f"balancer must be 'thread', 'process', 'haproxy' or None, got {balancer!r}"
            )
        self.balancer_mode = balancer
        self.servers: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.balancer: Balancer | None = None
        self.balancer_proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.worker_config = folder / "worker.toml"

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- starting ------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the replicas at once (they race to create the schema), then the balancer."""
        self.servers = [self._spawn_server(i, config) for i, config in enumerate(self.configs)]
        for i in range(self.count):
            self._wait_until_ready(i, timeout)
        backends = [(host, self.port) for host in self.hosts]
        if self.balancer_mode is None:
            self.url = self.endpoints[0]
        elif self.balancer_mode == "process":
            args = [sys.executable, str(HERE / "balancer.py"), "--port", str(self.port)]
            for host, port in backends:
                args += ["--backend", f"{host}:{port}"]
            self.balancer_proc = spawn(args, self.folder, "balancer.log")
            self._wait_for_log(self.balancer_proc, "balancer.log", BALANCING, timeout)
        elif self.balancer_mode == "haproxy":
            self._start_haproxy(backends, timeout)
        else:
            self.balancer = Balancer(backends, port=self.port).start_in_thread()
        if self.balancer_mode is not None:
            self.url = f"http://localhost:{self.port}"
        self.worker_config.write_text(
            self.engine_toml
            + f'\n[client]\nendpoint = "{self.url}"\ntimeout_seconds = {self.client_timeout}\n',
            encoding="utf-8",
        )

    def _spawn_server(self, index: int, config: Path) -> subprocess.Popen[bytes]:
        """Start replica ``index`` with its configuration file (log: ``server{index}.log``)."""
        return spawn([EXE, "server", "--config", str(config)], self.folder, f"server{index}.log")

    def _start_haproxy(self, backends: list[tuple[str, int]], timeout: float) -> None:
        """haproxy in front of ``backends``, as contrib/deploy/haproxy.cfg sets it up."""
        exe = haproxy_path()
        if exe is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
        config = self.folder / "haproxy.cfg"
        config.write_text(
            local_haproxy_config(
                DEPLOYED_HAPROXY.read_text(encoding="utf-8"), self.port, backends, route=self.route
            ),
            encoding="utf-8",
        )
        self.balancer_proc = spawn([exe, "-db", "-f", str(config)], self.folder, "balancer.log")
        deadline = time.monotonic() + timeout
        while not ready(f"http://localhost:{self.port}"):
            if self.balancer_proc.poll() is not None:
                raise RuntimeError(
                    f"haproxy exited with {self.balancer_proc.returncode}:\n"
                    + (self.folder / "balancer.log").read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy is not routing within {timeout} s")
            time.sleep(0.05)

    def _wait_for_log(
        self, process: subprocess.Popen[bytes], log: str, pattern: re.Pattern[str], timeout: float
    ) -> re.Match[str]:
        path = self.folder / log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text(encoding="utf-8", errors="replace")
            found = pattern.search(text)
            if found:
                return found
            if process.poll() is not None:
                raise RuntimeError(f"{log}: the process exited with {process.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError(f"{log}: not started within {timeout} s:\n{path.read_text()[-3000:]}")

    def _wait_until_ready(self, index: int, timeout: float) -> None:
        self._wait_for_log(self.servers[index], f"server{index}.log", SERVING, timeout)
        deadline = time.monotonic() + timeout
        while not ready(self.endpoints[index]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {index} is not ready within {timeout} s")
            time.sleep(0.05)

    @property
    def endpoints(self) -> list[str]:
        """Each replica's own `http://127.0.0.N:PORT`, by index."""
        return [f"http://{host}:{self.port}" for host in self.hosts]

    def pids(self) -> dict[str, int]:
        """The process ids of the replicas, workers and balancer process, by name."""
        found = {f"replica {i}": server.pid for i, server in enumerate(self.servers)}
        found.update({f"worker {i}": worker.pid for i, worker in enumerate(self.workers)})
        if self.balancer_proc is not None:
            found["balancer"] = self.balancer_proc.pid
        return found

    def alive(self) -> list[int]:
        """Indexes of the replicas still running (frozen ones included)."""
        return [i for i, server in enumerate(self.servers) if server.poll() is None]

    def start_workers(
        self, count: int, concurrency: int = 2, handler: str = "seed_worker:handle"
    ) -> None:
        """Start ``count`` `relayflow worker` processes reporting through the balancer."""
        command = [EXE, "worker", QUEUE, "--handler", handler, "--concurrency", str(concurrency)]
        command += ["--config", str(self.worker_config)]
        first = len(self.workers)
        for n in range(first, first + count):
            self.workers.append(spawn(command, self.folder, f"worker{n}.log"))

    # -- faults --------------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL replica ``index`` and reap it."""
        self.servers[index].send_signal(signal.SIGKILL)
        self.servers[index].wait(timeout=10)

    def freeze(self, index: int) -> None:
        """SIGSTOP replica ``index``."""
        self.servers[index].send_signal(signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        """SIGCONT replica ``index``."""
        self.servers[index].send_signal(signal.SIGCONT)

    # -- stopping ------------------------------------------------------------------------------

    def stop_workers(self) -> list[int]:
        """Stop every worker; their exit codes."""
        codes = [stop_process(worker) for worker in self.workers]
        self.workers = []
        return codes

    def stop(self) -> dict[str, Any]:
        """Stop workers, balancer and replicas; the replicas' exit codes (None: not started)."""
        self.stop_workers()
        if self.balancer is not None:
            self.balancer.stop_thread()
            self.balancer = None
        if self.balancer_proc is not None:
            stop_process(self.balancer_proc)
            self.balancer_proc = None
        codes = [stop_process(server) for server in self.servers]
        self.servers = []
        return {"replicas": codes}

    def logs(self, tail: int = 2000) -> str:
        """The end of every log in the folder, for a failure's message."""
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)
