"""Benchmark the durable engine on its embedded SQLite store.

Three measurements, each printed next to the raw SQLite commit rate measured in the same run:

1. ``steps``: one execution of 1,000 pass steps — durable time per step. Also with one
   transaction per step (`steps_per_transition = 1`), the slowest way the engine can run them.
2. ``throughput``: 1,000 concurrent executions of a 10-step flow whose steps are
   requestResponse tasks answered in-process — step transitions per second.
3. ``waiting``: 100,000 executions parked on waitForCallback tasks — the engine's memory as
   they pile up, and the time to describe one and to list a page.

    .venv/bin/python contrib/bench/bench_engine.py [steps|throughput|waiting|all]
        [--waiting 100000] [--synchronous full|normal] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_fdl import sqlite_commits_per_second

from relayflow.engine import Engine, FunctionIntegration, Limits, Submitted, Succeeded
from relayflow.engine.integration import TaskOutcome, TaskRequest
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


def new_engine(folder: str, synchronous: str, **kwargs: Any) -> Engine:
    store = open_store(f"sqlite:///{folder}/bench.db?synchronous={synchronous}")
    integration = FunctionIntegration({"bench:Work": work, "acs:mns:::/queues/jobs/messages": park})
    return Engine(store, integrations=[integration], poll_seconds=0.05, **kwargs)


async def bench_steps(synchronous: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, per_transition in (("batched", 2000), ("one_transaction_per_step", 1)):
        with tempfile.TemporaryDirectory() as folder:
            limits = Limits(steps_per_transition=per_transition)
            async with new_engine(folder, synchronous, limits=limits) as engine:
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


async def bench_throughput(synchronous: str, executions: int, steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        async with new_engine(folder, synchronous) as engine:
            await engine.create_flow("tasks", task_flow(steps))
            start = time.perf_counter()
            await asyncio.gather(
                *(engine.start_execution("tasks", {}, name=f"e{i}") for i in range(executions))
            )

            async def all_done() -> bool:
                running = await engine.read(lambda tx: tx.count_executions("Running"))
                return running == 0

            while not await all_done():
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - start
            succeeded = await engine.read(lambda tx: tx.count_executions("Succeeded"))
            assert succeeded == executions, succeeded
    transitions = executions * steps
    return {
        "executions": executions,
        "steps_each": steps,
        "seconds": elapsed,
        "transitions_per_s": transitions / elapsed,
    }


async def bench_waiting(synchronous: str, total: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        async with new_engine(folder, synchronous) as engine:
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
            db_mb = os.path.getsize(f"{folder}/bench.db") / 2**20
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["steps", "throughput", "waiting", "all"]
    )
    parser.add_argument("--waiting", type=int, default=100_000, help="executions to park")
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {
        "synchronous": args.synchronous,
        "reference_sqlite_commits_per_s_full": sqlite_commits_per_second("FULL"),
        "reference_sqlite_commits_per_s_normal": sqlite_commits_per_second("NORMAL"),
    }
    ref = figures[f"reference_sqlite_commits_per_s_{args.synchronous}"]
    commit_ms = 1000 / ref
    if args.which in ("steps", "all"):
        figures["steps"] = asyncio.run(bench_steps(args.synchronous))
    if args.which in ("throughput", "all"):
        figures["throughput"] = asyncio.run(bench_throughput(args.synchronous, args.executions, 10))
    if args.which in ("waiting", "all"):
        figures["waiting"] = asyncio.run(bench_waiting(args.synchronous, args.waiting))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"store: SQLite WAL, synchronous={args.synchronous}")
    print(
        f"reference: one-row commit, synchronous=FULL    "
        f"{figures['reference_sqlite_commits_per_s_full']:>10,.0f} commits/s"
    )
    print(
        f"reference: one-row commit, synchronous=NORMAL  "
        f"{figures['reference_sqlite_commits_per_s_normal']:>10,.0f} commits/s"
    )
    if "steps" in figures:
        s = figures["steps"]
        for label, data in s.items():
            print(
                f"1,000 pass steps, {label.replace('_', ' '):<27} "
                f"{data['ms_per_step']:.4f} ms/step  ({data['ms_per_step'] / commit_ms:.2f} x "
                "one commit; target <= 0.25 ms)"
            )
    if "throughput" in figures:
        t = figures["throughput"]
        print(
            f"{t['executions']:,} executions x {t['steps_each']} task steps: "
            f"{t['transitions_per_s']:,.0f} step transitions/s in {t['seconds']:.1f} s "
            f"(target >= 10,000/s)"
        )
    if "waiting" in figures:
        w = figures["waiting"]
        print(
            f"{w['executions']:,} executions parked on callbacks ({w['running']:,} running), "
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
