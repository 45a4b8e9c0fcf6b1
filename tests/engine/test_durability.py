"""Durability: restarts, timers and the outbox, closing, rolled-back transitions and long polls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relayflow.engine import Succeeded, TaskRequest
from relayflow.errors import EngineError
from relayflow.store import StoreError
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import (
    CALLBACK,
    PASS,
    QUEUE,
    SEED,
    Worker,
    action_flow,
    finished,
    has_event,
    history,
    refused,
    types_of,
)


@bounded
async def test_restart_keeps_a_pending_callback(engine_factory):
    first = Worker()
    eng = engine_factory({"acs:mns:::/queues/fnf-demo/messages": first.queue}, sqlite=True)
    await eng.start()
    try:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        extract = await first.take(1)
        await eventually(
            lambda: has_event(eng, "seed", "run1", "TaskSubmitted"), what="TaskSubmitted"
        )
    finally:
        await eng.close()

    second = Worker()
    async with engine_factory(
        {"acs:mns:::/queues/fnf-demo/messages": second.queue}, sqlite=True
    ) as eng:
        assert (await eng.describe_execution("seed", "run1")).status == "Running"
        await eng.report_task_succeeded(extract.token, {"rows": [7]})
        transform = await second.take(1)
        assert transform.step_name == "transform" and transform.input["rows"] == [7]
        await eng.report_task_succeeded(transform.token, {})
        load = await second.take(2)
        await eng.report_task_succeeded(load.token, {"count": 1})
        info = await finished(eng, "seed", "run1")
        assert info.status == "Succeeded" and info.output == {"rows": [7], "loaded": 1}
        assert [r.step_name for r in second.requests] == ["transform", "load"]
        ids = [e.event_id for e in await history(eng, "seed", "run1")]
        assert ids == list(range(1, len(ids) + 1))


@bounded
async def test_a_second_engine_on_the_same_file_is_refused(engine_factory):
    async with engine_factory(sqlite=True) as eng:
        await eng.create_flow("p", PASS)
        other = engine_factory(sqlite=True)
        with pytest.raises(StoreError, match="another relayflow engine"):
            await other.start()
        other.store.close()
        assert (await eng.describe_flow("p")).version == 1
    async with engine_factory(sqlite=True) as again:
        assert (await again.describe_flow("p")).name == "p"


@bounded
async def test_restart_redispatches_outbox_rows_left_undone(engine_factory):
    blocked: list[TaskRequest] = []

    async def hang(request: TaskRequest) -> Succeeded:
        blocked.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    eng = engine_factory({"demo:Work": hang}, sqlite=True)
    await eng.start()
    try:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {"n": 1}, name="run1")
        await eventually(lambda: blocked, what="the first dispatch")
    finally:
        await eng.close(grace_seconds=0)

    served: list[TaskRequest] = []

    async def work(request: TaskRequest) -> Succeeded:
        served.append(request)
        return Succeeded({"served": True})

    async with engine_factory({"demo:Work": work}, sqlite=True) as eng:
        info = await finished(eng, "f", "run1", seconds=3)
        assert info.status == "Succeeded" and info.output == {"served": True}
        assert served[0].input == {"n": 1}
        assert len(served) == 1
        assert served[0].token == blocked[0].token
        assert served[0].task_id == blocked[0].task_id
        assert (await types_of(eng, "f", "run1")).count("TaskScheduled") == 1


@bounded
async def test_timers_survive_a_restart(engine_factory):
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.5
    - type: pass
      name: after
    """)
    async with engine_factory(sqlite=True) as eng:
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="r")
        await asyncio.sleep(0.1)  # see test_close_right_after_a_commit_does_not_hang
    async with engine_factory(sqlite=True) as eng:
        assert (await eng.describe_execution("w", "r")).status == "Running"
        info = await finished(eng, "w", "r", seconds=3)
        assert info.status == "Succeeded"
        entered = [e.step_name for e in await history(eng, "w", "r") if e.type == "StepEntered"]
        assert entered == ["nap", "after"]


@bounded
async def test_close_right_after_a_commit_does_not_hang():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 30
    """)
    for attempt in range(10):
        eng = make_engine()
        await eng.start()
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="r")
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(eng.close(), 1.0)
        except TimeoutError:
            pytest.fail(f"Engine.close() did not return within 1 s (attempt {attempt + 1})")


@bounded
async def test_outcomes_that_arrive_within_the_close_grace_are_kept(engine_factory):
    calls: list[float] = []

    async def slow(request: TaskRequest) -> Succeeded:
        calls.append(time.monotonic())
        await asyncio.sleep(0.3)
        return Succeeded({"slow": True})

    eng = engine_factory({"demo:Work": slow}, sqlite=True)
    await eng.start()
    try:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        await eventually(lambda: calls, what="the dispatch")
    finally:
        # Close ends when the outcome is in, not when the grace runs out: an hour would show.
        t0 = time.monotonic()
        await eng.close(grace_seconds=3600)
        assert time.monotonic() - t0 < 60

    async with engine_factory({"demo:Work": slow}, sqlite=True) as eng:
        info = await eng.describe_execution("f", "run1")
        assert info.status == "Succeeded" and info.output == {"slow": True}
        await asyncio.sleep(0.3)
        assert len(calls) == 1, "the task was invoked again after a clean close"


# --- rolled-back transitions ------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@bounded
async def test_a_rolled_back_transition_leaves_no_trace(store, tmp_path):
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/store.db"
    await _rolled_back_stop(url)


async def _rolled_back_stop(url: str) -> None:
    from relayflow.engine.model import TaskSubmitted

    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, store=url) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="e")
        request = await worker.take()

        def record_then_refuse(tx: Any, ctx: Any) -> None:
            row = tx.get_execution("f", "e")
            eng._runtime.applier.apply(
                tx, ctx, row, TaskSubmitted(request.task_id, {"Rolled": "back"})
            )
            raise EngineError("Refused", "the transaction's changes are undone")

        await refused("Refused", eng._runtime.committer.submit(record_then_refuse))
        # The event was rolled back, in the store and so in the state the next transition
        # starts from: event ids stay contiguous and the undone event is nowhere.
        await eng.report_task_succeeded(request.token, {"ok": True})
        done = await eng.describe_execution("f", "e")
        assert (done.status, done.output) == ("Succeeded", {"ok": True})
        events = (await eng.get_execution_history("f", "e")).events
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert all("Rolled" not in str(e.detail) for e in events)


@bounded
async def test_a_long_poll_wakes_for_its_own_execution_only_and_leaves_nothing_behind():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="a")
        await eng.start_execution("f", {}, name="b")
        first, second = await worker.take(1), await worker.take(2)
        tokens = {first.execution_name: first.token, second.execution_name: second.token}
        polls = {n: asyncio.create_task(eng.describe_execution("f", n, 30)) for n in "ab"}
        await eventually(
            lambda: len(eng._runtime.end_waiters._waiters) == 2, what="both long polls to wait"
        )
        await eng.report_task_succeeded(tokens["b"], {"n": "b"})
        assert (await polls["b"]).output == {"n": "b"}
        assert not polls["a"].done() and set(eng._runtime.end_waiters._waiters) == {("f", "a")}
        await eng.report_task_succeeded(tokens["a"], {"n": "a"})
        assert (await polls["a"]).output == {"n": "a"}
        assert eng._runtime.end_waiters._waiters == {}
