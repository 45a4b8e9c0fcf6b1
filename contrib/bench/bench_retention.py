"""Benchmark retention: ReportTaskSucceeded latency while the engine deletes 100,000 executions.

One engine (on a SQLite file, or with --store on a fresh PostgreSQL database) serves a steady
load for the whole run: --rate executions a second of a flow whose one step is a
waitForCallback task; an in-process worker answers each task with `report_task_succeeded` as
soon as the engine hands it over, and the time that call takes is one sample. Each round:

1. writes --count executions that ended 40 days ago, four history events each, straight into
   the store in transactions of 5,000 (through a store object of its own, on a thread), waits
   for the reports this held up, and lets the store settle for two seconds;
2. ``baseline``: the load alone for --seconds, retention off;
3. ``retention``: the same load on the same engine while its retention loop
   (`retention_days = 30`, switched on now) deletes them, until none is left.

Printed per round: p50/p99/max of the report latency in both phases, the ratio of the p99s
(the target is at most 2), the delete rate (executions a second, measured to the second: the
end is polled), and how long retention's transactions took on the writer; then the median
ratio over the rounds (this machine is shared, and one round's noise can swing either p99),
and whether every execution the load started succeeded. The retention loop's own pace
applies (`relayflow.engine.retention`: batches of 100, at most 1,000 executions a second).

    .venv/bin/python contrib/bench/bench_retention.py [--count 100000] [--rate 200]
        [--seconds 30] [--rounds 3] [--store sqlite|pg|postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from replicas import create_database, drop_database, percentile, postgres_server

from relayflow.engine import Engine, FunctionIntegration, Submitted, retention
from relayflow.engine.integration import TaskRequest
from relayflow.engine.model import ExecutionState
from relayflow.engine.snapshot import dump_state
from relayflow.errors import EngineError
from relayflow.store import ExecutionRow, FlowRow, HistoryEvent, Transaction, open_store

QUEUE = "acs:mns:::/queues/jobs/messages"
JOBS = f"""version: v1
type: flow
steps:
  - type: task
    name: work
    resourceArn: {QUEUE}
    pattern: waitForCallback
"""
OLD = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"
DAY = 86_400.0
CHUNK = 5_000
WARMUP = 2.0


def filler(flow: FlowRow, first: int, last: int) -> Callable[[Transaction], None]:
    """A transaction body writing executions old-first..old-(last-1) that ended 40 days ago."""
    state = dump_state(ExecutionState())
    ended = time.time() - 40 * DAY

    def fill(tx: Transaction) -> None:
        for i in range(first, last):
            at = ended + i * 0.001
            row = ExecutionRow(
                0,
                uuid.uuid4().hex,
                "old",
                f"old-{i}",
                flow.id,
                flow.version,
                "Succeeded",
                '{"n": 1}',
                '{"n": 1}',
                "",
                "",
                at - 0.01,
                at,
                state,
                "",
            )
            execution_id = tx.insert_execution(row)
            assert execution_id is not None
            tx.append_events(
                execution_id,
                [
                    HistoryEvent(1, 0, "ExecutionStarted", "", at - 0.01, {"input": {}}),
                    HistoryEvent(2, 0, "StepEntered", "only", at - 0.005, {}),
                    HistoryEvent(3, 2, "StepSucceeded", "only", at - 0.001, {}),
                    HistoryEvent(4, 0, "ExecutionSucceeded", "", at, {"output": {}}),
                ],
            )

    return fill


class Load:
    """Starts --rate executions a second; the worker reports each task at once and times it."""

    def __init__(self, engine: Engine, rate: float) -> None:
        self.engine = engine
        self.rate = rate
        self.samples: list[tuple[float, float]] = []  # (when, seconds the report took)
        self.started = 0
        self.refused = 0
        self.reports: set[asyncio.Task[None]] = set()

    async def handle(self, request: TaskRequest) -> Submitted:
        task = asyncio.create_task(self._report(request.token))
        self.reports.add(task)
        task.add_done_callback(self.reports.discard)
        return Submitted({})

    async def _report(self, token: str) -> None:
        await asyncio.sleep(0)  # after the dispatch that handed the task over
        began = time.perf_counter()
        try:
            await self.engine.report_task_succeeded(token, {"done": True})
        except EngineError:  # a task sent again (its lease ran out): the first report won
            self.refused += 1
            return
        self.samples.append((began, time.perf_counter() - began))

    async def run(self, until: asyncio.Event) -> None:
        """Start executions at the rate until ``until`` is set."""
        step = 1.0 / self.rate
        next_at = time.perf_counter()
        pending: set[asyncio.Task[Any]] = set()
        while not until.is_set():
            now = time.perf_counter()
            if now < next_at:
                await asyncio.sleep(next_at - now)
                continue
            next_at += step
            self.started += 1
            task = asyncio.create_task(self.engine.start_execution("jobs", {}))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)


class BatchTimer:
    """Times each retention batch's transaction body on the writer thread (for the printout)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._purge = retention._purge

    def __call__(self, tx: Any, ctx: Any = None, **options: Any) -> int | None:
        began = time.perf_counter()
        try:
            return self._purge(tx, ctx, **options)
        finally:
            self.seconds.append(time.perf_counter() - began)


def figures(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    taken = [took for when, took in samples if start <= when < end]
    if not taken:
        return {"n": 0}
    return {
        "n": len(taken),
        "p50_ms": percentile(taken, 50) * 1000,
        "p99_ms": percentile(taken, 99) * 1000,
        "max_ms": max(taken) * 1000,
    }


async def fill(url: str, first: int, count: int) -> float:
    """Write ``count`` old executions through a store of its own; the seconds it took.

    On a thread, with its own connections: on PostgreSQL the engine's writer goes on meanwhile
    (on SQLite it waits for the file's lock, chunk by chunk).
    """

    def write() -> None:
        store = open_store(url)
        try:
            with store.reader() as tx:
                flow = tx.get_flow("old")
            assert flow is not None
            for low in range(first, first + count, CHUNK):
                with store.transaction() as tx:
                    filler(flow, low, min(first + count, low + CHUNK))(tx)
        finally:
            store.close()

    began = time.perf_counter()
    await asyncio.to_thread(write)
    return time.perf_counter() - began


async def one_round(
    url: str, engine: Engine, load: Load, first: int, count: int, seconds: float
) -> Any:
    """Fill, measure the baseline, then measure while retention deletes what was filled."""
    fill_seconds = await fill(url, first, count)
    while len(load.reports) > 5:  # reports held up by the fill are answered first
        await asyncio.sleep(0.1)
    await asyncio.sleep(WARMUP)  # the fill's writes settle (checkpoints, caches)
    base_start = time.perf_counter()
    await asyncio.sleep(seconds)
    base_end = time.perf_counter()
    timer = BatchTimer()
    retention._purge = timer  # type: ignore[assignment]
    engine._retention_days = 30
    await engine._start_retention()
    left = count
    while left:
        await asyncio.sleep(1.0)
        left = await engine.read(lambda tx: tx.count_ended(time.time() - 30 * DAY))
    purge_end = time.perf_counter()
    await engine._stop_retention()
    retention._purge = timer._purge  # type: ignore[assignment]
    base = figures(load.samples, base_start, base_end)
    during = figures(load.samples, base_end, purge_end)
    purge_seconds = purge_end - base_end
    return {
        "fill_seconds": round(fill_seconds, 1),
        "baseline": base,
        "retention": during,
        "p99_ratio": round(during.get("p99_ms", 0) / max(base.get("p99_ms", 1e-9), 1e-9), 2),
        "purge_seconds": round(purge_seconds, 1),
        "deleted_per_second": round(count / purge_seconds),
        "batches": len(timer.seconds),
        "batch_p50_ms": round(percentile(timer.seconds, 50) * 1000, 2),
        "batch_max_ms": round(max(timer.seconds) * 1000, 2),
    }


async def measure(url: str, count: int, rate: float, seconds: float, rounds: int) -> Any:
    load_holder: list[Load] = []

    async def handle(request: TaskRequest) -> Submitted:
        return await load_holder[0].handle(request)

    engine = Engine(open_store(url), integrations=[FunctionIntegration({QUEUE: handle})])
    engine.retention_check_seconds = 1.0
    async with engine:
        await engine.create_flow("old", OLD)
        await engine.create_flow("jobs", JOBS)
        load = Load(engine, rate)
        load_holder.append(load)
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(stop))
        results = [
            await one_round(url, engine, load, n * count, count, seconds) for n in range(rounds)
        ]
        stop.set()
        await runner
        await asyncio.gather(*list(load.reports))
        succeeded = await engine.read(lambda tx: tx.count_matching("jobs", status="Succeeded"))
    ratios = sorted(r["p99_ratio"] for r in results)
    return {
        "store": url.split("://", 1)[0],
        "count": count,
        "rate": rate,
        "rounds": results,
        "median_p99_ratio": ratios[len(ratios) // 2],
        "started": load.started,
        "succeeded": succeeded,
        "reports_refused": load.refused,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="ended executions to delete")
    parser.add_argument("--rate", type=float, default=200.0, help="executions started a second")
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="each baseline's length (about as long as retention takes: rare stalls of a "
        "shared machine then weigh alike in both)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="baseline + retention, repeated")
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite (a temporary file), pg (a private PostgreSQL server, fsync on), or a "
        "postgresql:// URL whose server gets a fresh database for the run",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.store == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(folder) / 'retention.db'}"
        else:
            server = args.store
            if server == "pg":
                server = stack.enter_context(postgres_server())
            url = create_database(server, "bench_retention")
            stack.callback(drop_database, server, "bench_retention")
        result = asyncio.run(measure(url, args.count, args.rate, args.seconds, args.rounds))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"store {result['store']}: load {result['rate']:g} executions/s; each round writes "
        f"{result['count']:,} executions that ended 40 days ago, then measures"
    )
    for n, r in enumerate(result["rounds"], 1):
        print(f" round {n} (written in {r['fill_seconds']} s)")
        for phase in ("baseline", "retention"):
            f = r[phase]
            print(
                f"  {phase:<9}  ReportTaskSucceeded p50 {f.get('p50_ms', 0):6.2f} ms  "
                f"p99 {f.get('p99_ms', 0):6.2f} ms  max {f.get('max_ms', 0):7.2f} ms  "
                f"(n={f['n']})"
            )
        print(
            f"  p99 ratio {r['p99_ratio']}; deleted {result['count']:,} in "
            f"{r['purge_seconds']} s ({r['deleted_per_second']:,}/s; {r['batches']} batches, "
            f"p50 {r['batch_p50_ms']} ms, max {r['batch_max_ms']} ms)"
        )
    print(
        f"median p99 during retention / p99 without: {result['median_p99_ratio']} "
        f"(target <= 2); {result['succeeded']:,} of {result['started']:,} load executions "
        f"succeeded ({result['reports_refused']} reports of tasks sent twice refused)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
