"""Benchmark schedules: 10,000 schedules each firing every minute, on the real clock.

The embedded engine (on a SQLite file, or with --store on a fresh PostgreSQL database) holds
10,000 schedules of a one-step pass flow, each with a tick every minute, and runs for a few
whole minutes of wall time. For every execution a tick starts, the delay is the time from the
tick to the commit of the transaction that started it (taken from the engine's lifecycle hook,
which runs right after each commit). Printed: p50/p99/max of that delay, the executions started
against the ticks that came (missed ticks would be merged into one, see docs/schedules.md), and
the engine's CPU (this process's user + system time over the window, as a share of one core,
and per execution started).
The reference, measured in the same run, is the raw one-row commit rate of SQLite.

Two timetables, each run on a fresh store:

- ``burst``: every schedule at second 0 (`0 * * * * *`): 10,000 executions due at once, once a
  minute — the worst case for the delay;
- ``spread``: schedule i at second i mod 60 (`<i%60> * * * * *`): about 167 due each second.

No fake clock: the loop sleeps until the next due time, and what is measured is how late the
commit comes after it, which only a real clock shows. Hence minutes of wall time, and a make
target of its own, not part of `make test`.

    .venv/bin/python contrib/bench/bench_schedules.py [--mode burst|spread|both]
        [--schedules 10000] [--minutes 2] [--store sqlite|pg|postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_fdl import sqlite_commits_per_second
from replicas import cpu_seconds, create_database, drop_database, postgres_pid, postgres_server

from relayflow.engine import Engine
from relayflow.engine.integration import TaskOutcome, TaskRequest
from relayflow.store import HistoryEvent, open_store

FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: tick\n"
FLOWS = 10  # schedules are spread over this many flows
DRAIN_SECONDS = 60.0


class StartRecorder:
    """Lifecycle hooks that note when each execution's start was committed (wall clock)."""

    observes_lifecycle = True
    observes_work = False  # the work hooks below are then never timed nor called

    def __init__(self) -> None:
        self.started: dict[tuple[str, str], float] = {}

    def engine_started(self, engine: object) -> None:
        return None

    def engine_stopping(self, engine: object) -> None:
        return None

    def batch_committed(self, batch: object) -> None:
        return None

    def outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        return None

    def timers_fired(self, count: int, lag_seconds: float) -> None:
        return None

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        return request

    def task_outcome(self, request: TaskRequest, outcome: TaskOutcome) -> None:
        return None

    def notify(self, flow_name: str, execution_name: str, events: Iterable[HistoryEvent]) -> None:
        if any(event.type == "ExecutionStarted" for event in events):
            self.started.setdefault((flow_name, execution_name), time.time())


def tick_of(name: str) -> float:
    """The tick an execution started by a schedule belongs to, from its name's stamp."""
    stamp = name.rsplit("-", 1)[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def cron_for(mode: str, i: int) -> str:
    return "0 * * * * *" if mode == "burst" else f"{i % 60} * * * * *"


async def run(mode: str, count: int, minutes: int, store_url: str) -> dict[str, Any]:
    recorder = StartRecorder()
    engine = Engine(open_store(store_url), plugins=recorder)
    async with engine:
        flows = [f"bench{i}" for i in range(FLOWS)]
        for flow in flows:
            await engine.create_flow(flow, FLOW)
        began = time.perf_counter()
        created = 0
        chunk = 500
        for first in range(0, count, chunk):
            await asyncio.gather(
                *(
                    engine.create_schedule(flows[i % FLOWS], f"s{i}", cron_for(mode, i))
                    for i in range(first, min(count, first + chunk))
                )
            )
            created = min(count, first + chunk)
        create_seconds = time.perf_counter() - began

        # The window: whole minutes, from the first minute that begins after a settling pause.
        window_start = (math.floor(time.time() / 60) + 1) * 60
        if window_start - time.time() < 5:
            window_start += 60
        window_end = window_start + minutes * 60
        await asyncio.sleep(max(0.0, window_start - time.time() - 0.5))
        # On PostgreSQL, the database server's CPU too (the engine's is this process's).
        pg_pid = postgres_pid(store_url) if store_url.startswith("postgresql") else None
        db0 = cpu_seconds(pg_pid) if pg_pid else 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(max(0.0, window_end - time.time()))
        expected = count * minutes
        deadline = time.time() + DRAIN_SECONDS

        def in_window() -> list[float]:
            return [
                at - tick
                for (flow, name), at in list(recorder.started.items())
                if window_start <= (tick := tick_of(name)) < window_end
            ]

        while len(in_window()) < expected and time.time() < deadline:
            await asyncio.sleep(0.2)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        db_cpu = cpu_seconds(pg_pid) - db0 if pg_pid else None
        delays = in_window()
    return {
        "mode": mode,
        "schedules": created,
        "minutes": minutes,
        "created_per_s": created / create_seconds,
        "expected_executions": expected,
        "started_executions": len(delays),
        "delay_p50_ms": percentile(delays, 0.50) * 1000 if delays else None,
        "delay_p99_ms": percentile(delays, 0.99) * 1000 if delays else None,
        "delay_max_ms": max(delays) * 1000 if delays else None,
        "delay_mean_ms": statistics.fmean(delays) * 1000 if delays else None,
        "engine_cpu_share": cpu / wall,
        "engine_cpu_ms_per_execution": cpu / len(delays) * 1000 if delays else None,
        "database_cpu_share": db_cpu / wall if db_cpu is not None else None,
        "window_seconds": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["burst", "spread", "both"], default="both")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite (a temporary file), pg (a private PostgreSQL server, fsync on), or a "
        "postgresql:// URL whose server gets a fresh database per run",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    modes = ["burst", "spread"] if args.mode == "both" else [args.mode]
    figures: dict[str, Any] = {
        "reference_sqlite_commits_per_s_full": sqlite_commits_per_second("FULL"),
        "reference_sqlite_commits_per_s_normal": sqlite_commits_per_second("NORMAL"),
        "runs": [],
    }
    with contextlib.ExitStack() as stack:
        server = args.store
        if server == "pg":
            server = stack.enter_context(postgres_server())
        for mode in modes:
            with tempfile.TemporaryDirectory() as folder:
                if server == "sqlite":
                    url = f"sqlite:///{Path(folder) / 'schedules.db'}"
                    figures["runs"].append(
                        asyncio.run(run(mode, args.schedules, args.minutes, url))
                    )
                    continue
                name = f"bench_schedules_{mode}"
                url = create_database(server, name)
                try:
                    figures["runs"].append(
                        asyncio.run(run(mode, args.schedules, args.minutes, url))
                    )
                finally:
                    drop_database(server, name)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for r in figures["runs"]:
        print(
            f"{r['mode']:<7} {r['schedules']:,} schedules, {r['minutes']} min: "
            f"{r['started_executions']:,}/{r['expected_executions']:,} executions started; "
            f"tick -> started p50 {r['delay_p50_ms']:.1f} ms, p99 {r['delay_p99_ms']:.1f} ms, "
            f"max {r['delay_max_ms']:.1f} ms; engine CPU {r['engine_cpu_share']:.1%} of a core "
            f"({r['engine_cpu_ms_per_execution']:.2f} ms per execution); "
            f"created {r['created_per_s']:,.0f} schedules/s"
            + (
                f"; PostgreSQL CPU {r['database_cpu_share']:.1%} of a core"
                if r["database_cpu_share"] is not None
                else ""
            )
        )
    print(
        "reference: SQLite WAL one-row commit, synchronous=FULL "
        f"{figures['reference_sqlite_commits_per_s_full']:>8,.0f} commits/s, NORMAL "
        f"{figures['reference_sqlite_commits_per_s_normal']:>8,.0f} commits/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
