"""RedriveExecution on the engine, on a SQLite file and on PostgreSQL.

Tasks are callback tasks the test answers one by one (`Worker`), so which steps succeeded
before the failure is decided by the test, not by the order integrations happen to finish in;
the calls an integration gets are counted to show that succeeded steps do not run again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest

from relayflow.engine import Engine, Succeeded, TaskRequest
from relayflow.engine.redrive import MAX_REDRIVES
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.errors import ERROR_EVENT_LIMIT
from relayflow.limits import Limits
from relayflow.store import open_store
from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import (
    QUEUE,
    Clock,
    Worker,
    history,
    refused,
    running,
    sqlite_or_postgres,
    types_of,
)

CHARGE = fdl(f"""
- type: task
  name: reserve
  action: demo:Reserve
- type: task
  name: charge
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: pass
  name: done
  outputMappings:
    - target: charged
      source: $input.paid
""")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A SQLite file, or a PostgreSQL database, shared by the module's tests (flows differ)."""
    yield from sqlite_or_postgres(
        request, "redrive_", "sqlite:///" + str(tmp_path_factory.mktemp("redrive") / "relayflow.db")
    )


@pytest.fixture
def flow() -> str:
    return "f_" + uuid.uuid4().hex[:10]


class Calls:
    """A requestResponse action that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: TaskRequest) -> Succeeded:
        self.count += 1
        return Succeeded({"reserved": True})


def engine(store_url: str, worker: Worker, calls: Calls | None = None, **options: object) -> Engine:
    return make_engine(
        {QUEUE: worker.queue, "demo:Reserve": calls or Calls()}, store=store_url, **options
    )


async def failed(eng: Engine, flow: str, name: str) -> None:
    info = await eng.describe_execution(flow, name, wait_seconds=5)
    assert info.status == "Failed", info


@bounded
async def test_a_failed_task_step_starts_over_and_the_steps_before_it_do_not(store_url, flow):
    worker, reserve = Worker(), Calls()
    async with engine(store_url, worker, reserve) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.start_execution(flow, {"order": 7}, name="r1")
        first = await worker.take(1)
        await eng.report_task_failed(first.token, "Card.Declined", "insufficient funds")
        await failed(eng, flow, "r1")
        before = await history(eng, flow, "r1")

        info = await eng.redrive_execution(flow, "r1")
        assert (info.status, info.error, info.cause, info.stopped_time) == ("Running", "", "", None)
        assert info.redrive_count == 1 and info.to_api()["RedriveCount"] == 1
        again = await worker.take(2)
        assert again.step_name == "charge" and again.attempt == 0
        assert again.token != first.token and again.input == first.input
        # The first report on the old attempt won; it stays the only one.
        await refused("TaskAlreadyCompleted", eng.report_task_succeeded(first.token, {}))
        await eng.report_task_succeeded(again.token, {"paid": 12})
        done = await eng.describe_execution(flow, "r1", wait_seconds=5)
        assert done.status == "Succeeded" and done.output == {
            "reserved": True,
            "paid": 12,
            "charged": 12,
        }
        assert reserve.count == 1  # the step that succeeded did not run again

        events = await history(eng, flow, "r1")
        assert events[: len(before)] == before  # the history grows; nothing is rewritten
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        redriven = events[len(before)]
        assert redriven.type == "ExecutionRedriven" and redriven.schedule_event_id == 0
        assert redriven.detail == {
            "redriveCount": 1,
            "previousStatus": "Failed",
            "previousError": "Card.Declined",
            "definition": "original",
            "revision": 1,
        }
        assert [e.type for e in events[len(before) + 1 :]][:2] == ["StepEntered", "TaskScheduled"]
        listed = (await eng.list_executions(flow)).items
        assert [(e.name, e.redrive_count) for e in listed] == [("r1", 1)]

        err = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "r1"))
        assert err.message == (
            "Execution 'r1' is Succeeded; only a Failed, TimedOut or Stopped execution can be "
            "redriven"
        )
        assert err.status == 409


NESTED = fdl(f"""
- type: parallel
  name: fan
  branches:
    - steps:
        - type: foreach
          name: each
          iterationMapping:
            collection: $.items
            item: item
          steps:
            - type: task
              name: ship
              resourceArn: {QUEUE}
              pattern: waitForCallback
    - steps:
        - type: task
          name: notify
          resourceArn: {QUEUE}
          pattern: waitForCallback
""")


@bounded
async def test_inside_a_parallel_and_a_foreach_only_the_failed_iteration_runs_again(
    store_url, flow
):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await eng.create_flow(flow, NESTED)
        await eng.start_execution(flow, {"items": ["a", "b", "c"]}, name="n")
        await worker.take(4)
        by_input = {r.input.get("item", r.step_name): r for r in worker.requests}
        for key in ("a", "c", "notify"):
            await eng.report_task_succeeded(by_input[key].token, {"ok": key})
        await eng.report_task_failed(by_input["b"].token, "Ship.Lost", "no truck")
        await failed(eng, flow, "n")

        await eng.redrive_execution(flow, "n")
        retried = await worker.take(5)
        assert (retried.step_name, retried.input["item"]) == ("ship", "b")
        await eng.report_task_succeeded(retried.token, {"ok": "b"})
        done = await eng.describe_execution(flow, "n", wait_seconds=5)
        assert done.status == "Succeeded"
        assert len(worker.requests) == 5  # nothing else ran again
        events = await history(eng, flow, "n")
        after = [e for e in events if e.event_id > _redriven(events)]
        # The foreach and the parallel go on: no iteration or branch is entered again.
        assert [e.type for e in after if e.type.endswith("Entered")] == ["StepEntered"]
        exits = [(e.type, e.detail.get("index")) for e in after if e.type.endswith("Exited")]
        assert ("IterationExited", 1) in exits and ("BranchExited", 0) in exits


CHOICE = fdl(f"""
- type: choice
  name: route
  choices:
    - condition: $.express == true
      steps:
        - type: task
          name: reserve
          action: demo:Reserve
        - type: task
          name: courier
          resourceArn: {QUEUE}
          pattern: waitForCallback
      goto: last
  default:
    goto: last
- type: pass
  name: skipped
  outputMappings:
    - target: skipped
      source: true
- type: pass
  name: last
""")


@bounded
async def test_inside_a_choice_branch_and_its_goto_is_kept(store_url, flow):
    worker, reserve = Worker(), Calls()
    async with engine(store_url, worker, reserve) as eng:
        await eng.create_flow(flow, CHOICE)
        await eng.start_execution(flow, {"express": True}, name="c")
        await eng.report_task_failed((await worker.take(1)).token, "Courier.Busy")
        await failed(eng, flow, "c")
        await eng.redrive_execution(flow, "c")
        await eng.report_task_succeeded((await worker.take(2)).token, {"courier": "Ann"})
        done = await eng.describe_execution(flow, "c", wait_seconds=5)
        assert done.status == "Succeeded" and "skipped" not in (done.output or {})
        assert reserve.count == 1


RETRIED = fdl(f"""
- type: task
  name: flaky
  resourceArn: {QUEUE}
  pattern: waitForCallback
  retry:
    - errors: [Flaky]
      maxAttempts: 1
      intervalSeconds: 10
""")


@bounded
async def test_the_failed_step_gets_fresh_retries(store_url, flow):
    worker, clock = Worker(), Clock()
    async with engine(store_url, worker, clock=clock, poll_seconds=0.05) as eng:
        await eng.create_flow(flow, RETRIED)
        await eng.start_execution(flow, {}, name="t")
        await eng.report_task_failed((await worker.take(1)).token, "Flaky")
        clock.now += 11  # the retry's interval
        await eng.report_task_failed((await worker.take(2)).token, "Flaky")
        await failed(eng, flow, "t")
        assert [r.attempt for r in worker.requests] == [0, 1]

        await eng.redrive_execution(flow, "t")
        await eng.report_task_failed((await worker.take(3)).token, "Flaky")
        clock.now += 11  # retried again: the retries of the first run are not counted
        await eng.report_task_succeeded((await worker.take(4)).token, {})
        assert (await eng.describe_execution(flow, "t", wait_seconds=5)).status == "Succeeded"
        assert [r.attempt for r in worker.requests] == [0, 1, 0, 1]


TIMED = fdl(
    f"""
- type: task
  name: slow
  resourceArn: {QUEUE}
  pattern: waitForCallback
""",
    "timeoutSeconds: 60",
)


@bounded
async def test_a_timed_out_execution_gets_a_fresh_full_timeout(store_url, flow):
    worker, clock = Worker(), Clock()
    async with engine(store_url, worker, clock=clock, poll_seconds=0.05) as eng:
        await eng.create_flow(flow, TIMED)
        await eng.start_execution(flow, {}, name="late")
        await worker.take(1)
        clock.now += 61
        info = await eng.describe_execution(flow, "late", wait_seconds=5)
        assert (info.status, info.error) == ("TimedOut", "FnF.Timeout")

        # Long past the first deadline, the redriven execution runs: its timer starts anew.
        redriven = await eng.redrive_execution(flow, "late")
        assert redriven.status == "Running"
        await worker.take(2)
        clock.now += 61
        info = await eng.describe_execution(flow, "late", wait_seconds=5)
        assert info.status == "TimedOut" and info.redrive_count == 1

        await eng.redrive_execution(flow, "late")
        await eng.report_task_succeeded((await worker.take(3)).token, {"at": "last"})
        info = await eng.describe_execution(flow, "late", wait_seconds=5)
        assert (info.status, info.output, info.redrive_count) == ("Succeeded", {"at": "last"}, 2)
        kinds = [e.type for e in await history(eng, flow, "late") if e.type.startswith("Exec")]
        assert kinds == [
            "ExecutionStarted",
            "ExecutionTimedOut",
            "ExecutionRedriven",
            "ExecutionTimedOut",
            "ExecutionRedriven",
            "ExecutionSucceeded",
        ]


@bounded
async def test_a_stopped_execution_goes_on_with_a_new_attempt(store_url, flow):
    worker, reserve = Worker(), Calls()
    async with engine(store_url, worker, reserve) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.start_execution(flow, {}, name="s")
        first = await worker.take(1)
        await eng.stop_execution(flow, "s", "Ops.Pause", "maintenance")
        info = await eng.redrive_execution(flow, "s")
        assert info.status == "Running" and info.error == ""
        second = await worker.take(2)
        await refused("TaskExpired", eng.report_task_succeeded(first.token, {"paid": 1}))
        await eng.report_task_succeeded(second.token, {"paid": 2})
        done = await eng.describe_execution(flow, "s", wait_seconds=5)
        assert done.output == {"reserved": True, "paid": 2, "charged": 2}
        assert reserve.count == 1
        redriven = [e for e in await history(eng, flow, "s") if e.type == "ExecutionRedriven"]
        assert redriven[0].detail["previousStatus"] == "Stopped"


FIXED = fdl("""
- type: task
  name: reserve
  action: demo:Reserve
- type: pass
  name: charge
  outputMappings:
    - target: paid
      source: 0
- type: pass
  name: done
  outputMappings:
    - target: charged
      source: $input.paid
    - target: fixed
      source: true
""")


@bounded
async def test_on_the_current_definition_when_its_steps_are_still_there(store_url, flow):
    worker, reserve = Worker(), Calls()
    async with engine(store_url, worker, reserve) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.publish_flow_version(flow)
        started = await eng.start_execution(flow, {}, name="v", qualifier="1")
        assert started.flow_version == "1"
        await eng.report_task_failed((await worker.take(1)).token, "Bug")
        await failed(eng, flow, "v")

        renamed = FIXED.replace("name: charge", "name: pay")
        await eng.update_flow(flow, renamed)
        before = await history(eng, flow, "v")
        err = await refused(
            "ExecutionNotRedrivable", eng.redrive_execution(flow, "v", use_current_definition=True)
        )
        assert err.message == (
            "Execution 'v' cannot go on with the current definition: step 'charge' is not in "
            "the flow's current definition"
        )
        info = await eng.describe_execution(flow, "v")
        assert (info.status, info.flow_version, info.redrive_count) == ("Failed", "1", 0)
        assert await history(eng, flow, "v") == before

        await eng.update_flow(flow, FIXED)
        info = await eng.redrive_execution(flow, "v", use_current_definition=True)
        assert info.flow_version == "" and "fixed" in info.flow_definition
        done = await eng.describe_execution(flow, "v", wait_seconds=5)
        assert done.status == "Succeeded" and done.output == {
            "reserved": True,
            "paid": 0,
            "charged": 0,
            "fixed": True,
        }
        assert reserve.count == 1 and len(worker.requests) == 1
        redriven = [e for e in await history(eng, flow, "v") if e.type == "ExecutionRedriven"]
        assert redriven[0].detail["definition"] == "current"
        assert redriven[0].detail["revision"] == 3


@bounded
async def test_a_missing_step_inside_a_branch_is_named(store_url, flow):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await eng.create_flow(flow, NESTED)
        await eng.start_execution(flow, {"items": ["a"]}, name="m")
        await worker.take(2)
        await eng.report_task_failed(worker.requests[0].token, "Lost")
        await failed(eng, flow, "m")
        await eng.update_flow(flow, NESTED.replace("name: notify", "name: announce"))
        err = await refused(
            "ExecutionNotRedrivable", eng.redrive_execution(flow, "m", use_current_definition=True)
        )
        assert "step 'notify' (in branch 2 of step 'fan') is not in" in err.message
        # Kept with the definition it ran, it still goes on.
        # Kept with the definition it ran, it still goes on: the failed iteration and the
        # branch the failure cancelled are both asked again.
        await eng.redrive_execution(flow, "m")
        await worker.take(4)
        assert sorted(r.step_name for r in worker.requests[2:]) == ["notify", "ship"]


@bounded
async def test_refusals(store_url, flow):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await refused("ExecutionNotExists", eng.redrive_execution(flow, "ghost"))
        await eng.create_flow(flow, CHARGE)
        missing = await refused("ExecutionNotExists", eng.redrive_execution(flow, "ghost"))
        assert missing.message == f"Execution 'ghost' does not exist in flow '{flow}'"
        await eng.start_execution(flow, {}, name="busy")
        await worker.take(1)
        running = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "busy"))
        assert running.message.startswith("Execution 'busy' is Running; only a Failed")
        for name in ("old", "spent", "garbled", "damaged"):
            await eng.start_execution(flow, {}, name=name)
            if name != "damaged":  # that one is running when its state is damaged
                await eng.stop_execution(flow, name)

    # What only a store written by someone else holds: edited while no engine runs.
    store = open_store(store_url)
    try:
        with store.transaction() as tx:
            for name in ("old", "spent", "garbled", "damaged"):
                row = tx.get_execution(flow, name, lock=True)
                assert row is not None
                state = load_state(row.state)
                if name == "old":
                    state.resume = None  # as a state written before redrives existed
                elif name == "spent":
                    state.redrives = MAX_REDRIVES
                text = "{not a state" if name in ("garbled", "damaged") else dump_state(state)
                tx.update_execution(
                    row.id, status=row.status, state=text, output=None,
                    error=row.error, cause="", stopped=row.stopped,
                )  # fmt: skip
    finally:
        store.close()

    async with engine(store_url, worker) as eng:
        old = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "old"))
        assert "ended before relayflow kept what a redrive needs" in old.message
        spent = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "spent"))
        assert spent.message == (
            "Execution 'spent' has been redriven 1000 times, the most an execution can be "
            "(1000); start it again instead"
        )

        garbled = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "garbled"))
        assert (
            garbled.message
            == "Execution 'garbled' cannot be redriven: its stored state cannot be read"
        )
        # Touched, the damaged one is failed (its state set aside), and nothing is left of it.
        await refused("ExecutionNotRunning", eng.stop_execution(flow, "damaged"))
        damaged = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "damaged"))
        assert "because relayflow could not read its state or its definition" in damaged.message

        express = flow + "_x"
        await eng.create_flow(
            express, fdl("- type: fail\n  name: nope\n  error: E"), execution_mode="Express"
        )
        ran = await eng.start_sync_execution(express, {}, name="x")
        assert ran.status == "Failed"
        err = await refused("ExecutionNotRedrivable", eng.redrive_execution(express, ran.name))
        assert "Express execution" in err.message


async def scheduled(eng: Engine, flow: str, name: str, step: str) -> int:
    """How many attempts of ``step`` the execution scheduled."""
    events = await history(eng, flow, name)
    return sum(e.type == "TaskScheduled" and e.step_name == step for e in events)


def _redriven(events: list) -> int:
    return max(e.event_id for e in events if e.type == "ExecutionRedriven")


@bounded
async def test_two_redrives_at_once_one_wins(store_url, flow):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.start_execution(flow, {}, name="twice")
        await eng.report_task_failed((await worker.take(1)).token, "E")
        await failed(eng, flow, "twice")
        results = await asyncio.gather(
            eng.redrive_execution(flow, "twice"),
            eng.redrive_execution(flow, "twice"),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1
        assert getattr(lost[0], "code", None) == "ExecutionNotRedrivable"
        assert "is Running" in str(lost[0])
        await worker.take(2)
        assert (await types_of(eng, flow, "twice")).count("ExecutionRedriven") == 1
        assert await scheduled(eng, flow, "twice", "charge") == 2


@pytest.mark.parametrize(
    "stop_first", [False, True], ids=["redrive-then-stop", "stop-then-redrive"]
)
@bounded
async def test_a_redrive_racing_a_stop(store_url, flow, stop_first):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.start_execution(flow, {}, name="race")
        await eng.report_task_failed((await worker.take(1)).token, "E")
        await failed(eng, flow, "race")
        calls = [eng.redrive_execution(flow, "race"), eng.stop_execution(flow, "race", "Ops")]
        if stop_first:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        outcome = {
            "redrive": results[1 if stop_first else 0],
            "stop": results[0 if stop_first else 1],
        }
        assert not isinstance(outcome["redrive"], BaseException)  # it was Failed either way
        info = await eng.describe_execution(flow, "race")
        kinds = [e.type for e in await history(eng, flow, "race")]
        if isinstance(outcome["stop"], BaseException):  # the stop came first: nothing to stop
            assert getattr(outcome["stop"], "code", None) == "ExecutionNotRunning"
            assert info.status == "Running" and "ExecutionStopped" not in kinds
        else:  # the redrive came first, then the stop ended it again
            assert info.status == "Stopped" and kinds[-1] == "ExecutionStopped"
            assert kinds.index("ExecutionRedriven") < kinds.index("ExecutionStopped")
        assert kinds.count("ExecutionRedriven") == 1 and info.redrive_count == 1
        assert await scheduled(eng, flow, "race", "charge") <= 2  # never a doubled step
        if info.status == "Running":
            await eng.report_task_succeeded((await worker.take(2)).token, {"paid": 1})
            assert (await eng.describe_execution(flow, "race", 5)).status == "Succeeded"


CHILD = fdl(f"""
- type: task
  name: work
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")


@bounded
async def test_a_redriven_child_does_not_reopen_its_parent(store_url, flow):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        child = flow + "_child"
        await eng.create_flow(child, CHILD)
        await eng.create_flow(
            flow,
            fdl(f"""
            - type: task
              name: call
              resourceArn: acs:fnf:::flow/{child}
              pattern: sync
              serviceParams:
                ExecutionName: kid
            """),
        )
        await eng.start_execution(flow, {}, name="parent")
        await eng.report_task_failed((await worker.take(1)).token, "Child.Broke")
        await failed(eng, flow, "parent")
        await failed(eng, child, "kid")

        await eng.redrive_execution(child, "kid")
        await eng.report_task_succeeded((await worker.take(2)).token, {"fine": True})
        assert (await eng.describe_execution(child, "kid", 5)).status == "Succeeded"
        parent = await eng.describe_execution(flow, "parent")
        assert (parent.status, parent.error) == ("Failed", "Child.Broke")
        # The child's end found no open task to report to: the parent's history did not grow.
        assert (await types_of(eng, flow, "parent"))[-1] == "ExecutionFailed"

        # Redriven, the parent's step starts over and names its child again: the name is taken.
        await eng.redrive_execution(flow, "parent")
        parent = await eng.describe_execution(flow, "parent", wait_seconds=5)
        assert (parent.status, parent.error) == ("Failed", "fnf.ExecutionAlreadyExists")


@bounded
async def test_a_history_past_the_event_limit_is_refused(store_url, flow):
    worker = Worker()
    # The charge step's TaskStarted would be event 10: the execution fails at the limit.
    async with engine(store_url, worker, limits=Limits(max_events=9)) as eng:
        await eng.create_flow(flow, CHARGE)
        await eng.start_execution(flow, {}, name="full")
        info = await eng.describe_execution(flow, "full", wait_seconds=5)
        assert info.error == ERROR_EVENT_LIMIT
        err = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow, "full"))
        assert err.message == (
            "Execution 'full' cannot be redriven: it failed when its history reached the "
            "engine's limit of events (engine.max_events); split the work into child flows and "
            "start it again"
        )
        # Stopped with 3 events (started, the wait entered, stopped) ...
        await eng.create_flow(flow + "_w", fdl("- type: wait\n  name: nap\n  duration: 3600"))
        await eng.start_execution(flow + "_w", {}, name="long")
        await eng.stop_execution(flow + "_w", "long")
    async with engine(store_url, worker, limits=Limits(max_events=2)) as eng:
        # ... then the limit was lowered below its history.
        err = await refused("ExecutionNotRedrivable", eng.redrive_execution(flow + "_w", "long"))
        assert err.message == (
            "Execution 'long' cannot be redriven: its history holds 3 events, more than the "
            "engine's limit of 2 (engine.max_events)"
        )


STAGED = fdl(f"""
- type: task
  name: work
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: pass
  name: report
  outputMappings:
    - target: stage
      source: $context.flow.environment.STAGE
""")


def stage(value: str) -> str:
    return json.dumps({"Variables": [{"Name": "STAGE", "Value": value}]})


@bounded
async def test_the_environment_moves_with_the_current_definition_only(store_url, flow):
    worker = Worker()
    async with engine(store_url, worker) as eng:
        await eng.create_flow(flow, STAGED, environment=stage("blue"))
        for name in ("kept", "moved"):
            await eng.start_execution(flow, {}, name=name)
        await worker.take(2)
        for request in worker.requests:
            await eng.report_task_failed(request.token, "E")
        await eng.update_flow(flow, environment=stage("green"))
        await eng.redrive_execution(flow, "kept")
        await eng.redrive_execution(flow, "moved", use_current_definition=True)
        await worker.take(4)
        for request in worker.requests[2:]:
            await eng.report_task_succeeded(request.token, {})
        kept = await eng.describe_execution(flow, "kept", wait_seconds=5)
        moved = await eng.describe_execution(flow, "moved", wait_seconds=5)
        assert (kept.output, moved.output) == ({"stage": "blue"}, {"stage": "green"})


@bounded
async def test_two_replicas_redriving_at_once_redrive_once(store_url, flow):
    if not store_url.startswith("postgres"):
        pytest.skip("replicas share a PostgreSQL store")
    worker = Worker()
    a, b = engine(store_url, worker), engine(store_url, worker)
    async with running(a, b):
        await a.create_flow(flow, CHARGE)
        await a.start_execution(flow, {}, name="both")
        await a.report_task_failed((await worker.take(1)).token, "E")
        await failed(b, flow, "both")
        results = await asyncio.gather(
            a.redrive_execution(flow, "both"),
            b.redrive_execution(flow, "both"),
            return_exceptions=True,
        )
        codes = sorted(getattr(r, "code", "ok") for r in results)
        assert codes == ["ExecutionNotRedrivable", "ok"]
        await worker.take(2)
        assert await scheduled(a, flow, "both", "charge") == 2
        assert (await b.describe_execution(flow, "both")).redrive_count == 1
