"""Benchmark the seed scenario on real queues: executions per second, report-to-message latency.

The seed scenario is contrib/examples/seed-three-tasks.yaml: three serial waitForCallback tasks
on the queue `fnf-demo`. For each transport (the embedded `relayflow-sqlite://` and a
redis-server this script starts on a free port), the script starts `relayflow server` in a
temporary folder (SQLite store, port 0, `[integrations.mns] transport = ...`, no access keys)
and measures:

1. ``latency``: ReportTaskSucceeded for the first task -> the second task's message received by
   a kombu consumer in this process, one execution after the other, with no worker process
   (this script is the worker). The clock starts just before the report is sent and stops
   when the consumer has the message in hand, so it covers the HTTP round trip, the engine's
   commit, the publish and the consumer's receive. On the embedded transport the consumer
   is woken by the producer's doorbell (see relayflow_mns.doorbell).
2. ``throughput``: ``--workers`` processes of `relayflow worker fnf-demo --handler
   seed_worker:handle --concurrency N` serve ``--count`` executions, started through
   `relayflow.client.Client` in threads (``--in-flight`` calls at once); the figure is completed
   executions per second, from the first start until the last execution has Succeeded.
   Then ``--sequential`` executions run one at a time for the end-to-end latency of one.
   The CPU time of every process taking part (server, workers, redis-server, this script's own
   client calls) is read from /proc around the run.

Throughput runs ``--rounds`` times (default 3), the two transports and the reference in turn,
each round with fresh processes; the table gives the median and every round, and the ratio to
the reference round by round. On a shared machine one run can be 20 % off the next: taking
turns spreads a noisy neighbour over all three.

The reference, in the same run and on the same redis-server (another database): a Celery
chain of three tasks doing the same jobs, one `celery worker -c 2 --pool prefork` process,
Redis as broker and result backend: chains per second for ``--count`` chains submitted at
once, and the latency of one chain, one after the other. Every process started here
(servers, workers, redis-server, the Celery worker) is stopped at the end, errors included.

    .venv/bin/python contrib/bench/bench_queue.py [--count 500] [--concurrency 4]
        [--workers 2] [--latency 200] [--sequential 50] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from kombu import Connection, Consumer, Queue

from relayflow.client import Client
from relayflow_mns import sqlite_transport  # noqa: F401  (registers relayflow-sqlite)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "contrib" / "examples"
EXE = str(Path(sys.executable).with_name("relayflow"))
CELERY = str(Path(sys.executable).with_name("celery"))
QUEUE = "fnf-demo"
FLOW = "seed"
SERVING = re.compile(r"serving the API on http://[^\s:]+:(?P<port>\d+)")
EXPECTED = {"rows": [{"id": i, "seen": True} for i in (1, 2, 3)], "loaded": 3}

CELERY_TASKS = '''\
"""The seed scenario's three jobs as a Celery chain: extract -> transform -> load."""

import os

from celery import Celery

URL = os.environ["BENCH_CELERY_REDIS"]
app = Celery("bench_celery_tasks", broker=URL, backend=URL)
app.conf.update(
    task_default_queue="bench-celery",
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
    result_expires=600,
)


@app.task
def extract(source):
    return {"rows": [{"id": 1}, {"id": 2}, {"id": 3}]}


@app.task
def transform(local):
    return {"rows": [dict(row, seen=True) for row in local["rows"]]}


@app.task
def load(local):
    return {"rows": local["rows"], "loaded": len(local["rows"])}
'''


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary_ms(samples: list[float]) -> dict[str, float]:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM, wait, then SIGKILL the process (and its session, for Celery's children)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


class Processes:
    """Every process this script starts, stopped in reverse order on the way out."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], folder: Path, log: str, **env: str) -> Any:
        out = (folder / log).open("ab")
        process = subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}, **env},
            start_new_session=True,  # Ctrl-C reaches this script only; it stops the rest
        )
        out.close()
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


class Topology:
    """`relayflow server` on one transport, and the worker processes when asked for."""

    def __init__(self, procs: Processes, folder: Path, transport: str) -> None:
        self.procs, self.folder, self.transport = procs, folder, transport
        folder.mkdir(parents=True)
        shutil.copy(EXAMPLES / "seed_worker.py", folder)
        self.config = folder / "relayflow.toml"
        self.config.write_text(
            f'[engine]\nstore = "sqlite:///{folder}/store.db"\n\n[server]\nport = 0\n\n'
            f'[integrations.mns]\ntransport = "{transport}"\n',
            encoding="utf-8",
        )
        self.server = procs.start(
            [EXE, "server", "--config", str(self.config)], folder, "server.log"
        )
        self.port = self._wait_for_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with self.config.open("a", encoding="utf-8") as config:
            config.write(f'\n[client]\nendpoint = "{self.endpoint}"\n')
        self.workers: list[subprocess.Popen[bytes]] = []

    def _wait_for_port(self, timeout: float = 30) -> int:
        log = self.folder / "server.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"relayflow server exited:\n{log.read_text()}")
            found = SERVING.search(log.read_text(encoding="utf-8", errors="replace"))
            if found:
                port = int(found["port"])
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                        return port
            time.sleep(0.05)
        raise SystemExit(f"relayflow server did not start within {timeout} s:\n{log.read_text()}")

    def start_workers(self, count: int, concurrency: int) -> None:
        command = [EXE, "worker", QUEUE, "--handler", "seed_worker:handle"]
        command += ["--concurrency", str(concurrency), "--config", str(self.config)]
        for n in range(count):
            self.workers.append(self.procs.start(command, self.folder, f"worker{n}.log"))

    def stop(self) -> int:
        for worker in self.workers:
            self.procs.stop(worker)
        return self.procs.stop(self.server)


# -- 1. report -> next message --------------------------------------------------------------


class Inbox:
    """A kombu consumer of `fnf-demo` in this process; `take()` waits for the next message."""

    def __init__(self, transport: str, options: dict[str, Any]) -> None:
        self.connection = Connection(transport, transport_options=options)
        self.connection.ensure_connection(max_retries=3)
        self.messages: list[Any] = []
        self.consumer = Consumer(
            self.connection.channel(),
            queues=[Queue(QUEUE, routing_key=QUEUE)],
            on_message=self.messages.append,
            no_ack=False,
        )
        self.consumer.qos(prefetch_count=1)
        self.consumer.consume()

    def take(self, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while not self.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no message came within the timeout")
            with contextlib.suppress(TimeoutError, socket.timeout):
                self.connection.drain_events(timeout=min(left, 1.0))
        return self.messages.pop(0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.cancel()
        self.connection.release()


def bench_latency(top: Topology, count: int, label: str, options: dict[str, Any]) -> dict[str, Any]:
    """Report task 1, time until task 2's message is received; then finish the execution."""
    inbox = Inbox(top.transport, options)
    latencies: list[float] = []
    round_trips: list[float] = []
    try:
        with Client(top.endpoint) as client:
            for n in range(count):
                name = f"lat-{label}-{n:05d}"
                client.start_execution(FLOW, {"source": name}, name=name)
                first = inbox.take()
                token = first.headers["x-relayflow-task-token"]
                assert first.headers["x-relayflow-step"] == "extract", first.headers
                first.ack()
                began = time.perf_counter()
                client.report_task_succeeded(token, {"rows": [{"id": 1}]})
                answered = time.perf_counter()
                second = inbox.take()
                received = time.perf_counter()
                assert second.headers["x-relayflow-execution"] == name, second.headers
                assert second.headers["x-relayflow-step"] == "transform", second.headers
                latencies.append(received - began)
                round_trips.append(answered - began)
                second.ack()
                client.report_task_succeeded(second.headers["x-relayflow-task-token"], {})
                third = inbox.take()
                third.ack()
                client.report_task_succeeded(third.headers["x-relayflow-task-token"], {"count": 1})
    finally:
        inbox.close()
    return {
        "report_to_next_message": summary_ms(latencies),
        "report_round_trip": summary_ms(round_trips),
    }


# -- 2. executions per second ---------------------------------------------------------------


def bench_throughput(
    top: Topology, count: int, in_flight: int, prefix: str, others: dict[str, int]
) -> dict:
    """Start ``count`` executions, wait until every one has Succeeded; executions per second.

    The calls go through `relayflow.client.Client`, one per thread (``in_flight`` threads):
    the synchronous client costs about 0.4 ms of CPU a call here, where the async one, with
    many calls in flight, costs several times that and would measure the load generator.
    """
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(top.endpoint, timeout=120)
        return local.client

    def start(name: str) -> None:
        client().start_execution(FLOW, {"source": name}, name=name)

    def finish(name: str) -> Any:
        return client().wait_for_execution(FLOW, name, timeout=120)

    names = [f"{prefix}-{n:06d}" for n in range(count)]
    processes = {"relayflow server": top.server.pid, **others}
    processes.update({f"worker {n}": w.pid for n, w in enumerate(top.workers)})
    with ThreadPoolExecutor(in_flight) as pool, CpuMeter(processes) as cpu:
        began = time.perf_counter()
        list(pool.map(start, names))
        started = time.perf_counter()
        done = list(pool.map(finish, names))
        finished = time.perf_counter()
    wrong = [e.name for e in done if not e.succeeded or e.output != EXPECTED]
    if wrong:
        raise RuntimeError(f"{len(wrong)} executions did not succeed as expected: {wrong[:5]}")
    durations = [
        (e.stopped_time - e.started_time).total_seconds()
        for e in done
        if e.stopped_time and e.started_time
    ]
    return {
        "executions": count,
        "seconds": finished - began,
        "executions_per_s": count / (finished - began),
        "all_started_after_s": started - began,
        "execution_duration_under_load": summary_ms(durations),
        "cpu_seconds": cpu,
    }


def bench_sequential(endpoint: str, count: int, prefix: str) -> dict[str, float]:
    """One execution at a time: start -> Succeeded seen by the client."""
    samples = []
    with Client(endpoint, timeout=60) as client:
        for n in range(count):
            name = f"{prefix}-{n:05d}"
            began = time.perf_counter()
            client.start_execution(FLOW, {"source": name}, name=name)
            done = client.wait_for_execution(FLOW, name, timeout=60)
            samples.append(time.perf_counter() - began)
            assert done.succeeded and done.output == EXPECTED, (name, done.status)
    return summary_ms(samples)


def bench_transport(
    procs: Processes,
    folder: Path,
    transport: str,
    args: argparse.Namespace,
    others: dict[str, int],
    full: bool,
) -> dict[str, Any]:
    """One round on one transport: throughput; with ``full``, latency and one-at-a-time too."""
    top = Topology(procs, folder, transport)
    figures: dict[str, Any] = {"transport": transport}
    try:
        with Client(top.endpoint) as client:
            client.create_flow(FLOW, (EXAMPLES / "seed-three-tasks.yaml").read_text())
        if full:
            figures["latency"] = bench_latency(top, args.latency, "lat", {})
        top.start_workers(args.workers, args.concurrency)
        figures["throughput"] = bench_throughput(top, args.count, args.in_flight, "tp", others)
        if full:
            figures["sequential"] = bench_sequential(top.endpoint, args.sequential, "seq")
    finally:
        figures["server_exit_code"] = top.stop()
    return figures


# -- 3. the Celery reference ----------------------------------------------------------------


def bench_celery(
    procs: Processes,
    where: Path,
    redis: str,
    redis_pid: int,
    args: argparse.Namespace,
    full: bool,
) -> dict:
    """One round of the reference: chains per second; with ``full``, one at a time too."""
    where.mkdir(parents=True)
    (where / "bench_celery_tasks.py").write_text(CELERY_TASKS, encoding="utf-8")
    url = f"{redis}/1"
    os.environ["BENCH_CELERY_REDIS"] = url
    if "bench_celery_tasks" in sys.modules:  # a later round: a fresh app (the last was closed)
        tasks = importlib.reload(sys.modules["bench_celery_tasks"])
    else:
        sys.path.insert(0, str(where))
        import bench_celery_tasks as tasks  # type: ignore[import-not-found]
    from celery import chain

    command = [CELERY, "-A", "bench_celery_tasks", "worker", "-c", "2", "--pool", "prefork"]
    command += ["-Q", "bench-celery", "-l", "warning", "--without-gossip", "--without-mingle"]
    command += ["--without-heartbeat"]
    worker = procs.start(command, where, "celery.log", BENCH_CELERY_REDIS=url)
    figures: dict[str, Any] = {"broker": url, "worker": "1 process, prefork -c 2"}

    def one(n: int) -> Any:
        return chain(tasks.extract.s(f"c{n}"), tasks.transform.s(), tasks.load.s()).apply_async()

    try:
        one(-1).get(timeout=60)  # the worker is up and the connections are made
        meter = CpuMeter({"celery worker": worker.pid, "redis-server": redis_pid})
        with meter as cpu:
            began = time.perf_counter()
            results = [one(n) for n in range(args.count)]
            for result in results:
                assert result.get(timeout=120) == EXPECTED
            seconds = time.perf_counter() - began
        figures["throughput"] = {
            "chains": args.count,
            "seconds": seconds,
            "chains_per_s": args.count / seconds,
            "cpu_seconds": cpu,
        }
        if full:
            samples = []
            for n in range(args.sequential):
                began = time.perf_counter()
                assert one(n).get(timeout=60) == EXPECTED
                samples.append(time.perf_counter() - began)
            figures["sequential"] = summary_ms(samples)
    finally:
        with contextlib.suppress(Exception):
            tasks.app.close()
        figures["worker_exit_code"] = procs.stop(worker)
    return figures


# -- output ---------------------------------------------------------------------------------


def print_table(figures: dict[str, Any]) -> None:
    print(
        f"seed scenario (3 serial waitForCallback tasks on '{QUEUE}'), {os.cpu_count()} cores; "
        f"{figures['count']} executions, {figures['workers']} `relayflow worker` processes "
        f"x --concurrency {figures['concurrency']}, {figures['in_flight']} starts in flight"
    )
    rounds = figures["rounds"]
    rate_key = {"sqlite": "executions_per_s", "redis": "executions_per_s", "celery": "chains_per_s"}

    def rates(key: str) -> list[float]:
        return [r[key][rate_key[key]] for r in rounds]

    def cpu_ms(key: str) -> list[float]:
        done = [r[key].get("executions", r[key].get("chains", 1)) for r in rounds]
        spent = [sum(r[key]["cpu_seconds"].values()) for r in rounds]
        return [s / d * 1000 for s, d in zip(spent, done, strict=True)]

    head = (
        f"{'':<32} {'exec/s':>7} {'each round':>17} {'CPU/exec':>9} "
        f"{'report->next msg p50':>21} {'p99':>8} {'one at a time p50':>18}"
    )
    print(head)
    print("-" * len(head))
    titles = {
        "sqlite": "relayflow, embedded SQLite",
        "redis": "relayflow, Redis",
        "celery": "Celery chain, same Redis (ref.)",
    }
    for key, title in titles.items():
        t = figures[key]
        each = "/".join(f"{v:.0f}" for v in rates(key))
        latency = t.get("latency", {}).get("report_to_next_message")
        if latency:
            lat = f"{latency['p50_ms']:>18.2f} ms {latency['p99_ms']:>5.2f} ms"
        else:
            lat = f"{'-':>21} {'-':>8}"
        print(
            f"{title:<32} {statistics.median(rates(key)):>7,.0f} {each:>17} "
            f"{statistics.median(cpu_ms(key)):>6.2f} ms {lat} "
            f"{t['sequential']['p50_ms']:>15.1f} ms"
        )
    print()
    for key in ("sqlite", "redis"):
        ratios = [a / b for a, b in zip(rates(key), rates("celery"), strict=True)]
        print(
            f"{titles[key]} / Celery, round by round: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (median {statistics.median(ratios):.2f})"
        )
    print()
    for key in ("sqlite", "redis"):
        t = figures[key]
        rt = t["latency"]["report_round_trip"]
        tp = t["throughput"]
        print(
            f"{key}: ReportTaskSucceeded round trip p50 {rt['p50_ms']:.2f} ms; "
            f"one execution under load p50 {tp['execution_duration_under_load']['p50_ms']:.0f} ms;"
            f" one at a time p99 {t['sequential']['p99_ms']:.1f} ms; "
            f"server exit code {t['server_exit_code']}"
        )
    c = figures["celery"]
    print(
        f"celery: one chain at a time p99 {c['sequential']['p99_ms']:.1f} ms; "
        f"worker exit code {c['worker_exit_code']}"
    )
    print("target: report -> next message p50 under 2 ms")
    print()
    print("CPU seconds spent during the first round's throughput run, per process:")
    for key, tp in (
        ("sqlite", figures["sqlite"]["throughput"]),
        ("redis", figures["redis"]["throughput"]),
        ("celery", c["throughput"]),
    ):
        spent = tp["cpu_seconds"]
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in spent.items())
        per = sum(spent.values()) / tp.get("executions", tp.get("chains", 1)) * 1000
        print(f"  {key}: {parts}; {per:.2f} ms of CPU per execution")


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit, so that the finally blocks stop every process."""

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="executions (and chains)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    parser.add_argument("--workers", type=int, default=2, help="relayflow worker processes")
    parser.add_argument("--in-flight", type=int, default=32, help="client calls at once")
    parser.add_argument("--latency", type=int, default=200, help="sequential report samples")
    parser.add_argument("--sequential", type=int, default=50, help="one-at-a-time executions")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of all three")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if shutil.which(CELERY) is None:
        raise SystemExit("celery is not installed: .venv/bin/pip install celery")

    figures: dict[str, Any] = {
        "count": args.count,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "in_flight": args.in_flight,
    }
    procs = Processes()
    with terminate_as_exit(), tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        try:
            redis, redis_pid = start_redis(procs, folder)
            figures["rounds"] = []
            for n in range(args.rounds):
                # The three in turn, round after round: a noisy neighbour then weighs on all.
                here, full = folder / f"round{n}", n == 0
                sqlite_url = f"relayflow-sqlite:///{here}/sqlite/queues.db"
                redis_cpu = {"redis-server": redis_pid}
                one = {
                    "sqlite": bench_transport(procs, here / "sqlite", sqlite_url, args, {}, full),
                    "redis": bench_transport(
                        procs, here / "redis", f"{redis}/0", args, redis_cpu, full
                    ),
                    "celery": bench_celery(procs, here / "celery", redis, redis_pid, args, full),
                }
                if full:
                    figures.update(one)
                figures["rounds"].append({k: v["throughput"] for k, v in one.items()})
                print(f"round {n + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            procs.stop_all()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    codes = [figures[k]["server_exit_code"] for k in ("sqlite", "redis")]
    return 0 if codes == [0, 0] else 1


if __name__ == "__main__":
    raise SystemExit(main())
