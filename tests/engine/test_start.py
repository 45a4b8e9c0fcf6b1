"""Starting executions on the engine."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import (
    CALLBACK,
    PASS,
    QUEUE,
    Worker,
    finished,
    refused,
    types_of,
)


@bounded
async def test_start_execution_runs_a_pass_flow_to_the_end():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        info = await eng.start_execution("p", {"a": 1}, name="r")
        assert info.status == "Succeeded"
        assert info.input == {"a": 1} and info.output == {}
        assert info.definition == PASS
        assert info.stopped is not None and info.stopped >= info.started
        assert await types_of(eng, "p", "r") == [
            "ExecutionStarted",
            "StepEntered",
            "StepSucceeded",
            "StepExited",
            "ExecutionSucceeded",
        ]
        api = info.to_api()
        assert api["Status"] == "Succeeded" and api["Input"] == '{"a": 1}'


@bounded
async def test_start_execution_is_idempotent_by_name_while_running():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        first = await eng.start_execution("f", {"n": 1}, name="run1")
        again = await eng.start_execution("f", {"n": 2}, name="run1")
        assert again.status == "Running"
        assert (again.name, again.started, again.input) == ("run1", first.started, {"n": 1})
        request = await worker.take(1)
        await asyncio.sleep(0.2)
        assert len(worker.requests) == 1
        assert (await types_of(eng, "f", "run1")).count("ExecutionStarted") == 1
        assert len((await eng.list_executions("f")).items) == 1
        await eng.report_task_succeeded(request.token, {})
        await finished(eng, "f", "run1")
        err = await refused("ExecutionAlreadyExists", eng.start_execution("f", {}, name="run1"))
        assert err.status == 409


@bounded
async def test_start_execution_refuses_the_name_of_a_failed_or_stopped_one():
    async with make_engine({QUEUE: Worker().queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.create_flow("bad", fdl("- type: fail\n  name: nope\n  error: Nope"))
        assert (await eng.start_execution("bad", {}, name="x")).status == "Failed"
        await refused("ExecutionAlreadyExists", eng.start_execution("bad", {}, name="x"))
        await eng.start_execution("f", {}, name="y")
        await eng.stop_execution("f", "y")
        await refused("ExecutionAlreadyExists", eng.start_execution("f", {}, name="y"))


@bounded
async def test_generated_execution_names_are_unique():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        runs = [await eng.start_execution("p", {}) for _ in range(20)]
        names = {r.name for r in runs}
        assert len(names) == 20 and all(names)
        for run in runs[:3]:
            assert (await eng.describe_execution("p", run.name)).status == "Succeeded"


@pytest.mark.parametrize("value", ["[1, 2]", "not json", "{", "3", '"text"', [1], 5, "null"])
@bounded
async def test_start_execution_input_must_be_a_json_object(value):
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        err = await refused("InvalidArgument", eng.start_execution("p", value, name="r"))
        assert "Input" in err.message
        await refused("ExecutionNotExists", eng.describe_execution("p", "r"))


@bounded
async def test_start_execution_accepts_json_text_and_no_input():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        assert (await eng.start_execution("p", '{"a": [1]}')).input == {"a": [1]}
        assert (await eng.start_execution("p")).input == {}
        assert (await eng.start_execution("p", "")).input == {}


@pytest.mark.parametrize("name", ["1run", "a b", "x" * 129, "run.1"])
@bounded
async def test_start_execution_refuses_bad_names(name):
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await refused("InvalidArgument", eng.start_execution("p", {}, name=name))


@bounded
async def test_start_execution_of_a_missing_flow():
    async with make_engine() as eng:
        err = await refused("FlowNotExists", eng.start_execution("ghost", {}))
        assert err.status == 404
