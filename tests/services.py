"""Real servers for tests, started once per test run on free loopback ports.

tests/conftest.py loads this module as a pytest plugin, so its fixtures serve every test. A server
whose program is not installed skips the tests that need it, unless RELAYFLOW_REQUIRE_SERVICES is
set (CI sets it, so CI never skips them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(program: str) -> None:
    message = f"{program} is not installed (apt-get install {program})"
    if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server for this test run: `redis://127.0.0.1:PORT/0`."""
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("redis-server did not start within 10 s")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


def _postgres_bin() -> str | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps them apart), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(pg_ctl) if pg_ctl else None


def _as_postgres(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program; as root, as the `postgres` user (the server refuses root)."""
    if os.geteuid() == 0:
        args = ["su", "-s", "/bin/sh", "postgres", "-c", shlex.join(args)]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for this test run: `postgresql://postgres@127.0.0.1:PORT/postgres`.

    A fresh cluster in a temporary directory (trust authentication, loopback only, its socket
    in that directory), stopped and removed at the end of the run. As root, the programs run
    as the `postgres` user, who owns the directory.
    """
    bindir = _postgres_bin()
    if bindir is None:
        _missing("postgresql")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _missing("postgresql")
    base = tempfile.mkdtemp(prefix="relayflow-postgres-")
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    data, logfile = os.path.join(base, "data"), os.path.join(base, "log")
    pg_ctl = os.path.join(bindir, "pg_ctl")

    def log_text() -> str:
        with contextlib.suppress(OSError), open(logfile) as handle:
            return handle.read()[-4000:]
        return ""

    try:
        init = _as_postgres(
            [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"], 60
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed: {init.stdout}{init.stderr}")
        port = free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        # -w -t 20: pg_ctl waits until the server accepts connections, for 20 s at most.
        start = _as_postgres(
            [pg_ctl, "-D", data, "-l", logfile, "-o", options, "-w", "-t", "20", "start"], 30
        )
        if start.returncode != 0:
            pytest.fail(f"PostgreSQL did not start within 20 s: {start.stderr}\n{log_text()}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        # Also after a failed start: a server that came up late must not outlive the run.
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            _as_postgres([pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "20", "stop"], 30)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty database ``name`` on the PostgreSQL server of ``server_url``: its URL.

    Made anew (one left by an interrupted run is dropped first) and dropped afterwards.
    """
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (read from /proc, so Linux only).

    The Debian wrapper's `su` puts the broker in a session of its own, so the process group
    of a Popen with start_new_session does not hold it: follow parent ids instead.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _epmd_pids(epmd_port: int) -> list[int]:
    """The epmd daemons listening on ``epmd_port`` (private to one broker: see amqp_url)."""
    found = []
    marker = f"ERL_EPMD_PORT={epmd_port}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"epmd" not in cmdline.read().split(b"\0")[0]:
                    continue
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _kill_all(pids: list[int], timeout: float) -> None:
    """SIGTERM ``pids``, wait up to ``timeout`` for them to end, then SIGKILL the rest."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [pid for pid in pids if _alive(pid)]:
            return
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A private rabbitmq-server for this test run: `amqp://guest:guest@127.0.0.1:PORT//`.

    Skipped when rabbitmq-server is not installed, even with RELAYFLOW_REQUIRE_SERVICES: CI
    does not install it. The Debian wrapper runs the broker as the `rabbitmq` user, so its
    directories belong to that user. It gets its own epmd (ERL_EPMD_PORT) so that stopping
    it touches no other broker on the machine; only the processes it started are stopped.
    """
    if shutil.which("rabbitmq-server") is None:
        _missing("rabbitmq-server")
    if os.geteuid() != 0:
        pytest.skip("rabbitmq-server's Debian wrapper needs root to switch to its user")
    port = free_port()
    while port + 20000 > 65535:
        port = free_port()
    epmd_port = free_port()
    base = tempfile.mkdtemp(prefix="relayflow-rabbitmq-")
    os.chmod(base, 0o755)
    for sub in ("mnesia", "log"):
        os.mkdir(os.path.join(base, sub))
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", base], check=True)
    env = {
        **os.environ,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_NODENAME": f"rf{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_DIST_PORT": str(port + 20000),
        "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
        "RABBITMQ_LOG_BASE": f"{base}/log",
        "RABBITMQ_FEATURE_FLAGS_FILE": f"{base}/feature_flags",
        "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
        "ERL_EPMD_PORT": str(epmd_port),
    }
    process = subprocess.Popen(
        ["rabbitmq-server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def shut_down() -> None:
        pids = _process_tree(process.pid) + _epmd_pids(epmd_port)
        _kill_all(pids, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        _kill_all(_epmd_pids(epmd_port), 5)  # an epmd beam started late
        shutil.rmtree(base, ignore_errors=True)

    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            shut_down()
            pytest.fail("rabbitmq-server did not start within 30 s")
        time.sleep(0.1)
    try:
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        shut_down()
