"""requestResponse tasks and the integrations that run them."""

from __future__ import annotations

import itertools
import time
from typing import Any

from relayflow.engine import Failed, FunctionIntegration, Integration, Succeeded, TaskRequest
from relayflow.testing import bounded, make_engine
from tests.engine.helpers import (
    CALLBACK,
    QUEUE,
    Worker,
    action_flow,
    finished,
    types_of,
)


@bounded
async def test_request_response_succeeded():
    seen: list[TaskRequest] = []

    async def work(request: TaskRequest) -> Succeeded:
        seen.append(request)
        return Succeeded({"sum": request.input["a"] + request.input["b"]})

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {"a": 2, "b": 3}, name="run1")
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded" and info.output == {"sum": 5}
        assert len(seen) == 1
        request = seen[0]
        assert (request.flow_name, request.execution_name, request.step_name) == (
            "f",
            "run1",
            "call",
        )
        assert (request.resource, request.pattern, request.attempt) == (
            "demo:Work",
            "requestResponse",
            0,
        )
        assert "TaskSucceeded" in await types_of(eng, "f", "run1")


@bounded
async def test_request_response_failed():
    async def work(request: TaskRequest) -> Failed:
        return Failed("Biz.Rejected", "amount too large")

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error, info.cause) == (
            "Failed",
            "Biz.Rejected",
            "amount too large",
        )
        types = await types_of(eng, "f", "run1")
        assert "TaskFailed" in types and types[-1] == "ExecutionFailed"


@bounded
async def test_an_integration_that_raises_fails_the_task_with_runtime_error():
    async def work(request: TaskRequest) -> Succeeded:
        raise ValueError("the database is gone")

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        assert "the database is gone" in info.cause


@bounded
async def test_a_result_that_is_not_an_object_is_invalid_local():
    async def work(request: TaskRequest) -> Succeeded:
        return Succeeded([1, 2])

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.InvalidLocal")


@bounded
async def test_an_unclaimed_resource_fails_with_a_cause_naming_it():
    async with make_engine({"demo:Work": Worker().queue}) as eng:
        await eng.create_flow("f", action_flow("nobody:Home"))
        await eng.create_flow("g", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        await eng.start_execution("g", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        assert "nobody:Home" in info.cause
        other = await finished(eng, "g", "run1")
        assert other.error == "FnF.RuntimeError" and QUEUE in other.cause


@bounded
async def test_a_pattern_the_integration_does_not_support_fails():
    class RequestOnly(Integration):
        name = "request-only"
        patterns = frozenset({"requestResponse"})

        def claims(self, resource: str) -> bool:
            return resource == QUEUE

        async def invoke(self, request: TaskRequest) -> Succeeded:
            raise AssertionError("must not be invoked")

    async with make_engine(integrations=[RequestOnly()]) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert info.error == "FnF.RuntimeError"
        assert "request-only" in info.cause and "waitForCallback" in info.cause


@bounded
async def test_integrations_are_asked_in_order():
    calls: list[str] = []

    def handler(label: str) -> Any:
        async def answer(request: TaskRequest) -> Succeeded:
            calls.append(label)
            return Succeeded({"by": label})

        return answer

    first = FunctionIntegration({"demo:Work": handler("first")}, name="first")
    second = FunctionIntegration(
        {"demo:Work": handler("second"), "demo:Other": handler("second")}, name="second"
    )
    async with make_engine(integrations=[first, second]) as eng:
        await eng.create_flow("f", action_flow())
        await eng.create_flow("g", action_flow("demo:Other"))
        await eng.start_execution("f", {}, name="r")
        await eng.start_execution("g", {}, name="r")
        assert (await finished(eng, "f", "r")).output == {"by": "first"}
        assert (await finished(eng, "g", "r")).output == {"by": "second"}


@bounded
async def test_retries_reinvoke_with_back_off():
    times: list[float] = []
    attempts: list[int] = []

    async def flaky(request: TaskRequest) -> Succeeded | Failed:
        times.append(time.monotonic())
        attempts.append(request.attempt)
        if len(times) < 3:
            return Failed("Flaky.Busy", f"call {len(times)}")
        return Succeeded({"calls": len(times)})

    retry = """
    retry:
      - errors: [Flaky.Busy]
        intervalSeconds: 1
        maxAttempts: 2
        multiplier: 1
    """
    async with make_engine({"demo:Work": flaky}) as eng:
        await eng.create_flow("f", action_flow(extra=retry))
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1", seconds=4)
        assert info.status == "Succeeded" and info.output == {"calls": 3}
        assert attempts == [0, 1, 2]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.9 <= gap < 1.8 for gap in gaps), gaps
        types = await types_of(eng, "f", "run1")
        assert types.count("TaskScheduled") == 3 and types.count("StepEntered") == 1


@bounded
async def test_retries_run_out_then_the_step_fails():
    calls: list[int] = []

    async def broken(request: TaskRequest) -> Failed:
        calls.append(request.attempt)
        return Failed("Flaky.Busy", "always")

    retry = """
    retry:
      - errors: [FnF.ALL]
        intervalSeconds: 1
        maxAttempts: 1
    """
    async with make_engine({"demo:Work": broken}) as eng:
        await eng.create_flow("f", action_flow(extra=retry))
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1", seconds=3)
        assert (info.status, info.error, info.cause) == ("Failed", "Flaky.Busy", "always")
        assert calls == [0, 1]


@bounded
async def test_retry_policies_match_by_error_name():
    calls: list[int] = []

    async def broken(request: TaskRequest) -> Failed:
        calls.append(request.attempt)
        return Failed("Other.Error")

    retry = """
    retry:
      - errors: [Flaky.Busy]
        intervalSeconds: 1
        maxAttempts: 3
    """
    async with make_engine({"demo:Work": broken}) as eng:
        await eng.create_flow("f", action_flow(extra=retry))
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1", seconds=2)
        assert info.error == "Other.Error" and calls == [0]
