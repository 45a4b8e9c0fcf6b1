"""Benchmark the console's execution list: pages, filters and counts at 100,000+ executions.

The console (docs/console.md) lists a flow's executions with ListExecutions (50 a page,
MetadataOnly, paged by NextToken) and counts them by status with CountExecutions, six calls on
each load of the list. This fills a store with --executions executions of the flow `orders`
(plus a tenth as many in each of `billing` and `reports`), then times each query three ways:

- ``store``: the store's own query alone (`Transaction.list_executions` / `count_matching`
  in a reader transaction): the reference, what the SQL costs on the same store;
- ``engine``: the engine's action in process (`Engine.list_executions`,
  `count_executions_matching`): the server's side of the request, reads through the
  engine's committer included, HTTP left out;
- ``http``: the console's own route over HTTP (`POST /console/api/<Action>`, signed in as a
  keyless admin on loopback) to a real `relayflow server` on the same store, timed by the
  client: the server's work plus HTTP and JSON on loopback.

The target (issue 17) is 200 ms server side for each page: the ``engine`` p99.

The executions are written through the store's API (`Transaction.insert_execution`, 10,000 a
transaction) on SQLite, and by COPY into the same columns on PostgreSQL (where the store's
insert is one round trip a row): 90 % Succeeded, 5 % Failed, 3 % Running, 1.5 % Stopped,
0.5 % TimedOut and none Starting (a filter that matches nothing is the worst case of a scan);
started at random over 30 days; named by a random hex uid, a fifth of them `nightly-<hex>`.
On PostgreSQL the fill ends with ``VACUUM (ANALYZE) executions``, what autovacuum does after
a bulk load (the planner's statistics, and the visibility map an index-only count needs).

    .venv/bin/python contrib/bench/bench_console.py [--executions 100000] [--repeat 20]
        [--walk 100] [--store sqlite|pg|postgresql://...] [--no-http] [--json]

Each query runs --repeat times (after one run that is not counted); the walk follows
NextToken from the first page for --walk pages and times each page. "deep page" starts at
the middle of the flow's executions (its NextToken is the name there, as the engine makes
them), "last page" at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from replicas import (
    EXE,
    SERVING,
    clean_env,
    create_database,
    drop_database,
    percentile,
    postgres_server,
    stop_process,
)

from relayflow.engine import Engine
from relayflow.engine.bulk import ExecutionFilter
from relayflow.engine.model import ExecutionState
from relayflow.engine.snapshot import dump_state
from relayflow.store import ExecutionRow, Transaction, open_store
from relayflow.store.postgres_sql import INSERT_EXECUTION

FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"
LISTED = "orders"
OTHERS = ("billing", "reports")
PAGE = 50  # the console's page (static/views/executions.js)
TARGET_MS = 200.0
CHUNK = 10_000
DAY = 86_400.0
SPAN_DAYS = 30
STATUS_MIX = (
    ("Succeeded", 0.90),
    ("Failed", 0.05),
    ("Running", 0.03),
    ("Stopped", 0.015),
    ("TimedOut", 0.005),
)
STATUSES = ("Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut")


def _rows(flow: str, flow_id: str, count: int, now: float, seed: int) -> Iterator[ExecutionRow]:
    """``count`` executions of ``flow``, statuses, names and start times as the docstring says."""
    rng = random.Random(seed)
    state = dump_state(ExecutionState())
    weights = [w for _, w in STATUS_MIX]
    names = [s for s, _ in STATUS_MIX]
    for _ in range(count):
        uid = f"{rng.getrandbits(128):032x}"
        name = f"nightly-{uid[:24]}" if rng.random() < 0.2 else uid
        status = rng.choices(names, weights)[0]
        started = now - rng.random() * SPAN_DAYS * DAY
        stopped = None if status == "Running" else started + rng.random() * 60
        yield ExecutionRow(
            0,
            uid,
            flow,
            name,
            flow_id,
            1,
            status,
            '{"n": 1}',
            None if stopped is None else '{"n": 2}',
            "Boom" if status == "Failed" else "",
            "it failed" if status == "Failed" else "",
            started,
            stopped,
            state,
            "",
        )


def fill(url: str, count: int, now: float) -> float:
    """Create the flows and write their executions through the store's API; seconds taken."""
    began = time.perf_counter()

    async def create() -> None:
        async with Engine(open_store(url)) as engine:
            for name in (LISTED, *OTHERS):
                await engine.create_flow(name, FLOW)

    asyncio.run(create())
    store = open_store(url)
    try:
        with store.reader() as tx:
            ids = {n: tx.get_flow(n).id for n in (LISTED, *OTHERS)}  # type: ignore[union-attr]
        plan = [(LISTED, count), *((n, max(1, count // 10)) for n in OTHERS)]
        written = 0
        for seed, (flow, n) in enumerate(plan):
            rows = _rows(flow, ids[flow], n, now, seed)
            for low in range(0, n, CHUNK):
                chunk = [next(rows) for _ in range(min(CHUNK, n - low))]
                if url.startswith("postgresql"):
                    _copy(url, chunk)
                else:
                    with store.transaction() as tx:
                        for row in chunk:
                            assert tx.insert_execution(row) is not None
                written += len(chunk)
                if sys.stderr.isatty():
                    print(f"\r  written {written:,}", end="", file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    finally:
        store.close()
    if url.startswith("postgresql"):
        # What autovacuum does after a bulk load, done now: the planner's statistics, and the
        # visibility map that lets a count read the index alone.
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) executions")
    return time.perf_counter() - began


def _copy(url: str, rows: list[ExecutionRow]) -> None:
    """Write rows into a PostgreSQL store with COPY, the columns of the store's own INSERT.

    The store's `insert_execution` is one round trip a row (about 25 minutes for a million
    here); COPY writes the same rows, through the same table and indexes, in seconds.
    """
    import psycopg

    columns = INSERT_EXECUTION.split("(", 1)[1].split(")", 1)[0]
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY executions ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row.insert_values())


@dataclass
class Query:
    """One console query: a page of ListExecutions, or a CountExecutions."""

    label: str
    count: bool = False
    status: str | None = None
    prefix: str | None = None
    started_from: float | None = None
    started_to: float | None = None
    token: str = ""
    at_most: int | None = None  # a bounded count: the store's alone (the API has no bound yet)
    samples: dict[str, list[float]] = field(default_factory=dict)
    matched: int = 0

    def store_args(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "name_prefix": self.prefix,
            "started_from": self.started_from,
            "started_to": self.started_to,
        }

    def api_params(self) -> dict[str, str]:
        p: dict[str, str] = {"FlowName": LISTED}
        if self.status:
            p["Status"] = self.status
        if self.prefix:
            p["ExecutionNamePrefix"] = self.prefix
        if self.started_from is not None:
            p["StartedTimeBegin"] = _rfc3339(self.started_from)
        if self.started_to is not None:
            p["StartedTimeEnd"] = _rfc3339(self.started_to)
        if not self.count:
            p.update(MetadataOnly="true", Limit=str(PAGE))
            if self.token:
                p["NextToken"] = self.token
        return p


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def queries(now: float, middle: str, last: str) -> list[Query]:
    """The console's queries: pages with each filter and their combinations, and counts."""
    day = (now - DAY, now)
    hour = (now - 10 * DAY, now - 10 * DAY + 3600)
    out = [
        Query("first page"),
        Query("deep page (middle)", token=middle),
        Query("last page", token=last),
    ]
    out += [Query(f"status {s}", status=s) for s in ("Running", "Failed", "TimedOut", "Starting")]
    out += [
        Query("prefix nightly-", prefix="nightly-"),
        Query("prefix ab", prefix="ab"),
        Query("prefix zz (none)", prefix="zz"),
        Query("started last day", started_from=day[0], started_to=day[1]),
        Query("started one hour", started_from=hour[0], started_to=hour[1]),
        Query("Failed + nightly-", status="Failed", prefix="nightly-"),
        Query("Failed + last day", status="Failed", started_from=day[0], started_to=day[1]),
        Query("nightly- + last day", prefix="nightly-", started_from=day[0], started_to=day[1]),
        Query(
            "Failed + nightly- + day",
            status="Failed",
            prefix="nightly-",
            started_from=day[0],
            started_to=day[1],
        ),
        Query("Starting + one hour", status="Starting", started_from=hour[0], started_to=hour[1]),
        Query("deep page, Failed", status="Failed", token=middle),
    ]
    out += [Query(f"count {s}", count=True, status=s) for s in STATUSES]
    out += [
        Query("count all", count=True),
        Query("count Failed + last day", True, "Failed", None, *day),
        Query("count nightly-", True, None, "nightly-"),
        Query("count Succeeded <= 10,000", count=True, status="Succeeded", at_most=10_000),
        Query("count all <= 10,000", count=True, at_most=10_000),
    ]
    return out


def _timed(samples: list[float], fn: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    result = fn()
    samples.append((time.perf_counter() - began) * 1000)
    return result


async def _atimed(samples: list[float], coro: Any) -> Any:
    began = time.perf_counter()
    result = await coro
    samples.append((time.perf_counter() - began) * 1000)
    return result


def measure_store(url: str, qs: list[Query], repeat: int) -> None:
    """The reference: each query straight on the store, in a reader transaction."""
    store = open_store(url)
    try:
        for q in qs:
            samples = q.samples.setdefault("store", [])
            for n in range(repeat + 1):
                with store.reader() as tx:
                    got = _timed(samples, lambda tx=tx, q=q: _store_query(tx, q))  # type: ignore[misc]
                if n == 0:
                    samples.clear()  # the warm-up run is not counted
                    q.matched = got if q.count else min(len(got), PAGE)
    finally:
        store.close()


def _store_query(tx: Transaction, q: Query) -> Any:
    if q.count:
        return tx.count_matching(LISTED, **q.store_args(), at_most=q.at_most)
    return tx.list_executions(LISTED, after=q.token, limit=PAGE + 1, **q.store_args())


async def measure_engine(url: str, qs: list[Query], repeat: int, walk: int) -> list[float]:
    """The server's side: each query as the engine's action, in process; then the walk."""
    async with Engine(open_store(url)) as engine:
        for q in (q for q in qs if q.at_most is None):
            samples = q.samples.setdefault("engine", [])
            for n in range(repeat + 1):
                if q.count:
                    filters = ExecutionFilter(q.status, q.prefix, q.started_from, q.started_to)
                    await _atimed(samples, engine.count_executions_matching(LISTED, filters))
                else:
                    call = engine.list_executions(
                        LISTED, limit=PAGE, next_token=q.token, **q.store_args()
                    )
                    await _atimed(samples, call)
                if n == 0:
                    samples.clear()
        pages: list[float] = []
        token = ""
        for _ in range(walk):
            page = await _atimed(
                pages, engine.list_executions(LISTED, limit=PAGE, next_token=token)
            )
            token = page.next_token
            if not token:
                break
    return pages


@contextlib.contextmanager
def server(url: str, folder: Path) -> Iterator[str]:
    """A `relayflow server` on the store, keyless on loopback; yields its base URL."""
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "{url}"\n\n[server]\nhost = "127.0.0.1"\nport = 0\n',
        encoding="utf-8",
    )
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [EXE, "server", "--config", "relayflow.toml"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = SERVING.search(log.read_text(encoding="utf-8", errors="replace"))
            if found:
                break
            if process.poll() is not None:
                raise SystemExit(f"the server stopped: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        else:
            raise SystemExit("the server did not start within 60 s")
        yield f"http://127.0.0.1:{found['port']}"
    finally:
        stop_process(process)


def measure_http(base: str, qs: list[Query], repeat: int) -> None:
    """The console's routes over HTTP, as its page calls them (cookie, Origin, CSRF)."""
    with httpx.Client(base_url=base, timeout=60) as http:
        me = http.get("/console/session").json()
        headers = {"Origin": base, "X-Relayflow-CSRF": me["csrf"]}
        for q in (q for q in qs if q.at_most is None):
            action = "CountExecutions" if q.count else "ListExecutions"
            samples = q.samples.setdefault("http", [])
            for n in range(repeat + 1):
                answer = _timed(
                    samples,
                    lambda a=action, q=q: http.post(  # type: ignore[misc]
                        f"/console/api/{a}", json=q.api_params(), headers=headers
                    ),
                )
                if answer.status_code != 200:
                    raise SystemExit(f"{q.label}: {answer.status_code} {answer.text[:300]}")
                if n == 0:
                    samples.clear()
                    body = answer.json()
                    got = body["Matched"] if q.count else len(body["Executions"])
                    want = q.matched
                    if got != want:
                        raise SystemExit(f"{q.label}: the server answered {got}, the store {want}")


def _figures(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }


def run(url: str, count: int, repeat: int, walk: int, http: bool) -> dict[str, Any]:
    now = time.time()
    filled = fill(url, count, now)
    store = open_store(url)
    try:
        with store.reader() as tx:
            names = [r.name for r in tx.list_executions(LISTED, after="", limit=1)]
            # The names at the middle and near the end, through the store's keyset order.
            middle = _nth_name(tx, count // 2)
            last = _nth_name(tx, max(0, count - PAGE // 2))
    finally:
        store.close()
    assert names
    qs = queries(now, middle, last)
    measure_store(url, qs, repeat)
    walk_pages = asyncio.run(measure_engine(url, qs, repeat, walk))
    if http:
        with tempfile.TemporaryDirectory() as folder, server(url, Path(folder)) as base:
            measure_http(base, qs, repeat)
    return {
        "store": url.split("://", 1)[0],
        "executions": count,
        "others": count // 10 * len(OTHERS),
        "fill_seconds": round(filled, 1),
        "repeat": repeat,
        "target_ms": TARGET_MS,
        "queries": [
            {
                "query": q.label,
                "matched": q.matched,
                **{k: _figures(v) for k, v in q.samples.items()},
            }
            for q in qs
        ],
        "walk": {"pages": len(walk_pages), **_figures(walk_pages)},
    }


def _nth_name(tx: Transaction, n: int) -> str:
    """The name of the flow's n-th execution by name (a NextToken as the engine makes it)."""
    after = ""
    step = 100_000
    while n > 0:
        take = min(step, n)
        rows = tx.list_executions(LISTED, after=after, limit=take)
        if not rows:
            break
        after = rows[-1].name
        n -= len(rows)
    return after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000, help="of the listed flow")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each query")
    parser.add_argument("--walk", type=int, default=100, help="pages followed by NextToken")
    parser.add_argument(
        "--store",
        default="sqlite",
        help="sqlite (a temporary file), pg (a private PostgreSQL server), or a postgresql:// "
        "URL whose server gets a fresh database for the run",
    )
    parser.add_argument("--no-http", action="store_true", help="leave out the server over HTTP")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.store == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(folder) / 'console.db'}"
        else:
            pg = args.store
            if pg == "pg":
                pg = stack.enter_context(postgres_server())
            url = create_database(pg, "bench_console")
            stack.callback(drop_database, pg, "bench_console")
        result = run(url, args.executions, args.repeat, args.walk, not args.no_http)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    print(
        f"store {result['store']}: {result['executions']:,} executions of {LISTED} "
        f"(+{result['others']:,} of other flows), written in {result['fill_seconds']} s; "
        f"{result['repeat']} runs a query, pages of {PAGE}; p50 / p99 in ms"
    )
    kinds = ("store", "engine", "http")
    print(f"{'query':<26}{'matched':>9}" + "".join(f"{k:>18}" for k in kinds) + "  target")
    misses = 0
    for q in result["queries"]:
        cells = "".join(
            f"{q[k]['p50_ms']:>8.1f} /{q[k]['p99_ms']:>7.1f}  " if q.get(k) else f"{'-':>18}"
            for k in kinds
        )
        judged = q.get("engine") or q["store"]  # a bounded count: the store's figure
        met = judged["p99_ms"] <= result["target_ms"]
        misses += not met
        print(f"{q['query']:<26}{q['matched']:>9,}{cells}  {'met' if met else 'MISSED'}")
    w = result["walk"]
    if w.get("p50_ms") is not None:
        print(
            f"walk: {w['pages']} pages by NextToken from the first, engine "
            f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms"
        )
    print(
        f"target: engine p99 <= {result['target_ms']:g} ms for every query: "
        + ("met" if not misses else f"missed by {misses}")
    )


if __name__ == "__main__":
    sys.exit(main())
