"""Benchmark Express executions: StartSyncExecution through the Python API and over HTTP.

Each figure is printed next to its reference, measured in the same run on the same machine:

1. ``engine``: Express executions per second of a five-step pass/choice flow through
   `Engine.start_sync_execution`, ``--concurrency`` calls in flight (and one at a time, for the
   latency), on the embedded SQLite store. Reference: `Engine.start_execution` of the same
   flow as a Standard flow (which also ends in its start transaction, but writes its history
   events and state), and the raw one-row SQLite commit rate. Target: >= 5,000/s.
2. ``record``: what recording an Express execution costs the store, through the engine's
   writer at the same concurrency: one insert of the ended row (what relayflow does) against
   an insert when it starts and an update when it ends (the other design).
3. ``http``: StartSyncExecution calls per second on a real `relayflow server` (started by
   `bench_api.Server`), ``--concurrency`` in flight. Reference: `bench_api.bench_starts`, the
   StartExecution benchmark of docs/benchmarks.md, on the same server just before. Target:
   StartSyncExecution at least as many calls a second as StartExecution.

With ``--rounds N`` each measurement runs N times, the two sides of each taking turns, and the
median is printed with the rounds.

    .venv/bin/python contrib/bench/bench_express.py [engine|record|http|all]
        [--executions 30000] [--concurrency 256] [--calls 5000] [--http-concurrency 64]
        [--rounds 3] [--synchronous full|normal] [--json]
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
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import RawClient, Server, bench_starts, call, percentile
from bench_fdl import sqlite_commits_per_second

from relayflow.engine import Engine
from relayflow.store import ExecutionRow, open_store

FIVE = """version: v1
type: flow
steps:
  - type: pass
    name: read
    outputMappings:
      - target: n
        source: $input.n
  - type: choice
    name: size
    choices:
      - condition: $.n > 10
        goto: big
    default:
      goto: small
  - type: pass
    name: small
    outputMappings:
      - target: size
        source: small
    end: true
  - type: pass
    name: big
    outputMappings:
      - target: size
        source: big
  - type: succeed
    name: done
"""


def store_url(folder: str, synchronous: str) -> str:
    return f"sqlite:///{folder}/bench.db?synchronous={synchronous}"


async def run_calls(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    """``count`` calls of ``one``, ``concurrency`` at once: rate, latency and CPU per call."""
    numbers = iter(range(count))
    latencies: list[float] = []

    async def caller() -> None:
        for i in numbers:
            began = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - began)

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    return {
        "per_s": count / seconds,
        "seconds": seconds,
        "latency_ms_p50": percentile(latencies, 50) * 1000,
        "latency_ms_p99": percentile(latencies, 99) * 1000,
        "cpu_us_per_call": (time.process_time() - cpu) * 1e6 / count,
    }


async def express_engine(url: str, count: int, concurrency: int) -> dict[str, float]:
    async with Engine(open_store(url)) as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        await engine.start_sync_execution("five", {"n": 0})  # loads the flow once

        async def one(i: int) -> None:
            info = await engine.start_sync_execution("five", {"n": i % 20})
            assert info.status == "Succeeded", info

        return await run_calls(count, concurrency, one)


async def standard_engine(url: str, count: int, concurrency: int) -> dict[str, float]:
    async with Engine(open_store(url)) as engine:
        await engine.create_flow("five", FIVE)
        await engine.start_execution("five", {"n": 0}, name="warm")

        async def one(i: int) -> None:
            info = await engine.start_execution("five", {"n": i % 20}, name=f"s{i}")
            assert info.status == "Succeeded", info

        return await run_calls(count, concurrency, one)


def median_of(rounds: list[dict[str, float]], key: str) -> dict[str, Any]:
    values = [r[key] for r in rounds]
    return {"median": statistics.median(values), "rounds": values}


async def bench_engine(args: argparse.Namespace) -> dict[str, Any]:
    express: list[dict[str, float]] = []
    standard: list[dict[str, float]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            url = store_url(folder, args.synchronous)
            express.append(await express_engine(url, args.executions, args.concurrency))
        with tempfile.TemporaryDirectory() as folder:
            url = store_url(folder, args.synchronous)
            standard.append(await standard_engine(url, args.executions, args.concurrency))
    with tempfile.TemporaryDirectory() as folder:
        one_at_a_time = await express_engine(
            store_url(folder, args.synchronous), min(args.executions, 5000), 1
        )
    return {
        "executions": args.executions,
        "concurrency": args.concurrency,
        "express_per_s": median_of(express, "per_s"),
        "express_cpu_us": median_of(express, "cpu_us_per_call"),
        "express_latency_ms_p50": median_of(express, "latency_ms_p50"),
        "express_latency_ms_p99": median_of(express, "latency_ms_p99"),
        "standard_per_s": median_of(standard, "per_s"),
        "standard_cpu_us": median_of(standard, "cpu_us_per_call"),
        "one_at_a_time": one_at_a_time,
    }


def ended_row(i: int, status: str, stopped: float | None) -> ExecutionRow:
    return ExecutionRow(
        0,
        uuid.uuid4().hex,
        "five",
        f"r:{uuid.uuid4()}",
        "flow-id",
        1,
        status,
        json.dumps({"n": i}),
        json.dumps({"n": i, "size": "small"}) if stopped else None,
        "",
        "",
        time.time(),
        stopped,
        json.dumps({"status": status}),
        "",
    )


async def record_rate(url: str, count: int, concurrency: int, *, two_writes: bool) -> float:
    """Rows recorded per second through the engine's writer, one way or the other."""
    async with Engine(open_store(url)) as engine:
        committer = engine._runtime.committer  # the writer every operation goes through

        async def one(i: int) -> None:
            if not two_writes:
                row = ended_row(i, "Succeeded", time.time())
                await committer.submit(lambda tx, ctx: tx.insert_execution(row), atomic=False)
                return
            row = ended_row(i, "Running", None)
            row_id = await committer.submit(lambda tx, ctx: tx.insert_execution(row), atomic=False)
            assert row_id is not None
            output = json.dumps({"n": i, "size": "small"})
            await committer.submit(
                lambda tx, ctx: tx.update_execution(
                    row_id,
                    status="Succeeded",
                    state='{"status":"Succeeded"}',
                    output=output,
                    error="",
                    cause="",
                    stopped=time.time(),
                ),
                atomic=False,
            )

        return (await run_calls(count, concurrency, one))["per_s"]


async def bench_record(args: argparse.Namespace) -> dict[str, Any]:
    once: list[float] = []
    twice: list[float] = []
    for _ in range(args.rounds):
        for two_writes, into in ((False, once), (True, twice)):
            with tempfile.TemporaryDirectory() as folder:
                url = store_url(folder, args.synchronous)
                into.append(
                    await record_rate(url, args.executions, args.concurrency, two_writes=two_writes)
                )
    return {
        "insert_at_end_per_s": {"median": statistics.median(once), "rounds": once},
        "insert_then_update_per_s": {"median": statistics.median(twice), "rounds": twice},
    }


async def sync_calls(server: Server, client: RawClient, calls: int, concurrency: int) -> dict:
    flow = f"express{uuid.uuid4().hex[:8]}"
    await call(
        client,
        {"Action": "CreateFlow", "Name": flow, "Definition": FIVE, "ExecutionMode": "Express"},
    )

    async def one(i: int) -> None:
        params = {
            "Action": "StartSyncExecution",
            "FlowName": flow,
            "ExecutionName": f"s{i}",
            "Input": json.dumps({"n": i % 20}),
        }
        doc = await call(client, params)
        assert doc["Status"] == "Succeeded", doc

    server_cpu = server.cpu_seconds()
    figures = await run_calls(calls, concurrency, one)
    figures["server_cpu_ms_per_call"] = (server.cpu_seconds() - server_cpu) * 1000 / calls
    return figures


async def bench_http(args: argparse.Namespace) -> dict[str, Any]:
    starts: list[dict[str, Any]] = []
    syncs: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            command = [str(Path(sys.executable).with_name("relayflow"))]
            server = Server(Path(folder), args.synchronous, command)
            client = RawClient(server.port, args.http_concurrency)
            try:
                # The reference first, on a fresh server; then StartSyncExecution on it.
                starts.append(await bench_starts(server, client, args.calls, args.http_concurrency))
                syncs.append(await sync_calls(server, client, args.calls, args.http_concurrency))
            finally:
                await client.close()
                code = server.stop()
            if code != 0:
                raise SystemExit(f"relayflow server exited with {code}")
    return {
        "calls": args.calls,
        "concurrency": args.http_concurrency,
        "start_execution_per_s": median_of(starts, "starts_per_s"),
        "start_execution_server_cpu_ms": median_of(starts, "server_cpu_ms_per_start"),
        "start_sync_execution_per_s": median_of(syncs, "per_s"),
        "start_sync_execution_server_cpu_ms": median_of(syncs, "server_cpu_ms_per_call"),
        "start_sync_execution_latency_ms_p50": median_of(syncs, "latency_ms_p50"),
    }


def rounds_text(figure: dict[str, Any], unit: str = "/s") -> str:
    shown = ", ".join(f"{v:,.0f}" for v in figure["rounds"])
    return f"{figure['median']:,.0f}{unit} ({shown})"


def print_figures(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"store: SQLite WAL, synchronous={args.synchronous}; {os.cpu_count()} cores; "
        f"medians of {args.rounds} round(s)"
    )
    print(
        f"reference: one-row commit, synchronous=FULL   "
        f"{figures['reference_sqlite_commits_per_s_full']:>10,.0f} commits/s"
    )
    e = figures.get("engine")
    if e:
        print(
            f"engine, five pass/choice steps, {e['executions']:,} executions, "
            f"{e['concurrency']} in flight:"
        )
        verdict = "met" if e["express_per_s"]["median"] >= 5000 else "NOT met"
        print(
            f"  Express  start_sync_execution  {rounds_text(e['express_per_s'])}  "
            f"(target >= 5,000/s: {verdict}); CPU {e['express_cpu_us']['median']:.0f} us each; "
            f"call p50 {e['express_latency_ms_p50']['median']:.1f} ms, "
            f"p99 {e['express_latency_ms_p99']['median']:.1f} ms"
        )
        print(
            f"  reference: Standard start_execution  {rounds_text(e['standard_per_s'])}; "
            f"CPU {e['standard_cpu_us']['median']:.0f} us each"
        )
        one = e["one_at_a_time"]
        print(
            f"  Express one at a time: {one['per_s']:,.0f}/s, call p50 "
            f"{one['latency_ms_p50']:.2f} ms, p99 {one['latency_ms_p99']:.2f} ms"
        )
    r = figures.get("record")
    if r:
        print("recording an Express execution, through the engine's writer:")
        print(f"  one insert at its end      {rounds_text(r['insert_at_end_per_s'])}")
        print(f"  insert at start + update   {rounds_text(r['insert_then_update_per_s'])}")
    h = figures.get("http")
    if h:
        print(
            f"HTTP API, {h['calls']:,} calls, {h['concurrency']} in flight (raw client, "
            "same machine):"
        )
        ratio = h["start_sync_execution_per_s"]["median"] / h["start_execution_per_s"]["median"]
        verdict = "met" if ratio >= 1 else "NOT met"
        print(
            f"  StartSyncExecution  {rounds_text(h['start_sync_execution_per_s'])}; "
            f"server CPU {h['start_sync_execution_server_cpu_ms']['median']:.2f} ms a call; "
            f"p50 {h['start_sync_execution_latency_ms_p50']['median']:.1f} ms"
        )
        print(
            f"  reference: StartExecution (bench_api)  {rounds_text(h['start_execution_per_s'])}; "
            f"server CPU {h['start_execution_server_cpu_ms']['median']:.2f} ms a call"
        )
        print(f"  ratio {ratio:.2f} (target >= 1: {verdict})")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "reference_sqlite_commits_per_s_full": sqlite_commits_per_second("FULL"),
    }
    if args.what in ("engine", "all"):
        figures["engine"] = await bench_engine(args)
    if args.what in ("record", "all"):
        figures["record"] = await bench_record(args)
    if args.what in ("http", "all"):
        figures["http"] = await bench_http(args)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", default="all", choices=["engine", "record", "http", "all"]
    )
    parser.add_argument("--executions", type=int, default=30_000, help="engine executions")
    parser.add_argument("--concurrency", type=int, default=256, help="engine calls in flight")
    parser.add_argument("--calls", type=int, default=5000, help="HTTP calls of each action")
    parser.add_argument("--http-concurrency", type=int, default=64, help="HTTP calls in flight")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_figures(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
