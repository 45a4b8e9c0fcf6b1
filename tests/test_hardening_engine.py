"""Hostile data inside the engine: deep JSON, amplified serviceParams, long causes, poison jobs
and rows that cannot be read. Each test reproduces a finding of the hardening audit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine, Failed, FunctionIntegration, Submitted, Succeeded
from relayflow.engine.integration import TaskRequest
from relayflow.store import open_store
from relayflow.testing import bounded as engine_test
from relayflow.testing import eventually as until
from relayflow.testing import fdl, make_engine
from tests.engine.helpers import CALLBACK, QUEUE, Worker, finished, history, refused

PASS_FLOW = fdl("""
- type: pass
  name: only
""")

TWO_TASKS = fdl(f"""
- type: task
  name: first
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: task
  name: second
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")


def nested_text(depth: int) -> str:
    """A JSON object whose arrays nest ``depth`` levels in all (the object is the first)."""
    return '{"a":' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


def nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


@engine_test
async def test_deep_report_output_is_refused_and_the_execution_goes_on():
    """Finding 1: an Output ~248 deep was accepted, then wedged the execution for good."""
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", TWO_TASKS)
        await eng.start_execution("f", {}, name="run1")
        first = await worker.take(1)
        for depth in (65, 248, 253, 1000, 100_000):
            err = await refused(
                "InvalidArgument", eng.report_task_succeeded(first.token, nested_text(depth))
            )
            assert "engine.max_json_depth" in err.message
        await refused("InvalidArgument", eng.report_task_succeeded(first.token, nested(300)))
        await eng.report_task_succeeded(first.token, nested_text(64))  # at the limit
        second = await worker.take(2)
        await eng.report_task_succeeded(second.token, {"done": True})
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded"


@engine_test
async def test_deep_input_is_refused_whatever_its_depth():
    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        for depth in (65, 246, 253, 254, 990, 100_000):
            err = await refused("InvalidArgument", eng.start_execution("f", nested_text(depth)))
            assert "64 levels" in err.message
        assert (await eng.list_executions("f")).items == []


@engine_test
async def test_integration_results_are_held_to_the_limits_of_a_report():
    """An integration passes on what a remote service answered: deep results fail the task."""

    async def deep(request: TaskRequest) -> Succeeded:
        return Succeeded(nested(250))

    async def long_error(request: TaskRequest) -> Failed:
        return Failed("E" * 1000, "c" * 100_000)

    async def deep_detail(request: TaskRequest) -> Submitted:
        return Submitted(nested(250))

    handlers = {
        "acs:mns:::/queues/deep/messages": deep,
        "acs:mns:::/queues/long/messages": long_error,
        "acs:mns:::/queues/detail/messages": deep_detail,
    }
    async with make_engine(handlers) as eng:
        for queue, pattern in (("deep", "requestResponse"), ("long", "requestResponse")):
            await eng.create_flow(
                queue,
                fdl(f"""
                - type: task
                  name: work
                  resourceArn: acs:mns:::/queues/{queue}/messages
                  pattern: {pattern}
                """),
            )
            await eng.start_execution(queue, {}, name="run1")
            info = await finished(eng, queue, "run1")
            assert info.status == "Failed"
        deep_info = await eng.describe_execution("deep", "run1")
        assert deep_info.error == "FnF.DataLimitExceeded"
        assert "engine.max_json_depth" in deep_info.cause
        failed = [e for e in await history(eng, "long", "run1") if e.type == "TaskFailed"]
        assert len(failed[0].detail["error"]) == 128
        assert len(failed[0].detail["cause"]) == 4096
        await eng.create_flow(
            "detail",
            fdl("""
            - type: task
              name: work
              resourceArn: acs:mns:::/queues/detail/messages
              pattern: waitForCallback
            """),
        )
        await eng.start_execution("detail", {}, name="run1")
        submitted = await until(
            lambda: _event(eng, "detail", "run1", "TaskSubmitted"), what="TaskSubmitted"
        )
        assert "omitted" in submitted.detail


async def _event(eng: Engine, flow: str, name: str, kind: str) -> Any:
    return next((e for e in await history(eng, flow, name) if e.type == kind), None)


@engine_test
async def test_a_loop_that_nests_data_deeper_fails_its_step_not_the_engine():
    """Mappings can nest data one level per step; the depth limit fails the step cleanly."""
    flow = fdl("""
    - type: pass
      name: grow
      inputMappings:
        - target: x
          source: $local
      outputMappings:
        - target: x
          source: $input
    - type: choice
      name: again
      inputMappings:
        - target: x
          source: $local.x
      choices:
        - condition: $.x != null
          goto: grow
    """)
    async with make_engine() as eng:
        await eng.create_flow("loop", flow)
        await eng.start_execution("loop", {}, name="run1")
        info = await finished(eng, "loop", "run1")
        assert info.status == "Failed"
        assert info.error == "FnF.DataLimitExceeded", info.cause
        assert "engine.max_json_depth" in info.cause


@engine_test
async def test_service_params_count_against_the_step_data_limit():
    """Finding 3: a few bytes of definition repeated a large input into every TaskScheduled."""
    params = "\n".join(f"        p{i}: $.big" for i in range(250))
    flow = fdl(f"""
    - type: task
      name: work
      resourceArn: {QUEUE}
      pattern: waitForCallback
      serviceParams:
{params}
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {"big": "x" * 20_000}, name="run1")
        info = await finished(eng, "f", "run1")
        assert info.error == "FnF.DataLimitExceeded"
        assert "serviceParams" in info.cause
        events = await history(eng, "f", "run1")
        assert "TaskScheduled" not in [e.type for e in events]
        assert max(len(json.dumps(e.detail)) for e in events) < 64 * 1024
        assert worker.requests == []


@engine_test
async def test_error_and_cause_have_the_services_lengths():
    """Finding 3: Cause of ReportTaskFailed and Error/Cause of StopExecution were unbounded."""
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        await refused("InvalidArgument", eng.report_task_failed(request.token, "E" * 129))
        await refused("InvalidArgument", eng.report_task_failed(request.token, ""))
        await refused("InvalidArgument", eng.report_task_failed(request.token, "E", "c" * 4097))
        await refused("InvalidArgument", eng.stop_execution("f", "run1", "E" * 129))
        await refused("InvalidArgument", eng.stop_execution("f", "run1", "E", "c" * 500_000))
        info = await eng.stop_execution("f", "run1", "E" * 128, "c" * 4096)
        assert info.status == "Stopped"


@engine_test
async def test_history_next_token_out_of_range_is_an_invalid_argument():
    """Finding 11: NextToken=9999999999999999999 overflowed the store's integer (a 500)."""
    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        for token in ("9999999999999999999", "-1", "1e3", "١٢", " 1", "x" * 10_000):
            await refused("InvalidArgument", eng.get_execution_history("f", "run1", None, token))
        assert (
            await eng.get_execution_history("f", "run1", None, "999999999999999999")
        ).events == []


@engine_test
async def test_a_job_that_raises_fails_alone():
    """Finding 1: a job raising outside the per-job isolation rolled back its whole batch."""

    def poison(tx: Any, ctx: Any) -> None:
        raise RuntimeError("poison")

    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        for round_ in range(3):  # an internal job, an atomic one, both
            if round_ != 1:
                eng._runtime.committer.enqueue(poison)
            jobs = [
                asyncio.create_task(eng.start_execution("f", {}, name=f"r{round_}x{i}"))
                for i in range(20)
            ]
            if round_ != 0:
                jobs.append(asyncio.create_task(eng._runtime.committer.submit(poison)))
            results = await asyncio.gather(*jobs, return_exceptions=True)
            assert all(r.status == "Running" for r in results[:20]), results
            if round_ != 0:
                assert getattr(results[20], "code", None) == "InternalError"
        assert len((await eng.list_executions("f", limit=99)).items) == 60


def _corrupt(eng: Engine, sql: str, *args: Any) -> Any:
    def write(tx: Any, ctx: Any) -> None:
        tx.db.execute(sql, args)

    return eng._runtime.committer.submit(write)


@engine_test
async def test_an_unreadable_state_is_set_aside_and_its_execution_failed():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="bad")
        await eng.start_execution("f", {}, name="good")
        bad = next(
            r for r in [await worker.take(1), await worker.take(2)] if r.execution_name == "bad"
        )
        good = next(r for r in worker.requests if r.execution_name == "good")
        deep_state = '{"status":"Running","input":' + nested_text(5000)[5:-1] + "}"
        await _corrupt(eng, "UPDATE executions SET state = ? WHERE name = 'bad'", deep_state)
        err = await refused("ExecutionNotRunning", eng.report_task_succeeded(bad.token, {}))
        assert "could not be read" in err.message
        info = await eng.describe_execution("f", "bad")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        assert "set it aside" in info.cause
        kept = await eng.read(
            lambda tx: tx.db.execute("SELECT kind, data FROM quarantine").fetchall()
        )
        assert kept == [("state", deep_state)]
        await refused("ExecutionNotRunning", eng.stop_execution("f", "bad"))
        await eng.report_task_succeeded(good.token, {})
        assert (await finished(eng, "f", "good")).status == "Succeeded"
        types = [e.type for e in await history(eng, "f", "bad")]
        assert types[-1] == "ExecutionFailed"


class _Hang(FunctionIntegration):
    """Never answers: its task stays in the outbox until the engine stops."""

    def __init__(self) -> None:
        super().__init__({})
        self.seen: list[str] = []

    def claims(self, resource: str) -> bool:
        return resource == QUEUE

    async def invoke(self, request: TaskRequest) -> Submitted:
        self.seen.append(request.execution_name)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_an_unreadable_outbox_row_is_set_aside_and_recovery_goes_on(tmp_path: Path):
    """Finding 1: claim_outbox parsed every row, so one bad row failed every recovery round."""
    url = f"sqlite:///{tmp_path}/store.db"

    async def first_life() -> None:
        eng = Engine(open_store(url), integrations=[_Hang()], poll_seconds=0.1)
        await eng.start()
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="bad")
        await eng.start_execution("f", {}, name="good")
        await eng.close(grace_seconds=0.1)

    async def second_life() -> None:
        worker = Worker()
        eng = Engine(
            open_store(url),
            integrations=[FunctionIntegration({QUEUE: worker.queue})],
            poll_seconds=0.1,
        )
        await eng.start()
        try:
            request = await worker.take(1, timeout=8)
            assert request.execution_name == "good"
            info = await finished(eng, "f", "bad", seconds=8)
            assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
            assert "task request" in info.cause
            await eng.report_task_succeeded(request.token, {})
            assert (await finished(eng, "f", "good")).status == "Succeeded"
            kinds = await eng.read(
                lambda tx: tx.db.execute("SELECT kind FROM quarantine").fetchall()
            )
            assert kinds == [("outbox",)]
        finally:
            await eng.close()

    asyncio.run(asyncio.wait_for(first_life(), 10))
    with sqlite3.connect(tmp_path / "store.db") as db:  # damaged while no engine ran
        db.execute(
            "UPDATE outbox SET payload = ? WHERE execution_id = "
            "(SELECT id FROM executions WHERE name = 'bad')",
            (nested_text(5000),),
        )
    asyncio.run(asyncio.wait_for(second_life(), 20))


@engine_test
async def test_a_definition_that_no_longer_loads_fails_only_its_execution():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.create_flow("g", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        await eng.start_execution("g", {}, name="run1")
        f_task = next(r for r in [await worker.take(1), await worker.take(2)] if r.flow_name == "f")
        g_task = next(r for r in worker.requests if r.flow_name == "g")
        await _corrupt(eng, "UPDATE flow_versions SET definition = 'steps: [' WHERE name = 'f'")
        eng._runtime.applier._flows.clear()  # as after a restart: the definition is read again
        eng._runtime.applier._flow_bytes = 0
        err = await refused("ExecutionNotRunning", eng.report_task_succeeded(f_task.token, {}))
        assert "has been failed" in err.message
        info = await eng.describe_execution("f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        assert "could not load the definition" in info.cause
        await eng.report_task_succeeded(g_task.token, {})
        assert (await finished(eng, "g", "run1")).status == "Succeeded"


@engine_test
async def test_a_timer_of_an_unreadable_execution_fails_it_and_the_others_fire():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 1
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="bad")
        await eng.start_execution("w", {}, name="good")
        await _corrupt(eng, "UPDATE executions SET state = '[' WHERE name = 'bad'")
        assert (await finished(eng, "w", "good", seconds=5)).status == "Succeeded"
        bad = await finished(eng, "w", "bad", seconds=5)
        assert (bad.status, bad.error) == ("Failed", "FnF.RuntimeError")


@engine_test
async def test_numbers_json_cannot_carry_are_refused():
    """Found by fuzzing: NaN, Infinity and 1e400 went into execution data, then out as non-JSON."""
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": [1e400]}', '{"a": -1E+999}'):
            await refused("InvalidArgument", eng.start_execution("f", text))
        await eng.start_execution("f", '{"a": 1e300, "b": 1234567890123456789012345}', name="ok")
        request = await worker.take(1)
        await refused("InvalidArgument", eng.report_task_succeeded(request.token, '{"x": NaN}'))
        await eng.report_task_succeeded(request.token, '{"x": 1.5e308}')
        assert (await finished(eng, "f", "ok")).status == "Succeeded"


@engine_test
async def test_a_forged_callback_token_is_refused_at_start():
    """Found by fuzzing: a well-formed CallbackFnFTaskToken with a wrong MAC was accepted."""
    from relayflow.engine.tokens import mint_token

    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, token_secret=b"s" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        forged = mint_token(b"wrong" * 8, "f", "parent", "uid", 3)
        err = await refused("InvalidArgument", eng.start_execution("f", {}, "child", forged))
        assert "CallbackFnFTaskToken" in err.message
        genuine = mint_token(b"s" * 32, "f", "parent", "uid", 3)
        assert (await eng.start_execution("f", {}, "child", genuine)).status == "Running"


@engine_test
async def test_the_flow_cache_is_bounded_by_the_size_of_its_definitions(monkeypatch):
    """Found by fuzzing: 256 large definitions could hold a gigabyte of loaded flows."""
    from relayflow.engine import applier

    monkeypatch.setattr(applier, "FLOW_CACHE_TEXT_BYTES", 3000)
    async with make_engine() as eng:
        padding = "\n".join(f"# {'x' * 70}" for _ in range(12))  # ~1 KB of text per flow
        for i in range(6):
            await eng.create_flow(f"f{i}", PASS_FLOW + padding)
            assert (await eng.start_execution(f"f{i}", {})).status == "Succeeded"
        assert len(eng._runtime.applier._flows) <= 3
        assert (
            eng._runtime.applier._flow_bytes
            == sum(entry[2] for entry in eng._runtime.applier._flows.values())
            <= 3000
        )


def test_long_numbers_parse_and_overflowing_ones_are_refused():
    """Integers of any length are JSON; a decimal past a float's range is not."""
    from relayflow import jsontext

    text = "[" + ",".join(["1" * 300] * 3000) + "]"  # runs of 300 digits: looked at once each
    assert jsontext.loads_input(text)[0] == int("1" * 300)
    assert jsontext.loads_input("[" + "9" * 400 + "]")[0] == int("9" * 400)
    for overflowing in ("[" + "9" * 400 + ".5]", "[1e309]", "[-2E+308]"):
        with pytest.raises(ValueError, match="too large"):
            jsontext.loads_input(overflowing)
