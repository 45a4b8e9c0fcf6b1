"""Benchmark the durable engine on its embedded SQLite store, or on PostgreSQL.

Three measurements, each printed next to the raw SQLite commit rate measured in the same run:

1. ``steps``: one execution of 1,000 pass steps — durable time per step. Also with one
   transaction per step (`steps_per_transition = 1`), the slowest way the engine can run them.
2. ``throughput``: 1,000 concurrent executions of a 10-step flow whose steps are
   requestResponse tasks answered in-process — step transitions per second.
3. ``waiting``: 100,000 executions parked on waitForCallback tasks — the engine's memory as
   they pile up, and the time to describe one and to list a page.

With ``--store postgresql://USER@HOST:PORT/DB`` (or ``--store pg``: a private PostgreSQL
server started for the run, fsync on, and stopped at the end) each measurement runs on a fresh
database of that server (created next to DB, dropped afterwards), and again on the embedded
SQLite store as the reference, in the same run; with ``--rounds N`` the throughput runs N
times on each, taking turns, and the median is shown. For PostgreSQL it also prints the raw one-row
commit rate of one connection, and the database's commits (`xact_commit` of
pg_stat_database, read before the executions start and after the engine has closed its
connections, so every backend has flushed its counts) per step transition.

With ``--config relayflow.toml`` the engines carry the plugins that file enables, loaded and
configured as `relayflow server` loads them (bench_observability.py measures the cost of
relayflow-otel and relayflow-prometheus through it); without it, no plugins.

    .venv/bin/python contrib/bench/bench_engine.py [steps|throughput|waiting|all]
        [--store sqlite|pg|postgresql://...] [--waiting 100000] [--synchronous full|normal]
        [--config relayflow.toml] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_fdl import sqlite_commits_per_second
from replicas import (
    commits,
    cpu_seconds,
    create_database,
    drop_database,
    machine_line,
    machine_speed,
    postgres_pid,
    postgres_server,
    settled_commits,
)

from relayflow.engine import Engine, FunctionIntegration, Limits, Submitted, Succeeded
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.integration import TaskOutcome, TaskRequest
from relayflow.heap import settle_heap
from relayflow.plugins import PluginManager
from relayflow.store import open_store


def rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pass_flow(n: int) -> str:
    steps = "".join(f"  - type: pass\n    name: p{i}\n" for i in range(n))
    return f"version: v1\ntype: flow\nsteps:\n{steps}"


def task_flow(n: int) -> str:
    steps = "".join(
        f"  - type: task\n    name: t{i}\n    action: bench:Work\n"
        f"    outputMappings:\n      - target: last\n        source: $local.i\n"
        for i in range(n)
    )
    return f"version: v1\ntype: flow\nsteps:\n{steps}"


CALLBACK_FLOW = """version: v1
type: flow
steps:
  - type: task
    name: wait-for-worker
    resourceArn: acs:mns:::/queues/jobs/messages
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: $input.job
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
"""


async def work(req: TaskRequest) -> TaskOutcome:
    return Succeeded({"i": req.step_name})


async def park(req: TaskRequest) -> TaskOutcome:
    return Submitted({"MessageId": str(req.task_id)})


class Stores:
    """Fresh stores for one kind: an SQLite file in a temporary folder, or a new database.

    Args:
        server: None for SQLite; else a PostgreSQL URL whose server gets the new databases.
        synchronous: SQLite's `synchronous` setting.
    """

    def __init__(self, server: str | None, synchronous: str) -> None:
        self.server, self.synchronous = server, synchronous
        self.made = 0

    @property
    def label(self) -> str:
        """What the figures were measured on."""
        if self.server is None:
            return f"SQLite WAL, synchronous={self.synchronous}"
        return "PostgreSQL"

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A store URL nobody used yet, removed afterwards."""
        if self.server is None:
            with tempfile.TemporaryDirectory() as folder:
                yield f"sqlite:///{folder}/bench.db?synchronous={self.synchronous}"
            return
        self.made += 1
        name = f"bench_engine_{os.getpid()}_{self.made}"
        url = create_database(self.server, name)
        try:
            yield url
        finally:
            drop_database(self.server, name)

    def size_mb(self, url: str) -> float:
        """The store's size on disk, in MiB."""
        if self.server is None:
            return os.path.getsize(url.split("sqlite:///", 1)[1].split("?", 1)[0]) / 2**20
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) / 2**20 if row else 0.0


def postgres_commits_per_second(server: str, seconds: float = 1.0) -> float:
    """One-row insert per commit on one connection: the raw rate the engine builds on."""
    import psycopg

    name = f"bench_commit_{os.getpid()}"
    url = create_database(server, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text)")
            n = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO events (body) VALUES (%s)", ('{"type": "StepEntered"}',)
                    )
                n += 1
            elapsed = time.perf_counter() - start
    finally:
        drop_database(server, name)
    return n / elapsed


def new_engine(url: str, **kwargs: Any) -> Engine:
    store = open_store(url)
    integration = FunctionIntegration({"bench:Work": work, "acs:mns:::/queues/jobs/messages": park})
    return Engine(store, integrations=[integration], poll_seconds=0.05, **kwargs)


def load_plugins(path: str) -> PluginManager:
    """The plugins ``path`` (a relayflow.toml) enables, checked and configured as the server does.

    Raises:
        SystemExit: the file or a plugin's table is wrong (the sentence names the file).
    """
    from relayflow.config import ConfigError, load_config

    try:
        config = load_config(path)
        plugins = PluginManager.from_config(config)
        plugins.check_config(config)
        plugins.configure(config)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    return plugins


async def bench_steps(stores: Stores, plugins: EngineHooks | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, per_transition in (("batched", 2000), ("one_transaction_per_step", 1)):
        with stores.fresh() as url:
            limits = Limits(steps_per_transition=per_transition)
            async with new_engine(url, limits=limits, plugins=plugins) as engine:
                await engine.create_flow("passes", pass_flow(1000))
                samples = []
                for run in range(3 if per_transition > 1 else 1):
                    start = time.perf_counter()
                    info = await engine.start_execution("passes", {}, name=f"r{run}")
                    while not info.done:
                        info = await engine.describe_execution("passes", info.name, 10)
                    samples.append(time.perf_counter() - start)
                    assert info.status == "Succeeded", info
                best = min(samples)
                results[label] = {"ms_per_step": best * 1000 / 1000, "total_s": best}
    return results


async def bench_throughput(
    stores: Stores | str,
    executions: int,
    steps: int,
    plugins: EngineHooks | None = None,
    *,
    freeze_heap: bool = False,
) -> dict[str, Any]:
    """Step transitions per second; ``stores`` may be SQLite's `synchronous` setting alone
    (count_transitions.py passes "normal"); ``plugins`` are the engine's (None: none).

    With ``freeze_heap`` the garbage collector is set up once the engine has started as
    `relayflow server` sets it up (`relayflow.heap.settle_heap`): the heap so far frozen, so
    full passes skip what lives as long as the process (modules, plugins), and young
    collections every `relayflow.heap.YOUNG_THRESHOLD` allocations.
    """
    if isinstance(stores, str):
        stores = Stores(None, stores)
    with stores.fresh() as url:
        engine = new_engine(url, plugins=plugins)
        async with engine:
            await engine.create_flow("tasks", task_flow(steps))
            if freeze_heap:
                gc.collect()
                settle_heap()
            before = commits(url) if stores.server else 0
            # CPU is steadier than wall time on a shared machine: this process (the engine and
            # the benchmark's polls) and the PostgreSQL server's processes (its backends, WAL
            # writer, ...), which are alive until the engine closes.
            server_pid = postgres_pid(url) if stores.server else None
            server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
            engine_cpu = time.process_time()
            start = time.perf_counter()
            await asyncio.gather(
                *(engine.start_execution("tasks", {}, name=f"e{i}") for i in range(executions))
            )

            async def all_done() -> bool:
                running = await engine.read(lambda tx: tx.count_executions("Running"))
                return running == 0

            polls = 1
            while not await all_done():
                await asyncio.sleep(0.02)
                polls += 1
            elapsed = time.perf_counter() - start
            engine_cpu = time.process_time() - engine_cpu
            server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid else 0.0
            succeeded = await engine.read(lambda tx: tx.count_executions("Succeeded"))
            assert succeeded == executions, succeeded
        # The engine has closed its connections; their backends flush their counts as they
        # exit, a moment later. The count without the benchmark's own reads: its polls, the
        # final count and the reading of `before` (one transaction each).
        committed = settled_commits(url) - before - polls - 2 if stores.server else None
    transitions = executions * steps
    figures: dict[str, Any] = {
        "executions": executions,
        "steps_each": steps,
        "seconds": elapsed,
        "transitions_per_s": transitions / elapsed,
        "engine_cpu_us_per_transition": engine_cpu * 1e6 / transitions,
        "server_cpu_us_per_transition": server_cpu * 1e6 / transitions,
    }
    if committed is not None:
        figures["commits"] = committed
        figures["commits_per_transition"] = committed / transitions
    return figures


async def bench_waiting(
    stores: Stores, total: int, plugins: EngineHooks | None = None
) -> dict[str, Any]:
    with stores.fresh() as url:
        async with new_engine(url, plugins=plugins) as engine:
            await engine.create_flow("parked", CALLBACK_FLOW)
            memory = [(0, rss_mb())]
            start = time.perf_counter()
            batch = 500
            for first in range(0, total, batch):
                await asyncio.gather(
                    *(
                        engine.start_execution("parked", {"job": i}, name=f"w{i:07d}")
                        for i in range(first, min(total, first + batch))
                    )
                )
                done = min(total, first + batch)
                if done % (total // 10 or 1) == 0 or done == total:
                    memory.append((done, rss_mb()))
            started = time.perf_counter() - start
            # Let the last dispatches record TaskSubmitted.
            while engine._runtime.dispatcher.inflight:
                await asyncio.sleep(0.05)
            memory.append((total, rss_mb()))
            describe = []
            for i in range(0, total, max(1, total // 50)):
                t = time.perf_counter()
                info = await engine.describe_execution("parked", f"w{i:07d}")
                describe.append(time.perf_counter() - t)
                assert info.status == "Running"
            pages = []
            token = ""
            for _ in range(20):
                t = time.perf_counter()
                page = await engine.list_executions("parked", limit=60, next_token=token)
                pages.append(time.perf_counter() - t)
                token = page.next_token
            running = await engine.read(lambda tx: tx.count_executions("Running"))
            db_mb = stores.size_mb(url)
    return {
        "executions": total,
        "running": running,
        "start_seconds": started,
        "starts_per_s": total / started,
        "rss_mb_by_count": memory,
        "describe_ms_median": statistics.median(describe) * 1000,
        "list_page_ms_median": statistics.median(pages) * 1000,
        "db_mb": db_mb,
    }


def measure(kinds: dict[str, Stores], args: argparse.Namespace) -> dict[str, Any]:
    """The measurements asked for, on fresh stores of each kind; the throughput rounds take
    turns between the kinds (a noisy neighbour then weighs on all)."""
    figures: dict[str, Any] = {key: {"store": stores.label} for key, stores in kinds.items()}
    for key, stores in kinds.items():
        if args.which in ("steps", "all"):
            figures[key]["steps"] = asyncio.run(bench_steps(stores, args.plugins))
    if args.which in ("throughput", "all"):
        rounds: dict[str, list[dict[str, Any]]] = {key: [] for key in kinds}
        for _ in range(args.rounds):
            for key, stores in kinds.items():
                run = bench_throughput(stores, args.executions, 10, args.plugins)
                rounds[key].append(asyncio.run(run))
        for key, runs in rounds.items():
            median = sorted(runs, key=lambda r: r["transitions_per_s"])[len(runs) // 2]
            figures[key]["throughput"] = {
                **median,
                "each_round": [r["transitions_per_s"] for r in runs],
                "engine_cpu_each_round": [r["engine_cpu_us_per_transition"] for r in runs],
                "server_cpu_each_round": [r["server_cpu_us_per_transition"] for r in runs],
            }
    for key, stores in kinds.items():
        if args.which in ("waiting", "all"):
            run = bench_waiting(stores, args.waiting, args.plugins)
            figures[key]["waiting"] = asyncio.run(run)
    return figures


def print_figures(figures: dict[str, Any], commit_ms: float, target: str) -> None:
    """One store's lines."""
    print(f"store: {figures['store']}")
    if "steps" in figures:
        for label, data in figures["steps"].items():
            print(
                f"  1,000 pass steps, {label.replace('_', ' '):<27} "
                f"{data['ms_per_step']:.4f} ms/step  ({data['ms_per_step'] / commit_ms:.2f} x "
                "one commit)"
            )
    if "throughput" in figures:
        t = figures["throughput"]
        each = ", ".join(f"{r:,.0f}" for r in t["each_round"])
        print(
            f"  {t['executions']:,} executions x {t['steps_each']} task steps: "
            f"{t['transitions_per_s']:,.0f} step transitions/s in {t['seconds']:.1f} s "
            f"(median of {each}; target {target})"
        )
        cpu = ", ".join(f"{r:.0f}" for r in t["engine_cpu_each_round"])
        print(f"  CPU per transition, engine process: {cpu} us (each round)")
        if "commits" in t:
            cpu = ", ".join(f"{r:.0f}" for r in t["server_cpu_each_round"])
            print(f"  CPU per transition, PostgreSQL server: {cpu} us (each round)")
            print(
                f"  PostgreSQL commits: {t['commits']:,} for {t['executions'] * t['steps_each']:,}"
                f" transitions = {t['commits_per_transition']:.3f} a transition "
                "(target <= 0.05)"
            )
    if "waiting" in figures:
        w = figures["waiting"]
        print(
            f"  {w['executions']:,} executions parked on callbacks ({w['running']:,} running), "
            f"started at {w['starts_per_s']:,.0f}/s, store {w['db_mb']:.0f} MiB"
        )
        print(
            "  engine RSS by executions parked: "
            + ", ".join(f"{n:,}: {mb:.0f} MiB" for n, mb in w["rss_mb_by_count"])
        )
        print(
            f"  describe one: {w['describe_ms_median']:.2f} ms (median); "
            f"list a page of 60: {w['list_page_ms_median']:.2f} ms (median)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["steps", "throughput", "waiting", "all"]
    )
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite (the default), pg (a private PostgreSQL for the run) or a postgresql:// URL",
    )
    parser.add_argument("--waiting", type=int, default=100_000, help="executions to park")
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1, help="throughput runs (median shown)")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument(
        "--config",
        help="a relayflow.toml whose plugins the engines carry (default: no plugins)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.plugins = load_plugins(args.config) if args.config else None
    if args.store not in ("sqlite", "pg") and not args.store.startswith(
        ("postgresql://", "postgres://")
    ):
        parser.error("--store must be sqlite, pg or a postgresql:// URL")

    with contextlib.ExitStack() as stack:
        server = None
        if args.store == "pg":
            server = stack.enter_context(postgres_server())
        elif args.store != "sqlite":
            server = args.store
        figures: dict[str, Any] = {
            "machine_at_start": machine_speed(),
            "synchronous": args.synchronous,
            "reference_sqlite_commits_per_s_full": sqlite_commits_per_second("FULL"),
            "reference_sqlite_commits_per_s_normal": sqlite_commits_per_second("NORMAL"),
        }
        kinds = {}
        if server is not None:
            figures["reference_postgres_commits_per_s"] = postgres_commits_per_second(server)
            kinds["postgresql"] = Stores(server, args.synchronous)
        # On PostgreSQL runs, the embedded store is the reference of the same run.
        kinds["sqlite"] = Stores(None, args.synchronous)
        figures.update(measure(kinds, args))
        figures["machine_at_end"] = machine_speed()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"reference: one-row commit, SQLite synchronous=FULL    "
        f"{figures['reference_sqlite_commits_per_s_full']:>10,.0f} commits/s"
    )
    print(
        f"reference: one-row commit, SQLite synchronous=NORMAL  "
        f"{figures['reference_sqlite_commits_per_s_normal']:>10,.0f} commits/s"
    )
    sqlite_ms = 1000 / figures[f"reference_sqlite_commits_per_s_{args.synchronous}"]
    if "postgresql" in figures:
        pg_rate = figures["reference_postgres_commits_per_s"]
        print(f"reference: one-row commit, PostgreSQL, one connection {pg_rate:>8,.0f} commits/s")
        print_figures(figures["postgresql"], 1000 / pg_rate, ">= 3,000/s")
    print_figures(figures["sqlite"], sqlite_ms, ">= 10,000/s")
    if "postgresql" in figures and "throughput" in figures["postgresql"]:
        ratio = (
            figures["postgresql"]["throughput"]["transitions_per_s"]
            / figures["sqlite"]["throughput"]["transitions_per_s"]
        )
        print(f"PostgreSQL / embedded SQLite, step transitions/s: {ratio:.2f}")
    print(machine_line(figures["machine_at_start"], figures["machine_at_end"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
