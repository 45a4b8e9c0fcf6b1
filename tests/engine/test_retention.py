"""Retention and PurgeExecutions on the engine, and DeleteFlow of a flow with running executions.

Every test runs on a SQLite file and on PostgreSQL (one database for the module, emptied
before each test). The engines read a clock the test moves, so "ten days later" takes no time;
the retention loop looks every 50 ms of real time. Waits are bounded (`eventually`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine
from relayflow.limits import Limits
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import CALLBACK, PASS, QUEUE, Clock, Worker, refused, running
from tests.services import fresh_database

DAY = 86_400.0
T0 = 1_790_000_000.0  # 2026-09-21, a fixed start for the test's clock
# Every table of the PostgreSQL store, emptied between tests.
PG_TABLES = (
    "meta, flows, flow_versions, executions, events, timers, outbox, nonces, quarantine, "
    "flow_objects, execution_links"
)


@pytest.fixture(scope="module")
def pg_module(request: pytest.FixtureRequest) -> Iterator[str]:
    server: str = request.getfixturevalue("postgres_url")
    with fresh_database(server, "rf_engine_retention") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store's URL: a SQLite file, or the module's PostgreSQL database emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    psycopg = pytest.importorskip("psycopg")
    pg: str = request.getfixturevalue("pg_module")
    with psycopg.connect(pg, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone() == (True,):
            conn.execute(f"TRUNCATE {PG_TABLES} RESTART IDENTITY")
    yield pg


def engine_on(url: str, clock: Clock, worker: Worker | None = None, **options: Any) -> Engine:
    handlers = {QUEUE: worker.queue} if worker is not None else {}
    # No default timeout for callbacks: the test's clock jumps days ahead.
    limits = Limits(default_callback_timeout_seconds=0)
    engine = make_engine(handlers, store=url, clock=clock, limits=limits, **options)
    engine.retention_check_seconds = 0.05
    return engine


async def ended(engine: Engine, flow: str, prefix: str, n: int) -> None:
    """Run ``n`` executions of the pass flow ``flow`` to their end, named prefix-0..n-1."""
    for first in range(0, n, 100):
        await asyncio.gather(
            *(
                engine.start_execution(flow, {}, name=f"{prefix}-{i}")
                for i in range(first, min(n, first + 100))
            )
        )


async def names(engine: Engine, flow: str) -> set[str]:
    found: set[str] = set()
    token = ""
    while True:
        page = await engine.list_executions(flow, limit=100, next_token=token)
        found |= {e.name for e in page.items}
        token = page.next_token
        if not token:
            return found


# -- the retention loop -----------------------------------------------------------------------


@bounded(seconds=30)
async def test_the_loop_deletes_old_ended_executions_and_keeps_recent_and_running(url: str):
    clock = Clock(T0)
    worker = Worker()
    async with engine_on(url, clock, worker, retention_days=7) as engine:
        await engine.create_flow("p", PASS)
        await engine.create_flow("cb", CALLBACK)
        await ended(engine, "p", "old", 450)  # more than a batch (PURGE_BATCH is 200)
        await engine.start_execution("cb", {}, name="waiting")  # running, and stays so
        await worker.take(1)
        clock.now += 5 * DAY
        await ended(engine, "p", "recent", 3)
        await asyncio.sleep(0.2)  # the loop has looked (nothing is older than 7 days yet)
        assert len(await names(engine, "p")) == 453
        clock.now += 3 * DAY  # "old-*" ended 8 days ago, "recent-*" 3
        await eventually(
            lambda: _only(engine, "p", {f"recent-{i}" for i in range(3)}), 10, "old ones gone"
        )
        waiting = await engine.describe_execution("cb", "waiting")
        assert waiting.status == "Running"
        await refused("ExecutionNotExists", engine.get_execution_history("p", "old-0"))
        # The names are free again once the executions are gone.
        again = await engine.start_execution("p", {}, name="old-0")
        assert again.status in ("Running", "Succeeded")


async def _only(engine: Engine, flow: str, expected: set[str]) -> bool:
    return await names(engine, flow) == expected


@bounded(seconds=30)
async def test_two_engines_on_one_postgresql_store_purge_it_once(url: str):
    if not url.startswith("postgresql"):
        pytest.skip("one engine at a time owns a SQLite store")
    clock = Clock(T0)
    async with engine_on(url, clock) as first:
        await first.create_flow("p", PASS)
        await ended(first, "p", "old", 600)
    clock.now += 10 * DAY
    a = engine_on(url, clock, retention_days=1)
    b = engine_on(url, clock, retention_days=1)
    async with running(a, b):
        await eventually(lambda: _only(a, "p", set()), 10, "every old execution deleted")
        assert await b.purge_executions(clock.now) == _nothing()


def _nothing() -> Any:
    from relayflow.engine.retention import PurgeResult

    return PurgeResult(0, 0)


def test_the_loop_goes_on_after_the_store_failed(url: str, caplog: pytest.LogCaptureFixture):
    """PostgreSQL connections killed under the loop: it says so once, waits, and deletes later."""
    if not url.startswith("postgresql"):
        pytest.skip("a SQLite file cannot be taken away from under its engine")
    caplog.set_level(logging.WARNING, "relayflow.engine")
    _store_fails_then_works(url, caplog)
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention:")]
    assert any("the store cannot be used" in m for m in messages), messages
    assert messages[-1] == "retention: the store works again", messages


@bounded(seconds=30)
async def _store_fails_then_works(url: str, caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    clock = Clock(T0)
    async with engine_on(url, clock, retention_days=1) as engine:
        await engine.create_flow("p", PASS)
        await ended(engine, "p", "old", 5)
        await asyncio.sleep(0.1)  # the loop has had a turn on the live connection
        server = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute("ALTER DATABASE rf_engine_retention ALLOW_CONNECTIONS false")
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'rf_engine_retention'"
                )
                clock.now += 2 * DAY
                await eventually(
                    lambda: "retention: the store cannot be used" in caplog.text,
                    10,
                    "the loop's warning",
                )
            finally:
                admin.execute("ALTER DATABASE rf_engine_retention ALLOW_CONNECTIONS true")
        await eventually(lambda: _gone(engine, "p"), 10, "the purge after the failure")


async def _gone(engine: Engine, flow: str) -> bool:
    try:
        return not await names(engine, flow)
    except Exception:  # the engine's own reads may meet the killed connections too
        return False


# -- PurgeExecutions --------------------------------------------------------------------------


@bounded(seconds=30)
async def test_purge_dry_run_by_flow_limit_and_nothing_matching(url: str):
    clock = Clock(T0)
    async with engine_on(url, clock) as engine:
        await engine.create_flow("a", PASS)
        await engine.create_flow("b", PASS)
        await ended(engine, "a", "x", 5)
        await ended(engine, "b", "y", 3)
        clock.now += DAY
        await ended(engine, "a", "late", 2)
        cut = T0 + 1  # after the first runs, before the late ones

        dry = await engine.purge_executions(cut, dry_run=True)
        assert (dry.count, dry.remaining, dry.more, dry.dry_run) == (8, 0, False, True)
        dry = await engine.purge_executions(cut, dry_run=True, limit=6)
        assert (dry.count, dry.remaining, dry.more) == (6, 2, True)
        assert len(await names(engine, "a")) == 7  # a dry run deletes nothing

        by_flow = await engine.purge_executions(cut, flow_name="b")
        assert (by_flow.count, by_flow.remaining) == (3, 0)
        assert await names(engine, "b") == set()
        some = await engine.purge_executions(cut, limit=2)
        assert (some.count, some.remaining, some.more) == (2, 3, True)
        rest = await engine.purge_executions(cut)
        assert (rest.count, rest.remaining, rest.more) == (3, 0, False)
        assert await names(engine, "a") == {"late-0", "late-1"}

        # Filters that match nothing: no error, nothing deleted.
        assert (await engine.purge_executions(cut)).count == 0
        assert (await engine.purge_executions(T0 - DAY, flow_name="a")).count == 0
        assert (await engine.purge_executions(cut, dry_run=True, flow_name="a")).count == 0
        assert await names(engine, "a") == {"late-0", "late-1"}


@bounded(seconds=30)
async def test_purge_never_touches_a_running_execution(url: str):
    clock = Clock(T0)
    worker = Worker()
    async with engine_on(url, clock, worker) as engine:
        await engine.create_flow("cb", CALLBACK)
        await engine.start_execution("cb", {}, name="waiting")
        request = await worker.take(1)
        clock.now += 30 * DAY
        result = await engine.purge_executions(clock.now + DAY)
        assert (result.count, result.remaining) == (0, 0)
        await engine.report_task_succeeded(request.token, {"ok": True})
        done = await engine.describe_execution("cb", "waiting", wait_seconds=5)
        assert done.status == "Succeeded"
        assert (await engine.purge_executions(clock.now + DAY)).count == 1


@bounded(seconds=30)
async def test_purge_refuses_bad_input_in_one_sentence(url: str):
    from datetime import datetime

    async with engine_on(url, Clock(T0)) as engine:
        await engine.create_flow("a", PASS)
        for bad in (float("nan"), float("inf"), "2026-01-01", True, datetime(2026, 1, 1)):
            error = await refused("InvalidArgument", engine.purge_executions(bad))  # type: ignore[arg-type]
            assert "EndedBefore" in error.message
        for limit in (0, -1, 10_001):
            error = await refused("InvalidArgument", engine.purge_executions(T0, limit=limit))
            assert "Limit must be from 1 to 10000" in error.message
        await refused("FlowNotExists", engine.purge_executions(T0, flow_name="ghost"))
        await refused("FlowNotExists", engine.purge_executions(T0, flow_name="ghost", dry_run=True))
        await refused("InvalidArgument", engine.purge_executions(T0, flow_name="no such/flow"))


@bounded(seconds=30)
async def test_a_purge_skips_an_execution_a_redrive_holds(url: str):
    """PostgreSQL: an ended row locked by another transaction (as a redrive locks it) is kept."""
    if not url.startswith("postgresql"):
        pytest.skip("one writer on SQLite: a purge and a redrive cannot overlap")
    import psycopg

    clock = Clock(T0)
    async with engine_on(url, clock) as engine:
        await engine.create_flow("p", PASS)
        await ended(engine, "p", "r", 3)
        locked, release = threading.Event(), threading.Event()

        def hold() -> None:
            with psycopg.connect(url) as conn, conn.transaction():
                conn.execute(
                    "SELECT id FROM executions WHERE flow_name = 'p' AND name = 'r-1' FOR UPDATE"
                )
                locked.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert await asyncio.to_thread(locked.wait, 10)
            result = await engine.purge_executions(clock.now + 1)
            assert (result.count, result.remaining) == (2, 1)  # the held one still matches
        finally:
            release.set()
            await asyncio.to_thread(holder.join, 10)
        assert await names(engine, "p") == {"r-1"}
        assert (await engine.purge_executions(clock.now + 1)).count == 1


# -- DeleteFlow of a flow with running executions ---------------------------------------------


@bounded(seconds=30)
async def test_delete_flow_with_running_executions_is_refused_unless_forced(url: str):
    worker = Worker()
    async with engine_on(url, Clock(T0), worker) as engine:
        await engine.create_flow("cb", CALLBACK)
        await engine.start_execution("cb", {}, name="one")
        await engine.start_execution("cb", {}, name="two")
        await worker.take(2)
        error = await refused("FlowHasRunningExecutions", engine.delete_flow("cb"))
        assert error.status == 409
        assert error.message == (
            "Flow 'cb' has 2 running executions; stop them first, or delete the flow with force "
            "(`relayflow flows delete cb --force`, DeleteFlow with Force=true), which stops them"
        )
        assert (await engine.describe_flow("cb")).name == "cb"  # nothing was deleted
        assert (await engine.describe_execution("cb", "one")).status == "Running"

        await engine.delete_flow("cb", force=True)
        await refused("FlowNotExists", engine.describe_flow("cb"))
        await refused("ExecutionNotExists", engine.describe_execution("cb", "one"))
        await refused("FlowNotExists", engine.delete_flow("cb", force=True))


@bounded(seconds=30)
async def test_delete_flow_without_running_executions_needs_no_force(url: str):
    async with engine_on(url, Clock(T0)) as engine:
        await engine.create_flow("p", PASS)
        await ended(engine, "p", "r", 3)
        await engine.delete_flow("p")
        await refused("FlowNotExists", engine.describe_flow("p"))
        await refused("FlowNotExists", engine.delete_flow("p"))


@bounded(seconds=30)
async def test_forced_delete_stops_a_running_child_in_another_flow(url: str):
    """The parent's stop reaches its child (StopExecution's rule), then the parent's flow goes."""
    worker = Worker()
    parent = fdl("""
    - type: task
      name: child
      resourceArn: acs:fnf:::flow/kid
      pattern: sync
    """)
    async with engine_on(url, Clock(T0), worker) as engine:
        await engine.create_flow("kid", CALLBACK)
        await engine.create_flow("parent", parent)
        await engine.start_execution("parent", {}, name="p1")
        await worker.take(1)
        kids = await eventually(lambda: names(engine, "kid"), what="the child execution")
        await engine.delete_flow("parent", force=True)
        await refused("FlowNotExists", engine.describe_flow("parent"))
        (kid,) = kids
        stopped = await engine.describe_execution("kid", kid, wait_seconds=5)
        assert stopped.status != "Running"
