"""Parents and children (relayflow.engine.family), on SQLite and on PostgreSQL.

A parent starts children in the three patterns (one of them with a child of its own); stopping
the parent stops every running descendant with a cause naming its parent; a parent that fails
stops the children it waited for and leaves the requestResponse one running; DescribeExecution
and the histories link both ways; a child whose parent ended reports to nobody, quietly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.engine import Engine
from relayflow.engine.family import MAX_CHILDREN_SHOWN, link_parent, stop_cause
from relayflow.errors import EngineError
from relayflow.store import open_store
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import CALLBACK, QUEUE, Worker, finished, history, running
from tests.services import fresh_database
from tests.store.rows import exec_row

# mid waits (sync) on a leaf, which waits on the queue: a grandchild for the parent.
MID = fdl("""
- type: task
  name: grandchild
  resourceArn: acs:fnf:::flow/leaf
  pattern: sync
""")

NAP = fdl("""
- type: wait
  name: nap
  duration: 3600
""")

# A parent for children linked by hand: it has a child flow task (only such flows have
# children to look for), which it never reaches.
NAP_THEN_CHILD = (
    NAP
    + """  - type: task
    name: later
    resourceArn: acs:fnf:::flow/leaf
    pattern: requestResponse
"""
)

# Three children at once, one per pattern, and a gate on the queue that the test answers.
PARENT = fdl("""
- type: parallel
  name: kids
  branches:
    - steps:
        - type: task
          name: sync_kid
          resourceArn: acs:fnf:::flow/mid
          pattern: sync
    - steps:
        - type: task
          name: callback_kid
          resourceArn: acs:fnf:::flow/leaf
          pattern: waitForCallback
    - steps:
        - type: task
          name: rr_kid
          action: fnf:StartExecution
          pattern: requestResponse
          serviceParams:
            FlowName: leaf
        - type: task
          name: gate
          resourceArn: acs:mns:::/queues/q/messages
          pattern: waitForCallback
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store's URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'family.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    with fresh_database(server, "family_" + uuid.uuid4().hex[:12]) as pg:
        yield pg


async def family_of(engine: Engine, worker: Worker) -> dict[str, str]:
    """Start `PARENT` as p1 and wait until its whole family runs: role -> (flow/name)."""
    await engine.create_flow("leaf", CALLBACK)
    await engine.create_flow("mid", MID)
    await engine.create_flow("parent", PARENT)
    await engine.start_execution("parent", {}, name="p1")
    # Queue requests: the gate (parent), the callback child's, the rr child's, the grandchild's.
    await worker.take(4, timeout=10)
    info = await engine.describe_execution("parent", "p1")
    kids = {ref.flow_name: ref.name for ref in info.children if ref.flow_name == "mid"}
    by_step: dict[str, str] = {}
    for event in await history(engine, "parent", "p1"):
        detail = event.detail or {}
        if event.type in ("TaskSubmitted", "TaskSucceeded") and "Name" in detail.get(
            "output", detail
        ):
            named = detail.get("output", detail)
            by_step[event.step_name] = f"{named['FlowName']}/{named['Name']}"
    mid = await engine.describe_execution("mid", kids["mid"])
    assert len(mid.children) == 1
    by_step["grandchild"] = f"leaf/{mid.children[0].name}"
    return by_step


async def status(engine: Engine, path: str) -> tuple[str, str]:
    flow, name = path.split("/", 1)
    info = await engine.describe_execution(flow, name)
    return info.status, info.cause


@bounded(seconds=40)
async def test_stopping_a_parent_stops_every_running_descendant(url: str) -> None:
    worker = Worker()
    engine = make_engine({QUEUE: worker.queue}, store=url)
    async with running(engine):
        family = await family_of(engine, worker)
        assert set(family) == {"sync_kid", "callback_kid", "rr_kid", "grandchild"}, family
        await engine.stop_execution("parent", "p1", cause="enough")
        parent = await finished(engine, "parent", "p1")
        assert (parent.status, parent.cause) == ("Stopped", "enough")
        for role in ("sync_kid", "callback_kid", "rr_kid"):
            assert await status(engine, family[role]) == (
                "Stopped",
                "stopped because its parent execution parent/p1 was stopped",
            ), role
        assert await status(engine, family["grandchild"]) == (
            "Stopped",
            f"stopped because its parent execution {family['sync_kid']} was stopped",
        )
        # The children's ends reported to a parent that had ended: nothing was added to it.
        events = await history(engine, "parent", "p1")
        assert events[-1].type == "ExecutionStopped"
        assert [e.type for e in events].count("ExecutionStopped") == 1


@bounded(seconds=40)
async def test_a_failed_parent_stops_the_children_it_waited_for_only(url: str) -> None:
    worker = Worker()
    engine = make_engine({QUEUE: worker.queue}, store=url)
    async with running(engine):
        family = await family_of(engine, worker)
        gate = next(r for r in worker.requests if r.flow_name == "parent")
        await engine.report_task_failed(gate.token, "GateClosed", "the gate said no")
        parent = await finished(engine, "parent", "p1")
        assert (parent.status, parent.error) == ("Failed", "GateClosed")
        for role in ("sync_kid", "callback_kid"):
            assert await status(engine, family[role]) == (
                "Stopped",
                "stopped because its parent execution parent/p1 failed",
            ), role
        # The grandchild's parent was stopped: it is stopped too.
        assert (await status(engine, family["grandchild"]))[0] == "Stopped"
        # requestResponse: independent, it keeps running, and its end reports to nobody.
        assert (await status(engine, family["rr_kid"]))[0] == "Running"
        leaf_name = family["rr_kid"].split("/", 1)[1]
        request = next(r for r in worker.requests if r.execution_name == leaf_name)
        await engine.report_task_succeeded(request.token, {"late": True})
        assert (await finished(engine, "leaf", leaf_name)).status == "Succeeded"


@bounded(seconds=40)
async def test_describe_and_history_link_parents_and_children_both_ways(url: str) -> None:
    worker = Worker()
    engine = make_engine({QUEUE: worker.queue}, store=url)
    async with running(engine):
        family = await family_of(engine, worker)
        parent = await engine.describe_execution("parent", "p1")
        assert parent.parent is None
        assert {f"{c.flow_name}/{c.name}" for c in parent.children} == {
            family["sync_kid"],
            family["callback_kid"],
            family["rr_kid"],
        }
        assert {c.status for c in parent.children} == {"Running"}
        for role in ("sync_kid", "callback_kid", "rr_kid"):
            flow, name = family[role].split("/", 1)
            child = await engine.describe_execution(flow, name)
            assert child.parent is not None
            assert (child.parent.flow_name, child.parent.name) == ("parent", "p1")
            assert child.parent.status == "Running"
        # The API's fields, as the server sends them.
        doc = parent.to_api()
        assert len(doc["ChildExecutions"]) == 3 and "ParentExecution" not in doc


@bounded(seconds=30)
async def test_a_child_history_names_its_parent(tmp_path: Path) -> None:
    worker = Worker()
    engine = make_engine({QUEUE: worker.queue}, store=f"sqlite:///{tmp_path / 'h.db'}")
    async with running(engine):
        family = await family_of(engine, worker)
        for role in ("sync_kid", "callback_kid", "rr_kid"):
            flow, name = family[role].split("/", 1)
            started = (await history(engine, flow, name))[0]
            assert started.type == "ExecutionStarted"
            assert started.detail["ParentExecution"] == {"FlowName": "parent", "Name": "p1"}


@bounded(seconds=30)
async def test_describe_names_the_first_hundred_children_oldest_first(tmp_path: Path) -> None:
    engine = make_engine(store=f"sqlite:///{tmp_path / 'many.db'}")
    async with running(engine):
        await engine.create_flow("leaf", NAP)
        await engine.create_flow("parent", NAP_THEN_CHILD)
        await engine.start_execution("parent", {}, name="p")
        for i in range(MAX_CHILDREN_SHOWN + 2):
            await engine.start_execution("leaf", {}, name=f"c{i:03}", parent=("parent", "p"))
        info = await engine.describe_execution("parent", "p")
        assert [c.name for c in info.children] == [f"c{i:03}" for i in range(MAX_CHILDREN_SHOWN)]
        # A parent that does not exist: the child starts, unlinked.
        await engine.start_execution("leaf", {}, name="orphan", parent=("parent", "nobody"))
        assert (await engine.describe_execution("leaf", "orphan")).parent is None
        await engine.stop_execution("parent", "p")
        await eventually(
            lambda: _all_stopped(engine), 10, "the 102 children stopped with their parent"
        )


async def _all_stopped(engine: Engine) -> bool:
    page = await engine.list_executions("leaf", status="Running")
    return [e.name for e in page.items] == ["orphan"]


def test_link_parent_names_the_parent_for_the_child_history(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'links.db'}")
    try:
        with store.transaction() as tx:
            assert link_parent(tx, 1, None) == {}
            assert link_parent(tx, 1, ("none", "none")) == {}
    finally:
        store.close()


def test_the_cause_names_the_parent_and_how_it_ended() -> None:
    row = exec_row("orders", "o-7")
    assert (
        stop_cause(row, "Stopped") == "stopped because its parent execution orders/o-7 was stopped"
    )
    assert stop_cause(row, "TimedOut").endswith("orders/o-7 timed out")


ONE_SYNC_CHILD = fdl("""
- type: task
  name: audit
  resourceArn: acs:fnf:::flow/leaf
  pattern: sync
  serviceParams:
    ExecutionName: the-child
""")


@bounded(seconds=60)
async def test_a_stop_that_deadlocks_with_a_childs_end_runs_again_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging
    import threading

    from tests.engine.test_replicas import execution_id, lock_then_wait, waiting_for_lock

    caplog.set_level(logging.INFO, "relayflow.engine")
    worker = Worker()
    with fresh_database(postgres_url, "family_dl_" + uuid.uuid4().hex[:8]) as url:
        engine = make_engine({QUEUE: worker.queue}, store=url)
        async with running(engine):
            await engine.create_flow("leaf", CALLBACK)
            await engine.create_flow("parent", ONE_SYNC_CHILD)
            await engine.start_execution("parent", {}, name="p")
            await worker.take(1, timeout=10)
            child, parent = execution_id(url, "leaf", "the-child"), execution_id(url, "parent", "p")
            # Another session holds the child, as a replica recording its end would, and then
            # asks for the parent, which the engine's stop holds: a deadlock.
            locked, go = threading.Event(), threading.Event()
            other = threading.Thread(target=lock_then_wait, args=(url, child, parent, locked, go))
            other.start()
            try:
                assert await asyncio.to_thread(locked.wait, 10)
                stop = asyncio.create_task(engine.stop_execution("parent", "p"))
                await eventually(
                    lambda: waiting_for_lock(url), 10, "the stop to wait for the child"
                )
                go.set()
                assert (await asyncio.wait_for(stop, 30)).status == "Stopped"
            finally:
                go.set()
                await asyncio.to_thread(other.join, 30)
            assert "aborted by a conflict" in caplog.text
            info = await engine.describe_execution("leaf", "the-child")
            assert (info.status, info.cause) == (
                "Stopped",
                "stopped because its parent execution parent/p was stopped",
            )
            for flow, name in (("leaf", "the-child"), ("parent", "p")):
                kinds = [e.type for e in await history(engine, flow, name)]
                assert kinds.count("ExecutionStopped") == 1, (flow, kinds)


@bounded(seconds=30)
async def test_a_family_larger_than_the_budget_keeps_the_rest_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from relayflow.engine import family

    monkeypatch.setattr(family, "MAX_STOPPED_PER_TRANSACTION", 3)
    engine = make_engine(store=f"sqlite:///{tmp_path / 'budget.db'}")
    async with running(engine):
        await engine.create_flow("leaf", NAP)
        await engine.create_flow("parent", NAP_THEN_CHILD)
        await engine.start_execution("parent", {}, name="p")
        for i in range(5):
            await engine.start_execution("leaf", {}, name=f"c{i}", parent=("parent", "p"))
        await engine.stop_execution("parent", "p")
        statuses = [c.status for c in (await engine.describe_execution("parent", "p")).children]
        assert statuses == ["Stopped"] * 3 + ["Running"] * 2
        assert "its remaining running descendants keep running" in caplog.text


# A sync child whose task times out: the parent goes on and succeeds while the child runs.
GIVES_UP = fdl("""
- type: task
  name: audit
  resourceArn: acs:fnf:::flow/leaf
  pattern: sync
  timeoutSeconds: 1
  serviceParams:
    ExecutionName: slow-child
  catch:
    - errors: [FnF.TaskTimeout]
      goto: done
- type: pass
  name: done
""")


@bounded(seconds=30)
async def test_a_parent_that_succeeds_stops_the_child_it_gave_up_on(tmp_path: Path) -> None:
    worker = Worker()
    engine = make_engine({QUEUE: worker.queue}, store=f"sqlite:///{tmp_path / 'ok.db'}")
    async with running(engine):
        await engine.create_flow("leaf", CALLBACK)
        await engine.create_flow("parent", GIVES_UP)
        await engine.start_execution("parent", {}, name="p")
        request = await worker.take(1, timeout=10)
        assert (await finished(engine, "parent", "p", seconds=10)).status == "Succeeded"
        info = await engine.describe_execution("leaf", "slow-child")
        assert (info.status, info.cause) == (
            "Stopped",
            "stopped because its parent execution parent/p succeeded",
        )
        # The child's task is closed: a late report is refused, the parent is untouched.
        with pytest.raises(EngineError):
            await engine.report_task_succeeded(request.token, {})
        assert (await engine.describe_execution("parent", "p")).status == "Succeeded"
