"""Several engines (replicas) in one process on one PostgreSQL database.

Each test gets a database of its own, made from the session's server (`postgres_url`), and runs
two or three `Engine` objects on it, each with its own connections, as separate `relayflow
server` processes would. What is checked: a timer fires once, an outbox row of an engine that
stopped is taken over and carried out once, an end on one engine wakes a long poll on another,
a child ending on one engine reports to its parent once, a transaction aborted by a conflict is
run again, and a stopping engine answers its long polls and hands its leases back.

Waits are bounded (`eventually`, `asyncio.wait_for`); nothing asserts how long work took.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from relayflow.engine import Engine, Succeeded, TaskRequest
from relayflow.engine.model import Command, TimerFired
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import (
    CALLBACK,
    QUEUE,
    Worker,
    action_flow,
    history,
    running,
    types_of,
)
from tests.services import fresh_database

psycopg = pytest.importorskip("psycopg")

Action = Callable[[TaskRequest], Awaitable[Succeeded]]

POLL = 0.1  # make_engine's default: claims and timers come due quickly


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped after the test."""
    with fresh_database(postgres_url, "replicas_" + uuid.uuid4().hex[:16]) as url:
        yield url


def execution_id(url: str, flow: str, name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT id FROM executions WHERE flow_name = %s AND name = %s", (flow, name)
        ).fetchone()
    assert row is not None, f"{flow}/{name} is not stored"
    return int(row[0])


# -- timers -----------------------------------------------------------------------------------

NAP = fdl("""
- type: wait
  name: nap
  duration: 0.3
- type: pass
  name: after
""")


def count_fired(engine: Engine, fired: list[tuple[int, int]]) -> None:
    """Note in ``fired`` each timer the engine applies.

    Firing reaches `apply_alone` only after the timer's row was deleted under this engine's
    lease: each timer must get there once, on one engine.
    """
    applier = engine._runtime.applier
    apply_alone = applier.apply_alone

    def counting(tx: Any, ctx: Any, row: Any, command: Command, **options: Any) -> None:
        if isinstance(command, TimerFired):
            fired.append((row.id, command.timer_id))
        apply_alone(tx, ctx, row, command, **options)

    applier.apply_alone = counting  # type: ignore[method-assign]


@bounded(seconds=60)
async def test_a_timer_fires_once_with_three_engines(pg_url: str) -> None:
    engines = [make_engine(store=pg_url) for _ in range(3)]
    fired: list[tuple[int, int]] = []
    for engine in engines:
        count_fired(engine, fired)
    async with running(*engines):
        await engines[0].create_flow("w", NAP)
        names = [f"r{i}" for i in range(12)]
        for i, name in enumerate(names):
            await engines[i % 3].start_execution("w", {}, name=name)
        for i, name in enumerate(names):
            info = await engines[(i + 1) % 3].describe_execution("w", name, wait_seconds=20)
            assert info.status == "Succeeded", name
        assert len(fired) == len(set(fired)) == len(names)
        for name in names:
            events = await history(engines[2], "w", name)
            assert [e.event_id for e in events] == list(range(1, len(events) + 1))
            entered = [e.step_name for e in events if e.type == "StepEntered"]
            assert entered == ["nap", "after"], name


# -- takeover ---------------------------------------------------------------------------------


def stuck(calls: list[TaskRequest]) -> Action:
    """An action that notes each request in ``calls`` and never answers: a frozen worker."""

    async def action(request: TaskRequest) -> Succeeded:
        calls.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return action


def quick(calls: list[TaskRequest]) -> Action:
    """An action that notes each request in ``calls`` and succeeds with ``{"by": "b"}``."""

    async def action(request: TaskRequest) -> Succeeded:
        calls.append(request)
        return Succeeded({"by": "b"})

    return action


@bounded(seconds=60)
async def test_a_row_of_an_engine_that_stopped_working_is_taken_over_and_runs_once(
    pg_url: str,
) -> None:
    on_a: list[TaskRequest] = []
    on_b: list[TaskRequest] = []

    a = make_engine({"demo:Work": stuck(on_a)}, store=pg_url, lease_seconds=1)
    b = make_engine({"demo:Work": quick(on_b)}, store=pg_url, lease_seconds=1)
    async with running(a, b):
        await a.create_flow("f", action_flow())
        await a.start_execution("f", {}, name="e")
        await eventually(lambda: on_a, 5, "engine A to dispatch the task")
        # A stops renewing and claiming, as a frozen process would; its attempt never ends.
        await a._runtime.loops.stop()
        info = await b.describe_execution("f", "e", wait_seconds=1 + POLL + 15)
        assert (info.status, info.output) == ("Succeeded", {"by": "b"})
        assert [r.task_id for r in on_b] == [on_a[0].task_id]
        assert (await types_of(b, "f", "e")).count("TaskSucceeded") == 1


@bounded(seconds=60)
async def test_a_row_of_an_engine_whose_connections_died_is_taken_over(pg_url: str) -> None:
    on_a: list[TaskRequest] = []
    on_b: list[TaskRequest] = []

    a = make_engine({"demo:Work": stuck(on_a)}, store=pg_url, lease_seconds=1)
    b = make_engine({"demo:Work": quick(on_b)}, store=pg_url, lease_seconds=1)
    async with running(a, b):
        await a.create_flow("f", action_flow())
        await a.start_execution("f", {}, name="e")
        await eventually(lambda: on_a, 5, "engine A to dispatch the task")
        # As if A's process were killed: its connections go, nothing is handed back.
        a.store.close()
        info = await b.describe_execution("f", "e", wait_seconds=1 + POLL + 15)
        assert (info.status, info.output) == ("Succeeded", {"by": "b"})
        assert [r.task_id for r in on_b] == [on_a[0].task_id]


# -- long polls -------------------------------------------------------------------------------


@bounded(seconds=60)
async def test_an_end_on_one_engine_wakes_a_long_poll_on_another(pg_url: str) -> None:
    worker = Worker()
    a = make_engine({QUEUE: worker.queue}, store=pg_url)
    b = make_engine({QUEUE: worker.queue}, store=pg_url)
    async with running(a, b):
        # Only a notification can wake B's waiter in time: it would look again in a minute.
        b._runtime.end_waiters.recheck_seconds = 60
        await a.create_flow("f", CALLBACK)
        await a.start_execution("f", {}, name="e")
        request = await worker.take()
        poll = asyncio.create_task(b.describe_execution("f", "e", wait_seconds=20))
        await eventually(lambda: b._runtime.end_waiters._waiters, 5, "B's long poll to wait")
        await a.report_task_succeeded(request.token, {"n": 1})
        # Generously before the poll's 20 s: it was woken, not timed out.
        info = await asyncio.wait_for(poll, 15)
        assert (info.status, info.output) == ("Succeeded", {"n": 1})


# -- child flows ------------------------------------------------------------------------------

CHILD = fdl(f"""
- type: task
  name: work
  resourceArn: {QUEUE}
  pattern: waitForCallback
  outputMappings:
    - target: doubled
      source: $local.doubled
""")

PARENT = fdl("""
- type: task
  name: call
  resourceArn: acs:fnf:::flow/child
  pattern: sync
  outputMappings:
    - target: result
      source: $local.doubled
""")


@bounded(seconds=60)
async def test_a_child_ending_on_another_engine_reports_to_its_parent_once(pg_url: str) -> None:
    worker = Worker()
    engines = [make_engine({QUEUE: worker.queue}, store=pg_url) for _ in range(3)]
    a, b, c = engines
    async with running(*engines):
        await a.create_flow("child", CHILD)
        await a.create_flow("parent", PARENT)
        parents = [f"p{i}" for i in range(4)]
        for name in parents:
            await a.start_execution("parent", {"n": len(name)}, name=name)
        # Each child's task is answered on B or C, so the child ends (and reports) there.
        for i in range(len(parents)):
            request = await worker.take(i + 1, timeout=10)
            await (b, c)[i % 2].report_task_succeeded(request.token, {"doubled": i})
        results = set()
        for name in parents:
            info = await c.describe_execution("parent", name, wait_seconds=20)
            assert info.status == "Succeeded" and info.output is not None, name
            results.add(info.output["result"])
            events = await history(b, "parent", name)
            assert [e.type for e in events].count("TaskSucceeded") == 1
            assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert results == set(range(len(parents)))


# -- conflicts --------------------------------------------------------------------------------


def hold_lock(url: str, execution: int, locked: threading.Event, seconds: float) -> None:
    """Lock an execution's row in a transaction of another connection for ``seconds``."""
    with psycopg.connect(url) as conn:
        conn.execute("SELECT id FROM executions WHERE id = %s FOR UPDATE", (execution,))
        locked.set()
        threading.Event().wait(seconds)
        conn.rollback()


@bounded(seconds=60)
async def test_a_batch_that_waited_out_a_lock_runs_again_and_answers_every_caller(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relayflow.engine")
    worker = Worker()
    a = make_engine({QUEUE: worker.queue}, store=pg_url)
    async with running(a):
        await a.create_flow("f", CALLBACK)
        for name in ("x", "y"):
            await a.start_execution("f", {}, name=name)
        tokens = {r.execution_name: r.token for r in [await worker.take(1), await worker.take(2)]}
        locked = threading.Event()
        # Held longer than the store's lock timeout (2 s): the first run gives up waiting.
        holder = threading.Thread(
            target=hold_lock, args=(pg_url, execution_id(pg_url, "f", "x"), locked, 3.0)
        )
        holder.start()
        try:
            assert await asyncio.to_thread(locked.wait, 10)
            answers = await asyncio.gather(
                a.report_task_succeeded(tokens["y"], {"n": "y"}),
                a.report_task_succeeded(tokens["x"], {"n": "x"}),
            )
        finally:
            await asyncio.to_thread(holder.join, 20)
        assert all(isinstance(n, int) for n in answers)
        for name in ("x", "y"):
            info = await a.describe_execution("f", name)
            assert (info.status, info.output) == ("Succeeded", {"n": name})
        assert "aborted by a conflict" in caplog.text


def lock_then_wait(
    url: str, first: int, second: int, locked: threading.Event, go: threading.Event
) -> None:
    """Lock ``first``, wait for ``go``, then lock ``second``: half of a deadlock."""
    with psycopg.connect(url) as conn:
        # This side waits longer before it looks for deadlocks, so that the engine's
        # transaction is the one the server aborts.
        conn.execute("SET deadlock_timeout = '20s'")
        conn.execute("SET lock_timeout = '20s'")
        conn.execute("SELECT id FROM executions WHERE id = %s FOR UPDATE", (first,))
        locked.set()
        go.wait(10)
        conn.execute("SELECT id FROM executions WHERE id = %s FOR UPDATE", (second,))
        conn.rollback()


def waiting_for_lock(url: str) -> bool:
    """Whether some session of the database waits for a row lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


@bounded(seconds=60)
async def test_a_deadlocked_batch_runs_again_and_its_neighbours_commit(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relayflow.engine")
    worker = Worker()
    a = make_engine({QUEUE: worker.queue}, store=pg_url)
    async with running(a):
        await a.create_flow("f", CALLBACK)
        for name in ("x", "y", "z"):
            await a.start_execution("f", {}, name=name)
        requests = [await worker.take(n) for n in (1, 2, 3)]
        tokens = {r.execution_name: r.token for r in requests}
        x, y = execution_id(pg_url, "f", "x"), execution_id(pg_url, "f", "y")
        runs: list[int] = []

        def y_then_x(tx: Any, ctx: Any) -> str:
            runs.append(1)
            tx.lock_execution(y)
            tx.lock_execution(x)
            return "locked both"

        locked, go = threading.Event(), threading.Event()
        other = threading.Thread(target=lock_then_wait, args=(pg_url, x, y, locked, go))
        other.start()
        try:
            assert await asyncio.to_thread(locked.wait, 10)
            job = asyncio.create_task(a._runtime.committer.submit(y_then_x))
            report = asyncio.create_task(a.report_task_succeeded(tokens["z"], {"n": "z"}))
            # Once the engine holds y and waits for x, the other side asks for y.
            await eventually(lambda: waiting_for_lock(pg_url), 10, "the engine to wait for x")
            go.set()
            assert await asyncio.wait_for(job, 30) == "locked both"
            assert isinstance(await asyncio.wait_for(report, 30), int)
        finally:
            go.set()
            await asyncio.to_thread(other.join, 30)
        assert len(runs) >= 2
        assert "aborted by a conflict" in caplog.text
        assert (await a.describe_execution("f", "z")).status == "Succeeded"


# -- stopping ---------------------------------------------------------------------------------


@bounded(seconds=60)
async def test_begin_shutdown_answers_long_polls_and_close_hands_back_leases(
    pg_url: str,
) -> None:
    worker = Worker()
    on_a: list[TaskRequest] = []
    on_b: list[TaskRequest] = []

    # A lease of a minute: only a handed-back lease lets B take the task within the test.
    a = make_engine({"demo:Work": stuck(on_a), QUEUE: worker.queue}, store=pg_url, lease_seconds=60)
    b = make_engine({"demo:Work": quick(on_b)}, store=pg_url, lease_seconds=60)
    async with running(a, b):
        await a.create_flow("f", action_flow())
        await a.create_flow("w", CALLBACK)
        await a.start_execution("w", {}, name="waits")
        await worker.take()
        await a.start_execution("f", {}, name="e")
        await eventually(lambda: on_a, 5, "engine A to dispatch the task")
        poll = asyncio.create_task(a.describe_execution("w", "waits", wait_seconds=20))
        await eventually(lambda: a._runtime.end_waiters._waiters, 5, "the long poll to wait")
        a._runtime.begin_shutdown()
        assert not a.accepting
        info = await asyncio.wait_for(poll, 5)
        assert info.status == "Running"
        # A poll begun now is answered at once as well.
        late = await asyncio.wait_for(a.describe_execution("w", "waits", wait_seconds=20), 5)
        assert late.status == "Running"
        await a.close(grace_seconds=0.2)
        done = await b.describe_execution("f", "e", wait_seconds=20)
        assert (done.status, done.output) == ("Succeeded", {"by": "b"})
        assert [r.task_id for r in on_b] == [on_a[0].task_id]


@bounded(seconds=60)
async def test_an_attempt_finishing_in_the_close_grace_keeps_its_lease(pg_url: str) -> None:
    on_b: list[TaskRequest] = []
    started = asyncio.Event()

    async def slow(request: TaskRequest) -> Succeeded:
        started.set()
        await asyncio.sleep(2.0)  # twice the lease: only renewals keep it with A
        return Succeeded({"by": "a"})

    a = make_engine({"demo:Work": slow}, store=pg_url, lease_seconds=1)
    b = make_engine({"demo:Work": quick(on_b)}, store=pg_url, lease_seconds=1)
    async with running(a, b):
        await a.create_flow("f", action_flow())
        await a.start_execution("f", {}, name="e")
        await asyncio.wait_for(started.wait(), 5)
        a._runtime.begin_shutdown()
        await a.close(grace_seconds=20)
        info = await b.describe_execution("f", "e")
        assert (info.status, info.output) == ("Succeeded", {"by": "a"})
        assert on_b == []


TWO_STEPS = fdl(f"""
- type: task
  name: first
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: task
  name: second
  action: demo:Work
""")


@bounded(seconds=60)
async def test_a_task_made_by_a_stopping_engine_goes_to_another_at_once(pg_url: str) -> None:
    worker = Worker()
    on_b: list[TaskRequest] = []

    # A lease of a minute: only an unleased row lets B take the task within the test.
    a = make_engine({QUEUE: worker.queue}, store=pg_url, lease_seconds=60)
    b = make_engine({"demo:Work": quick(on_b)}, store=pg_url, lease_seconds=60)
    async with running(a, b):
        await a.create_flow("f", TWO_STEPS)
        await a.start_execution("f", {}, name="e")
        request = await worker.take()
        a._runtime.begin_shutdown()
        # A still answers the requests under way; the task that follows is B's to run.
        await a.report_task_succeeded(request.token, {})
        info = await b.describe_execution("f", "e", wait_seconds=20)
        assert (info.status, info.output) == ("Succeeded", {"by": "b"})
        assert [r.step_name for r in on_b] == ["second"]
