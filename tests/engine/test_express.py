"""Express flows on the embedded engine: StartSyncExecution's answer, its limits and refusals."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable
from typing import Any

import pytest

from relayflow.engine import (
    Engine,
    Failed,
    Limits,
    Submitted,
    Succeeded,
    SyncEngine,
    TaskRequest,
)
from relayflow.engine.express import EXPRESS_MAX_SECONDS, check_express_flow
from relayflow.errors import EngineError
from relayflow.fdl import load_flow
from relayflow.store import open_store
from relayflow.testing import bounded, eventually, fdl, make_engine

# Five steps of pass and choice: the flow the throughput target is measured on.
FIVE = fdl("""
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
""")
FAILS = fdl("""
    - type: fail
      name: refuse
      error: Bad.Input
      cause: the input was bad
""")
TASK = fdl("""
    - type: task
      name: ask
      action: test:Ask
      retry:
        - errors: [Flaky]
          intervalSeconds: 1
          maxAttempts: 1
""")
CALLBACK = fdl("""
    - type: parallel
      name: both
      branches:
        - steps:
            - type: pass
              name: quick
        - steps:
            - type: task
              name: approve
              resourceArn: acs:mns:::/queues/jobs/messages
              pattern: waitForCallback
""")
LONG_WAIT = fdl("""
    - type: wait
      name: nap
      duration: 400
""")
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def refused(code: str, awaitable: Awaitable[Any]) -> EngineError:
    """The EngineError ``awaitable`` raises, checked to have ``code``."""
    with pytest.raises(EngineError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@bounded
async def test_a_pass_and_choice_flow_answers_with_its_output_in_the_call():
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        small = await engine.start_sync_execution("five", {"n": 3}, name="order")
        big = await engine.start_sync_execution("five", '{"n": 30}')
    assert (small.status, small.output, small.error) == ("Succeeded", {"n": 3, "size": "small"}, "")
    assert big.output == {"n": 30, "size": "big"}
    # The service's naming: {ExecutionName}:{UUID}, or a generated name; never the same twice.
    assert re.fullmatch(f"order:{UUID}", small.name), small.name
    assert re.fullmatch(UUID, big.name), big.name
    assert small.started_time is not None and small.stopped_time is not None
    assert small.flow_definition == FIVE and small.input == {"n": 3}


@bounded
async def test_a_failed_execution_is_an_answer_with_its_error_and_cause():
    async with make_engine() as engine:
        await engine.create_flow("fails", FAILS, execution_mode="Express")
        info = await engine.start_sync_execution("fails", {})
    assert (info.status, info.error, info.cause) == ("Failed", "Bad.Input", "the input was bad")
    assert info.output is None


@bounded
async def test_the_recorded_execution_shows_in_describe_and_list_but_keeps_no_history():
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        ran = await engine.start_sync_execution("five", {"n": 12}, name="kept")
        described = await engine.describe_execution("five", ran.name)
        listed = (await engine.list_executions("five")).items
        assert [e.name for e in listed] == [ran.name]
        assert (described.status, described.output) == ("Succeeded", {"n": 12, "size": "big"})
        assert described.started_time == ran.started_time
        assert described.stopped_time == ran.stopped_time
        assert described.flow_definition == FIVE
        # Nothing but the end went to the store: one row, no events.
        assert await engine.read(lambda tx: tx.list_events(1, 0, 10)) == []


@bounded
async def test_get_execution_history_refuses_an_express_execution():
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        ran = await engine.start_sync_execution("five", {"n": 1})
        error = await refused("ActionNotSupported", engine.get_execution_history("five", ran.name))
    assert "keep only their result" in error.message


@bounded
async def test_tasks_are_called_in_memory_with_retries_and_their_failures_fail_the_run():
    calls: list[int] = []

    async def ask(request: TaskRequest) -> Any:
        calls.append(request.attempt)
        if request.input.get("mode") == "flaky" and request.attempt < 1:
            return Failed("Flaky", "not yet")
        if request.input.get("mode") == "raise":
            raise RuntimeError("the service is down")
        if request.input.get("mode") == "hand-over":
            return Submitted({"MessageId": "m-1"})
        return Succeeded({"answer": request.input["q"] * 2, "token": bool(request.token)})

    async with make_engine({"test:Ask": ask}) as engine:
        await engine.create_flow("ask", TASK, execution_mode="Express")
        ok = await engine.start_sync_execution("ask", {"q": 21, "mode": "flaky"})
        raised = await engine.start_sync_execution("ask", {"mode": "raise"})
        handed = await engine.start_sync_execution("ask", {"mode": "hand-over"})
        stored = await engine.describe_execution("ask", ok.name)
    assert (ok.status, ok.output) == ("Succeeded", {"answer": 42, "token": True})
    assert calls[:2] == [0, 1]  # the retry's back-off is a timer in memory
    assert stored.output == ok.output
    assert (raised.status, raised.error) == ("Failed", "FnF.RuntimeError")
    assert "the service is down" in raised.cause
    assert handed.status == "Failed" and "requestResponse" in handed.cause


@bounded
async def test_a_wait_counts_against_the_limit_and_the_run_ends_timed_out():
    clock = FakeClock()
    async with make_engine(clock=clock) as engine:
        await engine.create_flow("nap", LONG_WAIT, execution_mode="Express")
        run = asyncio.ensure_future(engine.start_sync_execution("nap", {}))
        await asyncio.sleep(0.05)
        clock.now += EXPRESS_MAX_SECONDS - 1  # still within the limit
        await asyncio.sleep(0.25)  # more than the engine's 0.1 s recheck
        assert not run.done()
        clock.now += 2
        info = await asyncio.wait_for(run, 5)
        stored = await engine.describe_execution("nap", info.name)
    assert (info.status, info.error) == ("TimedOut", "FnF.Timeout")
    assert "300 seconds" in info.cause
    assert stored.status == "TimedOut"


@bounded
async def test_a_task_still_running_at_the_limit_is_cancelled():
    clock = FakeClock()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def ask(request: TaskRequest) -> Any:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Succeeded({})

    async with make_engine({"test:Ask": ask}, clock=clock) as engine:
        await engine.create_flow("ask", TASK, execution_mode="Express")
        run = asyncio.ensure_future(engine.start_sync_execution("ask", {"q": 1}))
        await asyncio.wait_for(started.wait(), 5)
        clock.now += EXPRESS_MAX_SECONDS + 1
        info = await asyncio.wait_for(run, 5)
        await asyncio.wait_for(cancelled.wait(), 5)
    assert info.status == "TimedOut"


def test_check_express_flow_names_the_task_that_waits_for_a_report():
    with pytest.raises(EngineError) as caught:
        check_express_flow(load_flow(CALLBACK, "cb"), "cb")
    assert caught.value.code == "InvalidDefinition"
    assert "task step 'approve'" in caught.value.message
    assert "waitForCallback" in caught.value.message
    synced = CALLBACK.replace("waitForCallback", "sync")
    with pytest.raises(EngineError, match="pattern sync"):
        check_express_flow(load_flow(synced, "cb"), "cb")
    check_express_flow(load_flow(TASK, "ok"), "ok")  # requestResponse: allowed


@bounded
async def test_create_and_update_refuse_a_callback_task_in_an_express_flow():
    async with make_engine() as engine:
        await refused(
            "InvalidDefinition", engine.create_flow("cb", CALLBACK, execution_mode="Express")
        )
        await engine.create_flow("cb", CALLBACK)  # a Standard flow may wait for callbacks
        await engine.create_flow("quick", FIVE, execution_mode="Express")
        error = await refused("InvalidDefinition", engine.update_flow("quick", CALLBACK))
        assert "'approve'" in error.message
        assert (await engine.describe_flow("quick")).definition == FIVE


@bounded
async def test_start_sync_execution_refuses_a_standard_flow_and_a_missing_one():
    async with make_engine() as engine:
        await engine.create_flow("standard", FIVE)
        error = await refused(
            "ActionNotSupported", engine.start_sync_execution("standard", {"n": 1})
        )
        assert "Standard execution is not supported" in error.message
        await refused("FlowNotExists", engine.start_sync_execution("missing", {}))
        await refused("InvalidArgument", engine.start_sync_execution("standard", "[1]"))
        await refused("InvalidArgument", engine.start_sync_execution("standard", {}, name="a b"))


@bounded
async def test_start_execution_refuses_an_express_flow():
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        error = await refused("ActionNotSupported", engine.start_execution("five", {"n": 1}))
    assert "StartSyncExecution" in error.message


@bounded
async def test_an_update_is_seen_by_the_next_start_and_a_qualifier_runs_its_version():
    two = FIVE.replace("source: big", "source: huge")
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        assert (await engine.start_sync_execution("five", {"n": 11})).output["size"] == "big"
        await engine.publish_flow_version("five")
        await engine.update_flow("five", two)
        assert (await engine.start_sync_execution("five", {"n": 11})).output["size"] == "huge"
        old = await engine.start_sync_execution("five", {"n": 11}, qualifier="1")
        assert (old.output["size"], old.flow_version, old.flow_definition) == ("big", "1", FIVE)
        assert (await engine.describe_execution("five", old.name)).flow_version == "1"
        await refused(
            "FlowVersionNotExists", engine.start_sync_execution("five", {}, qualifier="9")
        )
        # Deleted and made again as a Standard flow: the engine does not run what it remembers.
        await engine.delete_flow("five")
        await engine.create_flow("five", FIVE)
        await refused("ActionNotSupported", engine.start_sync_execution("five", {"n": 1}))


class Observer:
    """Plugins that observe lifecycles: they see an Express execution's events at its end."""

    observes_lifecycle = True

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        return request

    def task_outcome(self, request: TaskRequest, outcome: Any) -> None:
        pass

    def notify(self, committed: Any) -> None:
        for _flow, execution_name, events in committed:
            self.events.extend((execution_name, event.type) for event in events)

    # The work hooks: none wanted here.
    observes_work = False

    def engine_started(self, engine: Any) -> None:
        pass

    def engine_stopping(self, engine: Any) -> None:
        pass

    def batch_committed(self, batch: Any) -> None:
        pass

    def outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        pass

    def timers_fired(self, count: int, lag_seconds: float) -> None:
        pass


@bounded
async def test_plugins_that_observe_lifecycles_see_the_events_once_recorded():
    hooks = Observer()
    async with make_engine(plugins=hooks) as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        ran = await engine.start_sync_execution("five", {"n": 1})
    kinds = [kind for name, kind in hooks.events if name == ran.name]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert kinds.count("StepEntered") == 3


@bounded
async def test_closing_stops_a_running_express_execution_and_records_it(engine_factory):
    started = asyncio.Event()

    async def ask(request: TaskRequest) -> Any:
        started.set()
        await asyncio.sleep(60)
        return Succeeded({})

    engine: Engine = engine_factory({"test:Ask": ask}, sqlite=True)
    async with engine:
        await engine.create_flow("ask", TASK, execution_mode="Express")
        run = asyncio.ensure_future(engine.start_sync_execution("ask", {"q": 1}))
        await asyncio.wait_for(started.wait(), 5)
        await engine.close(grace_seconds=0.05)
        info = await asyncio.wait_for(run, 10)
    assert info.status == "Stopped" and "engine stopped" in info.cause
    async with engine_factory(sqlite=True) as again:
        stored = await again.describe_execution("ask", info.name)
    assert stored.status == "Stopped"


@bounded
async def test_many_at_once_are_each_recorded_once():
    async with make_engine() as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        runs = await asyncio.gather(
            *(engine.start_sync_execution("five", {"n": i}) for i in range(200))
        )
        assert {r.output["size"] for r in runs} == {"small", "big"}

        async def all_listed() -> bool:
            page = await engine.list_executions("five", limit=100)
            return len(page.items) == 100 and page.next_token != ""

        await eventually(all_listed)
        names: set[str] = set()
        token = ""
        while True:
            page = await engine.list_executions("five", limit=100, next_token=token)
            names |= {e.name for e in page.items}
            token = page.next_token
            if not token:
                break
    assert names == {r.name for r in runs}


@bounded
async def test_on_postgresql_the_row_is_recorded_and_replicas_see_each_others_changes(
    postgres_url,
):
    pytest.importorskip("psycopg")
    from tests.services import fresh_database

    async def ask(request: TaskRequest) -> Any:
        return Succeeded({"answer": request.input["q"]})

    with fresh_database(postgres_url, "express_" + uuid.uuid4().hex[:12]) as url:
        async with make_engine({"test:Ask": ask}, store=url) as engine:
            await engine.create_flow("five", FIVE, execution_mode="Express")
            await engine.create_flow("ask", TASK, execution_mode="Express")
            quick = await engine.start_sync_execution("five", {"n": 20}, name="pg")
            waited = await engine.start_sync_execution("ask", {"q": 5})  # recorded at its end
            assert waited.output == {"answer": 5}
        async with make_engine(store=url) as again:
            for info in (quick, waited):
                stored = await again.describe_execution(info.flow_name, info.name)
                assert (stored.status, stored.output) == ("Succeeded", info.output)
                assert stored.stopped_time == info.stopped_time
            assert [e.name for e in (await again.list_executions("five")).items] == [quick.name]
            # Two replicas: one remembers the flow from its last run, the other changes it.
            async with make_engine(store=url) as other:
                assert (await again.start_sync_execution("five", {"n": 11})).output["size"] == "big"
                await other.update_flow("five", FIVE.replace("source: big", "source: huge"))
                after = await again.start_sync_execution("five", {"n": 11})
                assert after.output["size"] == "huge"
                await other.delete_flow("five")
                await refused("FlowNotExists", again.start_sync_execution("five", {"n": 11}))


PARALLEL_TASKS = fdl("""
    - type: parallel
      name: both
      branches:
        - steps:
            - type: task
              name: left
              action: test:Slow
        - steps:
            - type: task
              name: right
              action: test:Slow
    - type: foreach
      name: each
      iterationMapping:
        collection: $input.items
        item: item
      steps:
        - type: pass
          name: seen
""")


@bounded
async def test_branches_call_their_tasks_at_once_and_long_chains_go_on_in_memory():
    both_running = asyncio.Event()
    running: list[str] = []

    async def slow(request: TaskRequest) -> Any:
        running.append(request.step_name)
        if len(running) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), 5)  # only ends if the other runs meanwhile
        return Succeeded({request.step_name: True})

    # Two steps a transition: the foreach's 30 iterations need many "continue" timers.
    limits = Limits(steps_per_transition=2)
    async with make_engine({"test:Slow": slow}, limits=limits) as engine:
        await engine.create_flow("par", PARALLEL_TASKS, execution_mode="Express")
        await engine.create_flow("five", FIVE, execution_mode="Express")
        info = await engine.start_sync_execution("par", {"items": list(range(30))})
        chained = await engine.start_sync_execution("five", {"n": 1})  # ends in its first job
    assert info.status == "Succeeded", info
    assert sorted(running) == ["left", "right"]
    assert (chained.status, chained.output) == ("Succeeded", {"n": 1, "size": "small"})


@bounded
async def test_a_flow_deleted_while_its_execution_runs_gets_no_row_but_the_caller_an_answer():
    engine_box: list[Engine] = []

    async def ask(request: TaskRequest) -> Any:
        await engine_box[0].delete_flow("ask")
        return Succeeded({"late": True})

    async with make_engine({"test:Ask": ask}) as engine:
        engine_box.append(engine)
        await engine.create_flow("ask", TASK, execution_mode="Express")
        info = await engine.start_sync_execution("ask", {"q": 1})
        assert (info.status, info.output) == ("Succeeded", {"late": True})
        await refused("FlowNotExists", engine.list_executions("ask"))
        await engine.create_flow("ask", TASK, execution_mode="Express")  # a new flow, empty
        assert (await engine.list_executions("ask")).items == []


def test_sync_engine_runs_an_express_flow():
    with SyncEngine(open_store("memory://")) as engine:
        engine.create_flow("five", FIVE, execution_mode="Express")
        info = engine.start_sync_execution("five", {"n": 40}, name="sync")
        assert (info.status, info.output) == ("Succeeded", {"n": 40, "size": "big"})
        assert engine.describe_execution("five", info.name).status == "Succeeded"


class Broken(Observer):
    """Lifecycle hooks that fail: the execution is recorded and answered all the same."""

    def notify(self, committed: Any) -> None:
        raise RuntimeError("a broken plugin")


@bounded
async def test_failing_lifecycle_hooks_do_not_take_the_answer_away():
    async with make_engine(plugins=Broken()) as engine:
        await engine.create_flow("five", FIVE, execution_mode="Express")
        ran = await engine.start_sync_execution("five", {"n": 1})
        assert (await engine.describe_execution("five", ran.name)).status == "Succeeded"


STAGED = fdl("""
    - type: pass
      name: stage
      outputMappings:
        - target: stage
          source: $context.flow.environment.STAGE
""")


def environment(stage: str) -> str:
    return json.dumps({"Variables": [{"Name": "STAGE", "Value": stage, "Description": ""}]})


@bounded
async def test_the_flows_environment_is_read_and_an_update_of_it_alone_is_seen():
    async with make_engine() as engine:
        await engine.create_flow(
            "staged", STAGED, execution_mode="Express", environment=environment("test")
        )
        first = await engine.start_sync_execution("staged", {})
        again = await engine.start_sync_execution("staged", {})  # the early transition
        await engine.update_flow("staged", environment=environment("prod"))  # same definition
        after = await engine.start_sync_execution("staged", {})
    assert [r.output for r in (first, again, after)] == [
        {"stage": "test"},
        {"stage": "test"},
        {"stage": "prod"},
    ]
    assert after.environment == {"Variables": [{"Name": "STAGE", "Value": "prod"}]}
