"""Benchmark bulk actions: stop, then redrive, 10,000 executions, over HTTP and in-process.

Each run parks ``--count`` executions (10,000 by default) at a waitForCallback task whose
queue nobody reads (an integration that only says "sent"), then measures, on a fresh store
each time:

1. ``http``: a real `relayflow server` subprocess on the store; the benchmark pages through
   StopExecutions (Status Running, Limit 1,000) with `relayflow.client.Client`, the path
   `relayflow executions stop FLOW --yes` takes, until the last page; then pages through
   RedriveExecutions (Status Stopped) the same way, which makes every execution Running again
   at its task (a new attempt sent to the queue).
2. ``engine``: the same two bulk actions with `Engine.stop_executions` and
   `Engine.redrive_executions`, in-process.

Each figure is executions per second: those the answers list as done over the wall time of all
the pages. Every execution is checked afterwards (all Running again after the redrive, each
with one ExecutionStopped and one ExecutionRedriven event in a sample).

References measured in the same run: the same store's StopExecution one call at a time
(``--reference`` executions, in-process, each awaited before the next), and the machine's raw
one-row commit rate of SQLite (WAL) or PostgreSQL.

    .venv/bin/python contrib/bench/bench_bulk.py [--count 10000] [--store sqlite|pg]
        [--reference 1000] [--synchronous full|normal] [--json]

With ``--store pg`` a private PostgreSQL server holds the stores (one new database per part);
the server of the ``http`` part then runs on PostgreSQL too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import QUEUE, QUEUE_PLUGIN
from bench_engine import postgres_commits_per_second
from bench_fdl import sqlite_commits_per_second
from replicas import create_database, drop_database, postgres_server

from relayflow.engine import Engine, FunctionIntegration, Submitted
from relayflow.engine.bulk import ExecutionFilter
from relayflow.engine.integration import TaskOutcome, TaskRequest
from relayflow.store import open_store

FLOW_NAME = "bulk"
FLOW = f"""version: v1
type: flow
steps:
  - type: task
    name: wait_for_partner
    resourceArn: {QUEUE}
    pattern: waitForCallback
    serviceParams:
      MessageBody: $
"""
KEY_ID, SECRET = "bench-admin", "bench-secret-0123456789"
PAGE = 1000  # the bulk actions' largest Limit
SERVING = re.compile(r"relayflow serving the API on http://[^\s:]+:(?P<port>\d+)")
SAMPLE = 20  # executions whose histories are checked after each part


async def parked(request: TaskRequest) -> TaskOutcome:
    """The queue: every message is "sent", and nobody ever reports on its task."""
    return Submitted({"MessageId": str(request.task_id)})


def new_engine(url: str) -> Engine:
    integration = FunctionIntegration({QUEUE: parked})
    return Engine(open_store(url), integrations=[integration], poll_seconds=0.05)


class Stores:
    """Fresh store URLs: SQLite files in one temporary folder, or new PostgreSQL databases."""

    def __init__(self, folder: Path, server: str | None, synchronous: str) -> None:
        self.folder, self.server, self.synchronous = folder, server, synchronous
        self.made = 0

    @property
    def label(self) -> str:
        """What the figures were measured on."""
        return "PostgreSQL" if self.server else f"SQLite WAL, synchronous={self.synchronous}"

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A store nobody used yet, removed afterwards."""
        self.made += 1
        if self.server is None:
            path = self.folder / f"bulk{self.made}.db"
            yield f"sqlite:///{path}?synchronous={self.synchronous}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = f"bench_bulk_{os.getpid()}_{self.made}"
        url = create_database(self.server, name)
        try:
            yield url
        finally:
            drop_database(self.server, name)


async def park(url: str, count: int) -> float:
    """Start ``count`` executions that wait at their task; seconds it took."""
    began = time.perf_counter()
    async with new_engine(url) as engine:
        await engine.create_flow(FLOW_NAME, FLOW)
        for first in range(0, count, PAGE):
            names = [f"order-{i:06}" for i in range(first, min(first + PAGE, count))]
            await asyncio.gather(*(engine.start_execution(FLOW_NAME, {}, n) for n in names))
        running = ExecutionFilter("Running")
        assert await engine.count_executions_matching(FLOW_NAME, running) == count
    return time.perf_counter() - began


def _rate(done: int, seconds: float) -> dict[str, Any]:
    return {"executions": done, "seconds": seconds, "per_s": done / seconds if seconds else 0.0}


async def check(url: str, count: int, status: str, *events: str) -> None:
    """Every execution has ``status``; a sample has each of ``events`` once in its history."""
    async with new_engine(url) as engine:
        matched = await engine.count_executions_matching(FLOW_NAME, ExecutionFilter(status))
        if matched != count:
            raise SystemExit(f"{matched} of {count} executions are {status}")
        for i in range(0, count, max(1, count // SAMPLE)):
            page = await engine.get_execution_history(FLOW_NAME, f"order-{i:06}", 1000)
            types = [e.type for e in page.items]
            for event in events:
                if types.count(event) != 1:
                    raise SystemExit(f"order-{i:06} has {types.count(event)} {event} events")


# -- over HTTP --------------------------------------------------------------------------------


@contextlib.contextmanager
def server_on(url: str, folder: Path) -> Iterator[int]:
    """A `relayflow server` subprocess on the store ``url``; yields its port."""
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "{url}"\n\n[server]\nport = 0\n\n'
        f'[[server.access_keys]]\nid = "{KEY_ID}"\nsecret = "{SECRET}"\nrole = "admin"\n\n'
        '[plugins]\nmodules = ["queue_plugin"]\ndisable = ["mns"]\n',
        encoding="utf-8",
    )
    (folder / "queue_plugin.py").write_text(QUEUE_PLUGIN, encoding="utf-8")
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
    exe = str(Path(sys.executable).with_name("relayflow"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "server", "--config", "relayflow.toml"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := SERVING.search(log.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"relayflow server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield int(found["port"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_pages(port: int, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Page through ``action`` until the last page, as the command line does; the rate."""
    from relayflow.client import Client

    done = failed = pages = 0
    with Client(f"http://127.0.0.1:{port}", KEY_ID, SECRET, timeout=120) as client:
        token = ""
        began = time.perf_counter()
        while True:
            answer = client.request(
                action, {**params, "FlowName": FLOW_NAME, "Limit": PAGE, "NextToken": token}
            )
            done += len(answer["Done"])
            failed += len(answer["Failed"]) + len(answer["Skipped"])
            pages += 1
            token = answer["NextToken"]
            if not token:
                break
        seconds = time.perf_counter() - began
    if failed:
        raise SystemExit(f"{action}: {failed} executions skipped or failed")
    return {**_rate(done, seconds), "pages": pages}


def bench_http(stores: Stores, count: int) -> dict[str, Any]:
    with stores.fresh() as url:
        setup = asyncio.run(park(url, count))
        with tempfile.TemporaryDirectory() as folder, server_on(url, Path(folder)) as port:
            stop = http_pages(port, "StopExecutions", {"Status": "Running"})
            redrive = http_pages(port, "RedriveExecutions", {"Status": "Stopped"})
        asyncio.run(check(url, count, "Running", "ExecutionStopped", "ExecutionRedriven"))
    return {"setup_seconds": setup, "stop": stop, "redrive": redrive}


# -- in-process -------------------------------------------------------------------------------


async def engine_pages(engine: Engine, action: str) -> dict[str, Any]:
    done = failed = pages = 0
    token = ""
    began = time.perf_counter()
    while True:
        if action == "stop":
            result = await engine.stop_executions(FLOW_NAME, limit=PAGE, next_token=token)
        else:
            result = await engine.redrive_executions(
                FLOW_NAME, filters=ExecutionFilter("Stopped"), limit=PAGE, next_token=token
            )
        done += len(result.done)
        failed += len(result.failed) + len(result.skipped)
        pages += 1
        token = result.next_token
        if not token:
            break
    seconds = time.perf_counter() - began
    if failed:
        raise SystemExit(f"{action}: {failed} executions skipped or failed")
    return {**_rate(done, seconds), "pages": pages}


async def bench_engine(stores: Stores, count: int) -> dict[str, Any]:
    with stores.fresh() as url:
        setup = await park(url, count)
        async with new_engine(url) as engine:
            stop = await engine_pages(engine, "stop")
            redrive = await engine_pages(engine, "redrive")
        await check(url, count, "Running", "ExecutionStopped", "ExecutionRedriven")
    return {"setup_seconds": setup, "stop": stop, "redrive": redrive}


async def bench_one_at_a_time(stores: Stores, count: int) -> dict[str, Any]:
    """The reference: StopExecution awaited one call after the other."""
    with stores.fresh() as url:
        await park(url, count)
        async with new_engine(url) as engine:
            began = time.perf_counter()
            for i in range(count):
                await engine.stop_execution(FLOW_NAME, f"order-{i:06}")
            seconds = time.perf_counter() - began
        await check(url, count, "Stopped", "ExecutionStopped")
    return _rate(count, seconds)


# -- the run ----------------------------------------------------------------------------------


def measure(args: argparse.Namespace, folder: Path, server: str | None) -> dict[str, Any]:
    stores = Stores(folder, server, args.synchronous)
    figures: dict[str, Any] = {"store": stores.label, "count": args.count}
    if server is None:
        figures["reference_commits_per_s"] = sqlite_commits_per_second(args.synchronous.upper())
    else:
        figures["reference_commits_per_s"] = postgres_commits_per_second(server)
    figures["one_at_a_time"] = asyncio.run(bench_one_at_a_time(stores, args.reference))
    figures["engine"] = asyncio.run(bench_engine(stores, args.count))
    figures["http"] = bench_http(stores, args.count)
    return figures


def report(f: dict[str, Any]) -> None:
    target = 1000
    print(f"store: {f['store']}; {f['count']:,} executions parked at a waitForCallback task")
    print(f"reference: one-row commit              {f['reference_commits_per_s']:>10,.0f} /s")
    one = f["one_at_a_time"]
    print(
        f"reference: StopExecution one at a time {one['per_s']:>10,.0f} executions/s "
        f"({one['executions']:,} in {one['seconds']:.2f} s, in-process)"
    )
    for part, label in (("http", "HTTP API, pages of 1,000"), ("engine", "in-process engine")):
        for action in ("stop", "redrive"):
            r = f[part][action]
            mark = "ok" if r["per_s"] >= target else f"BELOW the target of {target:,}/s"
            print(
                f"bulk {action:<7} {label:<25} {r['per_s']:>8,.0f} executions/s "
                f"({r['executions']:,} in {r['seconds']:.2f} s, {r['pages']} pages) {mark}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="executions to act on")
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite (the default), pg (a private PostgreSQL for the run) or a postgresql:// URL",
    )
    parser.add_argument(
        "--reference", type=int, default=1000, help="executions stopped one call at a time"
    )
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.count < 1 or args.reference < 1:
        parser.error("--count and --reference must be at least 1")
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
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        figures = measure(args, folder, server)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
