"""What running executions wait on (`relayflow.engine.waiting`), on SQLite and PostgreSQL.

Each engine reads a clock the test moves (`Clock`), so times are exact and timers fire only when
the test says; waits are bounded (`eventually`). Flow names are unique per test: on PostgreSQL
the module's tests share one database, and listings across every flow are narrowed to the
test's own flows.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from relayflow.engine import Engine, Failed
from relayflow.engine import waiting as waiting_module
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.limits import Limits
from relayflow.results import WaitingWork
from relayflow.store import Transaction
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import CALLBACK, QUEUE, Clock, Worker, refused, sqlite_or_postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
WEEK = 7 * 24 * 3600


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh in-memory SQLite store per engine, or one PostgreSQL database for the module."""
    yield from sqlite_or_postgres(request, "waiting_")


@pytest.fixture
def name() -> str:
    """A flow name prefix no other test of the module uses."""
    return "w" + uuid.uuid4().hex[:10]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


async def flaky(request: Any) -> Failed:
    return Failed("Boom", "always")


def engine_on(store: str, clock: Clock, worker: Worker, **options: Any) -> Engine:
    handlers = {QUEUE: worker.queue, "demo:Flaky": flaky}
    return make_engine(handlers, store=store, clock=clock, poll_seconds=0.05, **options)


async def everything(engine: Engine, flow: str | None = None, **options: Any) -> list[WaitingWork]:
    """Every page of the listing, one after the other."""
    found: list[WaitingWork] = []
    token = ""
    for _ in range(1000):
        page = await engine.list_waiting(flow, next_token=token, **options)
        found += page.items
        token = page.next_token
        if not token:
            return found
    raise AssertionError("the listing did not end")


def of(items: list[WaitingWork], prefix: str) -> list[WaitingWork]:
    return [w for w in items if w.flow_name.startswith(prefix)]


def all_kinds(child: str) -> str:
    return fdl(f"""
    - type: parallel
      name: all
      branches:
        - steps:
            - type: task
              name: callback
              resourceArn: {QUEUE}
              pattern: waitForCallback
        - steps:
            - type: task
              name: bounded
              resourceArn: {QUEUE}
              pattern: waitForCallback
              timeoutSeconds: 60
        - steps:
            - type: wait
              name: nap
              duration: 3600
        - steps:
            - type: task
              name: flaky
              action: demo:Flaky
              retry:
                - errors: [Boom]
                  intervalSeconds: 600
                  maxAttempts: 3
        - steps:
            - type: foreach
              name: each
              iterationMapping:
                collection: $.items
                item: item
              steps:
                - type: task
                  name: item
                  resourceArn: {QUEUE}
                  pattern: waitForCallback
        - steps:
            - type: task
              name: child
              resourceArn: acs:fnf:::flow/{child}
              pattern: sync
    """)


@bounded
async def test_every_kind_of_open_work_is_listed(store_url: str, name: str) -> None:
    clock, worker = Clock(T0), Worker()
    parent, child = name + "_p", name + "_c"
    async with engine_on(store_url, clock, worker) as engine:
        await engine.create_flow(child, CALLBACK)
        await engine.create_flow(parent, all_kinds(child))
        await engine.start_execution(parent, {"items": [1, 2]}, name="e")

        async def settled() -> bool:  # every task handed over, and the flaky one failed once
            mine = of(await everything(engine), name)
            return len(mine) == 8 and any(w.kind == "retry" for w in mine)

        await eventually(settled, 5, "every piece of work to open")
        listed = await engine.list_waiting(parent)
        by_step = sorted((w.step_name, w) for w in listed.items)
        assert [s for s, _ in by_step] == [
            "bounded",
            "callback",
            "child",
            "flaky",
            "item",
            "item",
            "nap",
        ]
        works = dict(by_step)
        assert works["callback"] == WaitingWork(
            parent, "e", "callback", "task", QUEUE, "waitForCallback", 1, at(0), WEEK, at(WEEK)
        )
        assert works["bounded"].timeout_seconds == 60 and works["bounded"].due == at(60)
        assert works["nap"] == WaitingWork(parent, "e", "nap", "wait", since=at(0), due=at(3600))
        flaky_work = works["flaky"]
        assert (flaky_work.kind, flaky_work.resource, flaky_work.attempt) == (
            "retry",
            "demo:Flaky",
            2,
        )
        assert flaky_work.since == at(0) and flaky_work.due == at(600)
        assert works["child"].resource == f"acs:fnf:::flow/{child}"
        assert works["child"].pattern == "sync" and works["child"].timeout_seconds is None
        assert [w.pattern for s, w in by_step if s == "item"] == ["waitForCallback"] * 2

        # The child runs on its own: its callback is listed under its flow.
        (child_work,) = (await engine.list_waiting(child)).items
        assert child_work.step_name == "work" and child_work.kind == "task"

        # DescribeExecution with include_waiting says the same for one execution.
        info = await engine.describe_execution(parent, "e", include_waiting=True)
        assert info.waiting is not None
        assert sorted(info.waiting, key=lambda w: w.step_name) == [w for _, w in by_step]
        assert (await engine.describe_execution(parent, "e")).waiting is None

        # A task's result closes its work; a retry's next attempt opens a new one.
        await engine.report_task_succeeded(works_token(worker, "callback"), {})
        await eventually(
            lambda: _steps(engine, parent, "callback", absent=True), 3, "callback to close"
        )


def works_token(worker: Worker, step: str) -> str:
    return next(r.token for r in worker.requests if r.step_name == step)


async def _steps(engine: Engine, flow: str, step: str, *, absent: bool) -> bool:
    steps = [w.step_name for w in (await engine.list_waiting(flow)).items]
    return (step not in steps) if absent else (step in steps)


@bounded
async def test_older_than_keeps_work_that_waited_that_long(store_url: str, name: str) -> None:
    clock, worker = Clock(T0), Worker()
    async with engine_on(store_url, clock, worker) as engine:
        await engine.create_flow(name, CALLBACK)
        await engine.start_execution(name, {}, name="early")
        clock.now = T0 + 100
        await engine.start_execution(name, {}, name="late")
        clock.now = T0 + 150

        def names(items: list[WaitingWork]) -> list[str]:
            return [w.execution_name for w in items]

        assert names(await everything(engine, name)) == ["early", "late"]
        assert names(await everything(engine, name, older_than=0)) == ["early", "late"]
        assert names(await everything(engine, name, older_than=50)) == ["early", "late"]
        assert names(await everything(engine, name, older_than=51)) == ["early"]
        assert names(await everything(engine, name, older_than=150)) == ["early"]
        assert names(await everything(engine, name, older_than=151)) == []
        assert names(of(await everything(engine, older_than=100), name)) == ["early"]


@bounded
async def test_an_unreadable_state_is_skipped(store_url: str, name: str) -> None:
    clock, worker = Clock(T0), Worker()
    async with engine_on(store_url, clock, worker) as engine:
        await engine.create_flow(name, CALLBACK)
        for execution in ("a", "bad", "c"):
            await engine.start_execution(name, {}, name=execution)

        def spoil(tx: Transaction, _ctx: Any) -> None:
            row = tx.get_execution(name, "bad", lock=True)
            assert row is not None
            tx.update_execution(
                row.id,
                status="Running",
                state='{"scopes": "not a state',
                output=None,
                error="",
                cause="",
                stopped=None,
            )

        await engine._runtime.committer.submit(spoil, key=(name, "bad"))
        listed = await everything(engine, name)
        assert [w.execution_name for w in listed] == ["a", "c"]
        assert [w.execution_name for w in of(await everything(engine), name)] == ["a", "c"]
        info = await engine.describe_execution(name, "bad", include_waiting=True)
        assert info.status == "Running" and info.waiting == ()


@bounded
async def test_pages_cover_everything_once(
    store_url: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, worker = Clock(T0), Worker()
    two = fdl(f"""
    - type: parallel
      name: both
      branches:
        - steps:
            - type: task
              name: left
              resourceArn: {QUEUE}
              pattern: waitForCallback
        - steps:
            - type: task
              name: right
              resourceArn: {QUEUE}
              pattern: waitForCallback
    """)
    async with engine_on(store_url, clock, worker) as engine:
        expected = set()
        for flow in (name + "_a", name + "_b"):
            await engine.create_flow(flow, two)
            for execution in ("x", "y", "z"):
                await engine.start_execution(flow, {}, name=execution)
                expected |= {(flow, execution, "left"), (flow, execution, "right")}
        await engine.create_flow(name + "_c", CALLBACK)  # a flow with nothing running

        def keys(items: list[WaitingWork]) -> list[tuple[str, str, str]]:
            return [(w.flow_name, w.execution_name, w.step_name) for w in items]

        for limit in (1, 3, 4, 1000):  # pages end inside executions, between them and flows
            found = keys(of(await everything(engine, limit=limit), name))
            assert sorted(found) == sorted(expected) and len(found) == len(set(found))
            one = keys(await everything(engine, name + "_b", limit=limit))
            assert sorted(one) == sorted(k for k in expected if k[0] == name + "_b")
        first = await engine.list_waiting(name + "_a", limit=3)
        assert len(first.items) == 3 and first.next_token

        # However many executions are parked, a page reads only so many of them.
        monkeypatch.setattr(waiting_module, "SCAN_BUDGET", 2)
        found = keys(of(await everything(engine), name))
        assert sorted(found) == sorted(expected) and len(found) == len(set(found))

        # Tokens are checked: a made-up one, one changed by hand, another flow's.
        deep = "w1." + base64.urlsafe_b64encode(b"[" * 700).decode()
        made_up = ("nonsense", "w1.!!!", "w1." + _b64([name, "x"]), "w1." + _b64("x"))
        for token in (*made_up, deep, "w1." + "A" * 2000):
            error = await refused(
                "InvalidArgument", engine.list_waiting(name + "_a", next_token=token)
            )
            assert "NextToken" in error.message
        forged = "w1." + _b64([name + "_a", "x", True])
        await refused("InvalidArgument", engine.list_waiting(next_token=forged))
        error = await refused(
            "InvalidArgument", engine.list_waiting(name + "_b", next_token=first.next_token)
        )
        assert name + "_a" in error.message
        # Other arguments too.
        for bad in ({"limit": 0}, {"limit": 1001}, {"older_than": -1}, {"older_than": 10**9}):
            await refused("InvalidArgument", engine.list_waiting(name + "_a", **bad))
        await refused("FlowNotExists", engine.list_waiting(name + "_missing"))


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@bounded
async def test_the_default_callback_timeout_ends_a_lost_task(store_url: str, name: str) -> None:
    clock, worker = Clock(T0), Worker()
    own = fdl(f"""
    - type: task
      name: work
      resourceArn: {QUEUE}
      pattern: waitForCallback
      timeoutSeconds: 100
    """)
    caught = fdl(f"""
    - type: task
      name: work
      resourceArn: {QUEUE}
      pattern: waitForCallback
      catch:
        - errors: [FnF.TaskTimeout]
          goto: gave_up
    - type: pass
      name: done
      end: true
    - type: pass
      name: gave_up
      outputMappings:
        - target: timedOut
          source: true
    """)
    limits = Limits(default_callback_timeout_seconds=30)
    async with engine_on(store_url, clock, worker, limits=limits) as engine:
        await engine.create_flow(name + "_d", CALLBACK)
        await engine.create_flow(name + "_o", own)
        await engine.create_flow(name + "_k", caught)
        for flow in ("_d", "_o", "_k"):
            await engine.start_execution(name + flow, {}, name="e")
        await worker.take(3)
        assert [r.timeout_seconds for r in worker.requests] == [30, 100, 30]
        (default,) = (await engine.list_waiting(name + "_d")).items
        assert (default.timeout_seconds, default.due) == (30, at(30))
        (own_work,) = (await engine.list_waiting(name + "_o")).items
        assert (own_work.timeout_seconds, own_work.due) == (100, at(100))  # the step's wins

        clock.now = T0 + 31
        ended = await engine.describe_execution(name + "_d", "e", wait_seconds=5)
        assert (ended.status, ended.error) == ("Failed", "FnF.TaskTimeout")
        handled = await engine.describe_execution(name + "_k", "e", wait_seconds=5)
        assert handled.status == "Succeeded" and handled.output == {"timedOut": True}
        assert (await engine.describe_execution(name + "_o", "e")).status == "Running"
        clock.now = T0 + 101
        late = await engine.describe_execution(name + "_o", "e", wait_seconds=5)
        assert (late.status, late.error) == ("Failed", "FnF.TaskTimeout")


@bounded
async def test_zero_means_no_default_timeout(store_url: str, name: str) -> None:
    clock, worker = Clock(T0), Worker()
    limits = Limits(default_callback_timeout_seconds=0)
    async with engine_on(store_url, clock, worker, limits=limits) as engine:
        await engine.create_flow(name, CALLBACK)
        await engine.start_execution(name, {}, name="e")
        request = await worker.take()
        assert request.timeout_seconds is None
        (work,) = (await engine.list_waiting(name)).items
        assert (work.timeout_seconds, work.due, work.since) == (None, None, at(0))

        def timers(tx: Transaction) -> list[str]:
            row = tx.get_execution(name, "e")
            assert row is not None
            return [t.kind for t in tx.list_timers(row.id)]

        assert "timeout" not in await engine.read(timers)


@bounded
async def test_a_state_kept_before_since_existed_takes_it_from_the_history(
    store_url: str, name: str
) -> None:
    clock, worker = Clock(T0), Worker()
    flow = fdl(f"""
    - type: parallel
      name: both
      branches:
        - steps:
            - type: task
              name: job
              resourceArn: {QUEUE}
              pattern: waitForCallback
        - steps:
            - type: wait
              name: nap
              duration: 3600
    """)
    async with engine_on(store_url, clock, worker) as engine:
        await engine.create_flow(name, flow)
        await engine.start_execution(name, {}, name="e")
        clock.now = T0 + 10

        def forget_since(tx: Transaction, _ctx: Any) -> None:
            row = tx.get_execution(name, "e", lock=True)
            assert row is not None
            state = load_state(row.state)
            for scope in state.scopes.values():
                if scope.run is not None:
                    scope.run.since = 0.0
            tx.update_execution(
                row.id,
                status="Running",
                state=dump_state(state),
                output=None,
                error="",
                cause="",
                stopped=None,
            )

        await engine._runtime.committer.submit(forget_since, key=(name, "e"))
        listed = {w.step_name: w for w in (await engine.list_waiting(name)).items}
        assert listed["job"].since == at(0) and listed["job"].timeout_seconds == WEEK
        assert listed["nap"].since == at(0) and listed["nap"].due == at(3600)
        assert [w.execution_name for w in await everything(engine, name, older_than=10)] == [
            "e",
            "e",
        ]
