"""Benchmark the seed scenario on real queues: executions per second, report-to-message latency.

The seed scenario is contrib/examples/seed-three-tasks.yaml: three serial waitForCallback tasks
on the queue `fnf-demo`. For each transport (the embedded `relayflow-sqlite://` and a
redis-server this script starts on a free port), the script starts `relayflow server` in a
temporary folder (SQLite store, port 0, `[integrations.mns] transport = ...`, no access keys)
and measures:

1. ``latency``: ReportTaskSucceeded for the first task -> the second task's message received by
   a kombu consumer in this process, one execution after the other, with no worker process
   (this script is the worker). The clock starts just before the report is sent and stops
   when the consumer has the message in hand, so it covers the HTTP request, the engine's
   commit, the publish and the consumer's receive. The consumer waits on a thread of its own
   meanwhile, as the idle threads of a `relayflow worker` do (``--consumer after-answer``: the
   reporting thread starts to receive only once its report is answered, which adds the rest
   of the answer's way back and the start of a receive). On the embedded transport the
   consumer is woken by the producer's doorbell (see relayflow_mns.doorbell).
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
chain of three tasks doing the same jobs (celery_reference.py). Every process started here
(servers, workers, redis-server, the Celery worker, PostgreSQL) is stopped at the end, errors
included.

Scale-out (``--store pg`` for a private PostgreSQL started for the run, or ``--store
postgresql://...`` for a server of yours, on which a fresh database is made for each
configuration): the seed scenario on Redis with the store on PostgreSQL and 1 .. ``--replicas``
`relayflow server` replicas behind haproxy (``--balancer haproxy``, the default when it is
installed, set up as contrib/deploy/haproxy.cfg) or balancer.py (round robin, /ready checks; a
process of its own), the clients and the workers calling the balancer. The reference, in the
same run and rounds: one replica on the embedded SQLite store behind the same balancer. Figures
as above (executions/s by round, CPU per execution, report -> next message with 1 replica), and the
ratios to the targets: 1 replica on PostgreSQL >= 0.65 x the embedded store, N replicas >=
0.85 x 1 replica, report -> next message p50 <= 3 ms with 1 replica. Beside the last, the
floor under it, measured in the first round: the same report and the same kind of message
through the same balancer, client and consumer, with floor_server.py doing only the publish
in relayflow's place (no token, engine or store); and, taking turns with it sample by sample,
a second floor_server.py that commits one row update and one event row to the same PostgreSQL
server before each publish, the least a durable engine on PostgreSQL must do.

    .venv/bin/python contrib/bench/bench_queue.py [--count 500] [--concurrency 4]
        [--workers 2] [--latency 200] [--sequential 50] [--rounds 3] [--json]
        [--store sqlite|pg|postgresql://...] [--replicas 3] [--no-route]
        [--consumer waiting|after-answer]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery_reference import CELERY, bench_celery
from floor import measure_floors
from inbox import Inbox, WaitingInbox
from replicas import (
    EXAMPLES,
    QUEUE,
    Cluster,
    CpuMeter,
    Processes,
    create_database,
    drop_database,
    haproxy_path,
    machine_line,
    machine_speed,
    postgres_pid,
    postgres_server,
    settled_commits,
    start_redis,
    summary_ms,
)

from relayflow.client import Client
from relayflow_mns import sqlite_transport  # noqa: F401  (registers relayflow-sqlite)

FLOW = "seed"
EXPECTED = {"rows": [{"id": i, "seen": True} for i in (1, 2, 3)], "loaded": 3}
SEED = (EXAMPLES / "seed-three-tasks.yaml").read_text()


# -- 1. report -> next message --------------------------------------------------------------


def bench_latency(
    endpoint: str, transport: str, count: int, label: str, consumer: str = "waiting"
) -> dict[str, Any]:
    """Report task 1, time until task 2's message is received; then finish the execution.

    ``consumer`` is ``waiting`` (a `WaitingInbox`: the clock stops when the message is in a
    waiting consumer's hands) or ``after-answer`` (the reporting thread itself starts to
    receive once its report is answered, as this benchmark did until the eighth session).
    """
    if consumer == "after-answer":
        return _latency_after_answer(endpoint, transport, count, label)
    inbox = WaitingInbox(transport)
    latencies: list[float] = []
    round_trips: list[float] = []
    try:
        with Client(endpoint) as client:
            for n in range(count):
                name = f"lat-{label}-{n:05d}"
                client.start_execution(FLOW, {"source": name}, name=name)
                _, first = inbox.take()
                assert first["x-relayflow-step"] == "extract", first
                began = time.perf_counter()
                client.report_task_succeeded(first["x-relayflow-task-token"], {"rows": [{"id": 1}]})
                answered = time.perf_counter()
                received, second = inbox.take()
                assert second["x-relayflow-execution"] == name, second
                assert second["x-relayflow-step"] == "transform", second
                latencies.append(received - began)
                round_trips.append(answered - began)
                client.report_task_succeeded(second["x-relayflow-task-token"], {})
                _, third = inbox.take()
                client.report_task_succeeded(third["x-relayflow-task-token"], {"count": 1})
    finally:
        inbox.close()
    return {
        "report_to_next_message": summary_ms(latencies),
        "report_round_trip": summary_ms(round_trips),
    }


def _latency_after_answer(endpoint: str, transport: str, count: int, label: str) -> dict[str, Any]:
    inbox = Inbox(transport, {})
    latencies: list[float] = []
    round_trips: list[float] = []
    try:
        with Client(endpoint) as client:
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
    endpoint: str, processes: dict[str, int], count: int, in_flight: int, prefix: str
) -> dict:
    """Start ``count`` executions, wait until every one has Succeeded; executions per second.

    The calls go through `relayflow.client.Client`, one per thread (``in_flight`` threads):
    the synchronous client costs about 0.4 ms of CPU a call here, where the async one, with
    many calls in flight, costs several times that and would measure the load generator.
    """
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(endpoint, timeout=120)
        return local.client

    def start(name: str) -> None:
        client().start_execution(FLOW, {"source": name}, name=name)

    def finish(name: str) -> Any:
        return client().wait_for_execution(FLOW, name, timeout=120)

    names = [f"{prefix}-{n:06d}" for n in range(count)]
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


def run_cluster(
    cluster: Cluster, args: argparse.Namespace, others: dict[str, int], full: bool
) -> dict[str, Any]:
    """One round on one cluster: throughput; with ``full``, latency and one-at-a-time too."""
    figures: dict[str, Any] = {"transport": cluster.transport}
    try:
        cluster.start()
        with Client(cluster.url) as client:
            client.create_flow(FLOW, SEED)
        if full:
            figures["latency"] = bench_latency(
                cluster.url,
                cluster.transport,
                args.latency,
                "lat",
                getattr(args, "consumer", "waiting"),
            )
        cluster.start_workers(args.workers, args.concurrency)
        processes = {**cluster.pids(), **others}
        figures["throughput"] = bench_throughput(
            cluster.url, processes, args.count, args.in_flight, "tp"
        )
        if full:
            figures["sequential"] = bench_sequential(cluster.url, args.sequential, "seq")
    finally:
        codes = cluster.stop()["replicas"]
        figures["server_exit_code"] = max(codes, key=abs) if codes else None
    return figures


def bench_transport(
    folder: Path, transport: str, args: argparse.Namespace, others: dict[str, int], full: bool
) -> dict[str, Any]:
    """One round of `relayflow server` on the embedded store and ``transport``, no balancer."""
    store = f"sqlite:///{folder}/store.db"
    cluster = Cluster(
        folder,
        store,
        transport,
        1,
        lease_seconds=None,
        poll_seconds=None,
        visibility_timeout=30,
        balancer=None,
    )
    return run_cluster(cluster, args, others, full)


def bench_scaleout(
    folder: Path,
    store: str,
    replicas: int,
    args: argparse.Namespace,
    others: dict[str, int],
    full: bool,
) -> dict[str, Any]:
    """One round of ``replicas`` servers on ``store`` behind the balancer, on Redis."""
    cluster = Cluster(
        folder,
        store,
        args.redis_db,
        replicas,
        lease_seconds=None,
        poll_seconds=None,
        visibility_timeout=30,
        balancer=args.balancer,
        route=not args.no_route,
    )
    figures = run_cluster(cluster, args, others, full)
    figures["replicas"] = replicas
    if store.startswith("postgres"):
        # Over the cluster's life (schema, flow and every execution it ran), read once its
        # replicas have exited and their backends have flushed their counts.
        executions = args.count + (args.latency + args.sequential if full else 0)
        figures["commits_per_execution"] = settled_commits(store) / executions
    return figures


# -- output ---------------------------------------------------------------------------------


CONSUMERS = {
    "waiting": "taken by a consumer already waiting on its own thread",
    "after-answer": "taken by the reporting thread once its report is answered",
}


def print_table(figures: dict[str, Any]) -> None:
    print(
        f"seed scenario (3 serial waitForCallback tasks on '{QUEUE}'), {os.cpu_count()} cores; "
        f"{figures['count']} executions, {figures['workers']} `relayflow worker` processes "
        f"x --concurrency {figures['concurrency']}, {figures['in_flight']} starts in flight; "
        f"report -> next message: {CONSUMERS[figures['consumer']]}"
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


# -- scale-out: replicas on PostgreSQL ------------------------------------------------------


SCALEOUT_TITLES = {"embedded": "embedded SQLite, 1 replica (ref.)"}


def scaleout_rounds(
    folder: Path, server: str, redis: str, redis_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The embedded store and 1 .. N replicas on PostgreSQL in turn, ``--rounds`` times."""
    args.redis_db = f"{redis}/0"
    others = {"redis-server": redis_pid}
    pg_others = {**others, "postgresql": postgres_pid(server)}
    keys = ["embedded"] + [f"pg{n}" for n in range(1, args.replicas + 1)]
    figures: dict[str, Any] = {"rounds": [], "configurations": keys}
    for r in range(args.rounds):
        # Each configuration in turn, round after round: a noisy neighbour then weighs on all.
        one = {}
        for key in keys:
            here, full = folder / f"round{r}" / key, r == 0
            if key == "embedded":
                one[key] = bench_scaleout(here, f"sqlite:///{here}/store.db", 1, args, others, full)
                continue
            name = f"bench_queue_{os.getpid()}_{r}_{key}"
            store = create_database(server, name)
            try:
                one[key] = bench_scaleout(here, store, int(key[2:]), args, pg_others, full)
            finally:
                drop_database(server, name)
        if r == 0:
            figures.update(one)
            # The reference for the latency target: the same path with no relayflow work, and
            # with the one commit a report needs at least, on the same PostgreSQL server.
            name = f"bench_queue_{os.getpid()}_floor"
            store = create_database(server, name)
            try:
                figures.update(
                    measure_floors(
                        folder / "floor",
                        args.redis_db,
                        args.latency,
                        args.balancer,
                        not args.no_route,
                        {"floor": None, "floor_commit": store},
                    )
                )
            finally:
                drop_database(server, name)
        figures["rounds"].append({k: v["throughput"] for k, v in one.items()})
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)
    return figures


def print_scaleout(figures: dict[str, Any]) -> None:
    """The scale-out table: the embedded store, then 1 .. N replicas on PostgreSQL."""
    print(
        f"seed scenario on Redis, {figures['balancer']} in front"
        f"{' (routing by execution)' if figures['routed'] else ''}, {os.cpu_count()} cores; "
        f"{figures['count']} executions, {figures['workers']} `relayflow worker` processes "
        f"x --concurrency {figures['concurrency']}, {figures['in_flight']} starts in flight; "
        f"report -> next message: {CONSUMERS[figures['consumer']]}"
    )
    rounds, keys = figures["rounds"], figures["configurations"]

    def rates(key: str) -> list[float]:
        return [r[key]["executions_per_s"] for r in rounds]

    def cpu_ms(key: str) -> float:
        spent = [sum(r[key]["cpu_seconds"].values()) / r[key]["executions"] for r in rounds]
        return statistics.median(spent) * 1000

    head = (
        f"{'':<34} {'exec/s':>7} {'each round':>17} {'CPU/exec':>9} "
        f"{'report->next msg p50':>21} {'p99':>8} {'one at a time p50':>18}"
    )
    print(head)
    print("-" * len(head))
    for key in keys:
        n = int(key[2:]) if key != "embedded" else 1
        title = SCALEOUT_TITLES.get(key, f"PostgreSQL, {n} replica{'s' if n > 1 else ''}")
        latency = figures[key]["latency"]["report_to_next_message"]
        print(
            f"{title:<34} {statistics.median(rates(key)):>7,.0f} "
            f"{'/'.join(f'{v:.0f}' for v in rates(key)):>17} {cpu_ms(key):>6.2f} ms "
            f"{latency['p50_ms']:>18.2f} ms {latency['p99_ms']:>5.2f} ms "
            f"{figures[key]['sequential']['p50_ms']:>15.1f} ms"
        )
    print()

    def ratios(top: str, bottom: str, target: float, what: str) -> None:
        each = [a / b for a, b in zip(rates(top), rates(bottom), strict=True)]
        print(
            f"{what}, round by round: {', '.join(f'{r:.2f}' for r in each)} "
            f"(median {statistics.median(each):.2f}; target >= {target})"
        )

    if "pg1" in keys:
        ratios("pg1", "embedded", 0.65, "PostgreSQL 1 replica / embedded SQLite")
        for key in keys[2:]:
            ratios(key, "pg1", 0.85, f"PostgreSQL {key[2:]} replicas / 1 replica")
        p50 = figures["pg1"]["latency"]["report_to_next_message"]["p50_ms"]
        print(f"report -> next message p50, 1 replica on PostgreSQL: {p50:.2f} ms (target <= 3)")
    floor = figures["floor"]["report_to_next_message"]
    print(
        f"  the same path without relayflow's work (floor_server.py answering and publishing, "
        f"behind the same balancer): p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms"
    )
    if "floor_commit" in figures:
        floor = figures["floor_commit"]["report_to_next_message"]
        print(
            f"  the same, committing one row update and one event row to PostgreSQL before the "
            f"publish (--store): p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms"
        )
    pg = [k for k in keys if "commits_per_execution" in figures[k]]
    if pg:
        print(
            "PostgreSQL commits per execution (first round, the whole cluster's life): "
            + ", ".join(f"{k} {figures[k]['commits_per_execution']:.2f}" for k in pg)
        )
    print("server exit codes: " + ", ".join(f"{k} {figures[k]['server_exit_code']}" for k in keys))
    print()
    print("CPU seconds spent during the first round's throughput run, per process:")
    for key in keys:
        spent = figures[key]["throughput"]["cpu_seconds"]
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in spent.items())
        print(f"  {key}: {parts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="executions (and chains)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    parser.add_argument("--workers", type=int, default=2, help="relayflow worker processes")
    parser.add_argument("--in-flight", type=int, default=32, help="client calls at once")
    parser.add_argument("--latency", type=int, default=200, help="sequential report samples")
    parser.add_argument("--sequential", type=int, default=50, help="one-at-a-time executions")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of all three")
    parser.add_argument(
        "--store", default="sqlite", help="sqlite (default), pg (private) or a postgresql:// URL"
    )
    parser.add_argument("--replicas", type=int, default=3, help="most replicas on PostgreSQL")
    parser.add_argument(
        "--balancer",
        choices=["haproxy", "process"],
        default="haproxy" if haproxy_path() else "process",
        help="scale-out: Debian's haproxy as contrib/deploy/haproxy.cfg sets it up (the default "
        "when installed), or balancer.py as a process",
    )
    parser.add_argument(
        "--no-route",
        action="store_true",
        help="scale-out with haproxy: send every call to the least busy replica instead of "
        "routing the calls of one execution to one replica (the A/B of that routing)",
    )
    parser.add_argument(
        "--consumer",
        choices=["waiting", "after-answer"],
        default="waiting",
        help="latency: the next message is taken by a consumer already waiting on its own "
        "thread, as an idle worker thread takes it (the default), or by the reporting thread "
        "once its report is answered (this benchmark's method until the eighth session)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    scaleout = args.store != "sqlite"
    if (
        scaleout
        and args.store != "pg"
        and not args.store.startswith(("postgres://", "postgresql://"))
    ):
        parser.error("--store must be sqlite, pg or a postgresql:// URL")
    if not scaleout and shutil.which(CELERY) is None:
        raise SystemExit("celery is not installed: .venv/bin/pip install celery")

    figures: dict[str, Any] = {
        "count": args.count,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "in_flight": args.in_flight,
        "balancer": "haproxy" if args.balancer == "haproxy" else "balancer.py",
        "routed": args.balancer == "haproxy" and not args.no_route,
        "consumer": args.consumer,
        "machine_at_start": machine_speed(),
    }
    procs = Processes()
    stack = contextlib.ExitStack()
    with terminate_as_exit(), tempfile.TemporaryDirectory() as name, stack:
        folder = Path(name)
        try:
            redis, redis_pid = start_redis(procs, folder)
            if scaleout:
                server = args.store
                if server == "pg":
                    server = stack.enter_context(postgres_server())
                figures.update(scaleout_rounds(folder, server, redis, redis_pid, args))
            else:
                figures["rounds"] = []
                for n in range(args.rounds):
                    # The three in turn, round after round: a noisy neighbour then weighs on all.
                    here, full = folder / f"round{n}", n == 0
                    sqlite_url = f"relayflow-sqlite:///{here}/sqlite/queues.db"
                    redis_cpu = {"redis-server": redis_pid}
                    one = {
                        "sqlite": bench_transport(here / "sqlite", sqlite_url, args, {}, full),
                        "redis": bench_transport(
                            here / "redis", f"{redis}/0", args, redis_cpu, full
                        ),
                        "celery": bench_celery(
                            procs, here / "celery", redis, redis_pid, args, full
                        ),
                    }
                    if full:
                        figures.update(one)
                    figures["rounds"].append({k: v["throughput"] for k, v in one.items()})
                    print(f"round {n + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            procs.stop_all()
    figures["machine_at_end"] = machine_speed()
    keys = figures["configurations"] if scaleout else ["sqlite", "redis"]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        if scaleout:
            print_scaleout(figures)
        else:
            print_table(figures)
        print(machine_line(figures["machine_at_start"], figures["machine_at_end"]))
    codes = [figures[k]["server_exit_code"] for k in keys]
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
