"""The engine's operations end to end: flows, executions, history, stops and task reports.

Each test runs its own event loop (`asyncio.run`, through `engine_test`) with an in-memory or a
temporary SQLite store, and integrations made of small async functions. Waits are short and
bounded: no test waits on anything for more than a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import inspect
import itertools
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relayflow.engine import (
    Engine,
    ExecutionInfo,
    Failed,
    FunctionIntegration,
    Integration,
    Submitted,
    Succeeded,
    TaskRequest,
)
from relayflow.engine.model import HistoryEvent
from relayflow.engine.tokens import mint_token, parse_token
from relayflow.errors import EngineError
from relayflow.store import StoreError, open_store
from relayflow.testing import fdl
from tests.helpers import EXAMPLES

QUEUE = "acs:mns:::/queues/q/messages"
SEED = (EXAMPLES / "seed-three-tasks.yaml").read_text()
TEST_TIMEOUT = 10.0


CALLBACK = fdl(f"""
- type: task
  name: work
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")

PASS = fdl("""
- type: pass
  name: only
""")

BROKEN = """version: v1
type: flow
steps:
  - type: choice
    name: c
    choices:
      - condition: $.ok
        goto: nowhere
  - type: pass
    name: b
"""

# Runs `hold` (a callback task) when the input says so, else ends at once.
ROUTED = fdl(f"""
- type: choice
  name: route
  choices:
    - condition: $.hold == true
      goto: hold
  default:
    goto: done
- type: task
  name: hold
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: pass
  name: done
""")


def engine_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in its own event loop, with an overall time limit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT))

    return wrapper


class Worker:
    """Task handlers that record every request they get."""

    def __init__(self) -> None:
        self.requests: list[TaskRequest] = []
        self.times: list[float] = []

    async def queue(self, request: TaskRequest) -> Submitted:
        self.requests.append(request)
        self.times.append(time.monotonic())
        return Submitted({"MessageId": str(request.task_id)})

    async def take(self, n: int = 1, timeout: float = 3.0) -> TaskRequest:
        """The ``n``-th request (1-based), once it has come."""
        await until(lambda: len(self.requests) >= n, timeout, f"task request #{n}")
        return self.requests[n - 1]


async def until(check: Callable[[], Any], timeout: float = 3.0, what: str = "a condition") -> Any:
    """Poll ``check`` (sync or async) until it gives a true value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def make_engine(
    handlers: dict[str, Any] | None = None,
    url: str = "memory://",
    integrations: list[Integration] | None = None,
    **kwargs: Any,
) -> Engine:
    kwargs.setdefault("poll_seconds", 0.1)
    if integrations is None:
        integrations = [FunctionIntegration(handlers or {})]
    return Engine(open_store(url), integrations=integrations, **kwargs)


async def refused(code: str, awaitable: Awaitable[Any]) -> EngineError:
    """Await ``awaitable`` and check that the engine refuses it with ``code``."""
    with pytest.raises(EngineError) as info:
        await awaitable
    assert info.value.code == code, str(info.value)
    return info.value


async def history(engine: Engine, flow: str, name: str) -> list[HistoryEvent]:
    return (await engine.get_execution_history(flow, name, limit=999)).events


async def types_of(engine: Engine, flow: str, name: str) -> list[str]:
    return [e.type for e in await history(engine, flow, name)]


async def finished(engine: Engine, flow: str, name: str, seconds: float = 3) -> ExecutionInfo:
    info = await engine.describe_execution(flow, name, wait_seconds=seconds)
    assert info.done, f"{flow}/{name} is still {info.status} after {seconds} s"
    return info


def token_text(token: str) -> str:
    return base64.b64decode(token).decode()


def retoken(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------------------------------------
# Flows


@engine_test
async def test_create_and_describe_flow():
    async with make_engine() as eng:
        info = await eng.create_flow("orders", CALLBACK, description="order flow")
        assert (info.name, info.version, info.type) == ("orders", 1, "FDL")
        assert info.definition == CALLBACK
        assert info.description == "order flow"
        assert info.created == info.modified > 0
        assert len(info.id) == 36
        assert await eng.describe_flow("orders") == info
        api = info.to_api()
        assert api["Name"] == "orders" and api["Definition"] == CALLBACK
        assert api["CreatedTime"].endswith("Z") and len(api["CreatedTime"]) == 24


@engine_test
async def test_create_flow_twice_is_refused():
    async with make_engine() as eng:
        first = await eng.create_flow("orders", CALLBACK)
        err = await refused("FlowAlreadyExists", eng.create_flow("orders", PASS))
        assert err.status == 409
        assert (await eng.describe_flow("orders")) == first


@engine_test
async def test_invalid_definition_carries_the_line_numbered_problem():
    async with make_engine() as eng:
        err = await refused("InvalidDefinition", eng.create_flow("broken", BROKEN))
        assert err.status == 400
        assert "broken:8: steps[0].choices[0].goto: no sibling step named 'nowhere'" in err.message
        await refused("FlowNotExists", eng.describe_flow("broken"))
        await refused("InvalidDefinition", eng.create_flow("yaml", "steps: [\n"))


@pytest.mark.parametrize("name", ["", "1abc", "-x", "a b", "a.b", "ä", "x" * 129, "a#b"])
@engine_test
async def test_bad_flow_names_are_refused(name):
    async with make_engine() as eng:
        err = await refused("InvalidArgument", eng.create_flow(name, PASS))
        assert err.status == 400
        assert (await eng.list_flows()).items == []


@engine_test
async def test_good_flow_names_are_accepted():
    async with make_engine() as eng:
        for name in ["a", "_x", "A-b_9", "x" * 128]:
            await eng.create_flow(name, PASS)
        assert len((await eng.list_flows()).items) == 4


@engine_test
async def test_update_flow_bumps_the_version_only_when_the_definition_changes():
    async with make_engine() as eng:
        created = await eng.create_flow("f", PASS, description="one")
        same = await eng.update_flow("f", definition=PASS)
        assert same.version == 1
        described = await eng.update_flow("f", description="two")
        assert (described.version, described.description) == (1, "two")
        changed = await eng.update_flow("f", definition=CALLBACK)
        assert changed.version == 2
        assert changed.definition == CALLBACK
        assert changed.id == created.id and changed.created == created.created
        assert changed.modified >= created.modified
        assert (await eng.describe_flow("f")).version == 2


@engine_test
async def test_update_flow_refusals():
    async with make_engine() as eng:
        await refused("FlowNotExists", eng.update_flow("ghost", definition=PASS))
        await eng.create_flow("f", PASS)
        err = await refused("InvalidDefinition", eng.update_flow("f", definition=BROKEN))
        assert "no sibling step named 'nowhere'" in err.message
        assert (await eng.describe_flow("f")).definition == PASS


@engine_test
async def test_running_execution_keeps_the_definition_it_started_with():
    def version(n: int) -> str:
        return fdl(f"""
        - type: task
          name: work
          resourceArn: {QUEUE}
          pattern: waitForCallback
        - type: pass
          name: tail{n}
          outputMappings:
            - target: version
              source: {n}
        """)

    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", version(1))
        await eng.start_execution("f", {}, name="old")
        old_task = await worker.take(1)
        await eng.update_flow("f", definition=version(2))
        await eng.start_execution("f", {}, name="new")
        new_task = await worker.take(2)
        assert (await eng.describe_execution("f", "old")).definition == version(1)
        assert (await eng.describe_execution("f", "new")).definition == version(2)
        await eng.report_task_succeeded(old_task.token, {})
        await eng.report_task_succeeded(new_task.token, {})
        old = await finished(eng, "f", "old")
        new = await finished(eng, "f", "new")
        assert old.output == {"version": 1}
        assert new.output == {"version": 2}
        steps = {e.step_name for e in await history(eng, "f", "old")}
        assert "tail1" in steps and "tail2" not in steps


@engine_test
async def test_list_flows_pages_by_name():
    async with make_engine() as eng:
        for name in ["e", "b", "d", "a", "c"]:
            await eng.create_flow(name, PASS)
        first = await eng.list_flows(limit=2)
        assert [f.name for f in first.items] == ["a", "b"] and first.next_token
        second = await eng.list_flows(limit=2, next_token=first.next_token)
        assert [f.name for f in second.items] == ["c", "d"] and second.next_token
        third = await eng.list_flows(limit=2, next_token=second.next_token)
        assert [f.name for f in third.items] == ["e"] and third.next_token == ""
        everything = await eng.list_flows()
        assert [f.name for f in everything.items] == list("abcde")
        assert everything.next_token == ""
        exact = await eng.list_flows(limit=5)
        assert len(exact.items) == 5 and exact.next_token == ""
        for bad in (0, 1000, -1):
            await refused("InvalidArgument", eng.list_flows(limit=bad))


@engine_test
async def test_delete_flow_removes_its_executions():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.create_flow("other", PASS)
        await eng.start_execution("f", {}, name="run1")
        await eng.start_execution("other", {}, name="run1")
        request = await worker.take(1)
        await eng.delete_flow("f")
        await refused("FlowNotExists", eng.describe_flow("f"))
        err = await refused("ExecutionNotExists", eng.describe_execution("f", "run1"))
        assert err.status == 404
        await refused("ExecutionNotExists", eng.get_execution_history("f", "run1"))
        await refused("FlowNotExists", eng.list_executions("f"))
        await refused("FlowNotExists", eng.start_execution("f", {}))
        await refused("ExecutionNotExists", eng.report_task_succeeded(request.token, {}))
        await refused("ExecutionNotExists", eng.stop_execution("f", "run1"))
        await refused("FlowNotExists", eng.delete_flow("f"))
        assert [f.name for f in (await eng.list_flows()).items] == ["other"]
        assert (await eng.describe_execution("other", "run1")).status == "Succeeded"


@engine_test
async def test_token_of_a_deleted_execution_does_not_fit_a_new_one_of_the_same_name():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        old = await worker.take(1)
        await eng.delete_flow("f")
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        new = await worker.take(2)
        assert parse_token(old.token).task_id == parse_token(new.token).task_id
        await refused("TaskTokenInvalid", eng.report_task_succeeded(old.token, {}))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(new.token, {"ok": True})
        assert (await finished(eng, "f", "run1")).output == {"ok": True}


@engine_test
async def test_recreated_flow_runs_its_new_definition():
    first = fdl("""
    - type: pass
      name: first
      outputMappings:
        - target: which
          source: first
    """)
    second = fdl("""
    - type: pass
      name: second
      outputMappings:
        - target: which
          source: second
    """)
    async with make_engine() as eng:
        await eng.create_flow("f", first)
        assert (await eng.start_execution("f", {}, name="a")).output == {"which": "first"}
        await eng.delete_flow("f")
        await eng.create_flow("f", second)
        run = await eng.start_execution("f", {}, name="a")
        assert run.definition == second
        assert run.output == {"which": "second"}
        assert "second" in {e.step_name for e in await history(eng, "f", "a")}


# ---------------------------------------------------------------------------------------------
# Starting executions


@engine_test
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


@engine_test
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


@engine_test
async def test_start_execution_refuses_the_name_of_a_failed_or_stopped_one():
    async with make_engine({QUEUE: Worker().queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.create_flow("bad", fdl("- type: fail\n  name: nope\n  error: Nope"))
        assert (await eng.start_execution("bad", {}, name="x")).status == "Failed"
        await refused("ExecutionAlreadyExists", eng.start_execution("bad", {}, name="x"))
        await eng.start_execution("f", {}, name="y")
        await eng.stop_execution("f", "y")
        await refused("ExecutionAlreadyExists", eng.start_execution("f", {}, name="y"))


@engine_test
async def test_generated_execution_names_are_unique():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        runs = [await eng.start_execution("p", {}) for _ in range(20)]
        names = {r.name for r in runs}
        assert len(names) == 20 and all(names)
        for run in runs[:3]:
            assert (await eng.describe_execution("p", run.name)).status == "Succeeded"


@pytest.mark.parametrize("value", ["[1, 2]", "not json", "{", "3", '"text"', [1], 5, "null"])
@engine_test
async def test_start_execution_input_must_be_a_json_object(value):
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        err = await refused("InvalidArgument", eng.start_execution("p", value, name="r"))
        assert "Input" in err.message
        await refused("ExecutionNotExists", eng.describe_execution("p", "r"))


@engine_test
async def test_start_execution_accepts_json_text_and_no_input():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        assert (await eng.start_execution("p", '{"a": [1]}')).input == {"a": [1]}
        assert (await eng.start_execution("p")).input == {}
        assert (await eng.start_execution("p", "")).input == {}


@pytest.mark.parametrize("name", ["1run", "a b", "x" * 129, "run.1"])
@engine_test
async def test_start_execution_refuses_bad_names(name):
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await refused("InvalidArgument", eng.start_execution("p", {}, name=name))


@engine_test
async def test_start_execution_of_a_missing_flow():
    async with make_engine() as eng:
        err = await refused("FlowNotExists", eng.start_execution("ghost", {}))
        assert err.status == 404


# ---------------------------------------------------------------------------------------------
# Describing and listing executions


@engine_test
async def test_describe_execution_wait_returns_when_the_execution_ends():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)

        async def report_soon() -> None:
            await asyncio.sleep(0.3)
            await eng.report_task_succeeded(request.token, {"done": 1})

        reporter = asyncio.create_task(report_soon())
        t0 = time.monotonic()
        info = await eng.describe_execution("f", "run1", wait_seconds=2)
        elapsed = time.monotonic() - t0
        await reporter
        assert info.status == "Succeeded" and info.output == {"done": 1}
        assert 0.25 <= elapsed < 1.0


@engine_test
async def test_describe_execution_wait_times_out_with_a_running_execution():
    async with make_engine({QUEUE: Worker().queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        t0 = time.monotonic()
        info = await eng.describe_execution("f", "run1", wait_seconds=1)
        elapsed = time.monotonic() - t0
        assert info.status == "Running" and not info.done
        assert 0.9 <= elapsed < 1.8


@engine_test
async def test_describe_execution_wait_on_a_finished_execution_returns_at_once():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        t0 = time.monotonic()
        assert (await eng.describe_execution("p", "r", wait_seconds=30)).status == "Succeeded"
        assert time.monotonic() - t0 < 0.5


@engine_test
async def test_describe_execution_refusals():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        for bad in (-1, 61):
            await refused("InvalidArgument", eng.describe_execution("p", "r", wait_seconds=bad))
        await refused("ExecutionNotExists", eng.describe_execution("p", "ghost"))
        await refused("ExecutionNotExists", eng.describe_execution("ghost", "r"))


@engine_test
async def test_list_executions_filters_and_pages():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", ROUTED)
        await eng.create_flow("other", ROUTED)
        running = ["a1", "a3", "b2"]
        for name in ["b1", "a2", "a1", "b2", "a3", "a4", "c"]:
            await eng.start_execution("f", {"hold": name in running}, name=name)
        await eng.start_execution("other", {}, name="a0")

        async def names(**kwargs: Any) -> list[str]:
            return [e.name for e in (await eng.list_executions("f", **kwargs)).items]

        assert await names() == ["a1", "a2", "a3", "a4", "b1", "b2", "c"]
        assert await names(status="Running") == ["a1", "a3", "b2"]
        assert await names(status="Succeeded") == ["a2", "a4", "b1", "c"]
        assert await names(name_prefix="a") == ["a1", "a2", "a3", "a4"]
        assert await names(name_prefix="a", status="Running") == ["a1", "a3"]
        assert await names(name_prefix="zz") == []
        assert await names(status="Failed") == []

        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await eng.list_executions("f", limit=3, next_token=token)
            seen += [e.name for e in page.items]
            pages += 1
            if not page.next_token:
                break
            token = page.next_token
        assert seen == ["a1", "a2", "a3", "a4", "b1", "b2", "c"] and pages == 3

        first = await eng.list_executions("f", name_prefix="a", limit=2)
        assert [e.name for e in first.items] == ["a1", "a2"] and first.next_token
        rest = await eng.list_executions("f", name_prefix="a", limit=2, next_token=first.next_token)
        assert [e.name for e in rest.items] == ["a3", "a4"] and rest.next_token == ""

        await refused("FlowNotExists", eng.list_executions("ghost"))
        await refused("InvalidArgument", eng.list_executions("f", limit=0))


@engine_test
async def test_list_executions_by_start_time():
    clock_now = [1_000_000.0]
    async with make_engine(clock=lambda: clock_now[0]) as eng:
        await eng.create_flow("p", PASS)
        for i, name in enumerate(["x1", "x2", "x3"]):
            clock_now[0] = 1_000_000.0 + 10 * i
            await eng.start_execution("p", {}, name=name)
        page = await eng.list_executions("p", started_from=1_000_005.0)
        assert [e.name for e in page.items] == ["x2", "x3"]
        page = await eng.list_executions("p", started_to=1_000_010.0)
        assert [e.name for e in page.items] == ["x1", "x2"]


# ---------------------------------------------------------------------------------------------
# History


@engine_test
async def test_history_pages_are_gap_free_and_ordered():
    worker = Worker()
    async with make_engine({"acs:mns:::/queues/fnf-demo/messages": worker.queue}) as eng:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        for n in (1, 2, 3):
            request = await worker.take(n)
            await eng.report_task_succeeded(request.token, {"rows": [1], "count": 1})
        await finished(eng, "seed", "run1")
        full = await eng.get_execution_history("seed", "run1", limit=999)
        assert full.next_token == ""
        ids = [e.event_id for e in full.events]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) > 20

        paged: list[HistoryEvent] = []
        token = ""
        while True:
            page = await eng.get_execution_history("seed", "run1", limit=4, next_token=token)
            assert 1 <= len(page.events) <= 4
            paged += page.events
            if not page.next_token:
                break
            assert page.next_token == str(page.events[-1].event_id)
            token = page.next_token
        assert paged == full.events

        default = await eng.get_execution_history("seed", "run1")
        assert default.events == full.events[: len(default.events)]
        api = full.to_api()
        assert api["Events"][0]["EventId"] == 1 and api["NextToken"] == ""


@engine_test
async def test_history_of_a_callback_task_follows_the_documented_order():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        await until(
            lambda: _has(eng, "f", "run1", "TaskSubmitted"), what="TaskSubmitted in the history"
        )
        await eng.report_task_succeeded(request.token, {"x": 1})
        await finished(eng, "f", "run1")
        events = await history(eng, "f", "run1")
        assert [e.type for e in events] == [
            "ExecutionStarted",
            "StepEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "StepSucceeded",
            "StepExited",
            "ExecutionSucceeded",
        ]
        scheduled = events[2]
        assert scheduled.event_id == request.task_id
        assert all(e.schedule_event_id == request.task_id for e in events[3:6])
        assert events[4].detail == {"MessageId": str(request.task_id)}


async def _has(engine: Engine, flow: str, name: str, kind: str) -> bool:
    return kind in await types_of(engine, flow, name)


@engine_test
async def test_history_refusals():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        await refused("InvalidArgument", eng.get_execution_history("p", "r", next_token="abc"))
        await refused("InvalidArgument", eng.get_execution_history("p", "r", limit=0))
        await refused("ExecutionNotExists", eng.get_execution_history("p", "ghost"))


# ---------------------------------------------------------------------------------------------
# Stopping


@engine_test
async def test_stop_execution():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        info = await eng.stop_execution("f", "run1", error="Manual", cause="by the test")
        assert info.status == "Stopped" and info.done
        assert (info.error, info.cause) == ("Manual", "by the test")
        assert info.stopped is not None
        described = await eng.describe_execution("f", "run1")
        assert described.status == "Stopped" and described.error == "Manual"
        assert described.to_api()["Cause"] == "by the test"
        events = await history(eng, "f", "run1")
        assert events[-1].type == "ExecutionStopped"
        assert events[-1].detail == {"error": "Manual", "cause": "by the test"}
        err = await refused("ExecutionNotRunning", eng.stop_execution("f", "run1"))
        assert err.status == 409
        await refused("ExecutionNotRunning", eng.report_task_succeeded(request.token, {}))
        await refused("ExecutionNotRunning", eng.report_task_failed(request.token, "Late"))
        assert await history(eng, "f", "run1") == events


@engine_test
async def test_stop_a_finished_or_missing_execution():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        await refused("ExecutionNotRunning", eng.stop_execution("p", "r", "E", "c"))
        await refused("ExecutionNotExists", eng.stop_execution("p", "ghost"))
        assert (await eng.describe_execution("p", "r")).status == "Succeeded"


@engine_test
async def test_a_stopped_wait_does_not_fire():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.3
    - type: pass
      name: after
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="r")
        await eng.stop_execution("w", "r")
        before = await history(eng, "w", "r")
        await asyncio.sleep(0.6)
        assert await history(eng, "w", "r") == before
        assert (await eng.describe_execution("w", "r")).status == "Stopped"


# ---------------------------------------------------------------------------------------------
# Task reports


@engine_test
async def test_first_report_wins():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        event_id = await eng.report_task_succeeded(request.token, {"first": True})
        events = {e.event_id: e for e in await history(eng, "f", "run1")}
        assert events[event_id].type == "TaskSucceeded"
        assert events[event_id].schedule_event_id == request.task_id
        assert events[event_id].detail == {"output": {"first": True}}
        err = await refused(
            "TaskAlreadyCompleted", eng.report_task_succeeded(request.token, {"second": True})
        )
        assert err.status == 409
        await refused("TaskAlreadyCompleted", eng.report_task_failed(request.token, "Oops"))
        info = await finished(eng, "f", "run1")
        assert info.output == {"first": True}
        assert (await types_of(eng, "f", "run1")).count("TaskSucceeded") == 1


@engine_test
async def test_concurrent_reports_only_one_wins():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        results = await asyncio.gather(
            *(eng.report_task_succeeded(request.token, {"n": n}) for n in range(5)),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, int)]
        losses = [r for r in results if isinstance(r, EngineError)]
        assert len(wins) == 1 and len(losses) == 4
        assert {e.code for e in losses} == {"TaskAlreadyCompleted"}
        info = await finished(eng, "f", "run1")
        assert info.output == {"n": results.index(wins[0])}


@engine_test
async def test_report_failed_returns_the_task_failed_event():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        event_id = await eng.report_task_failed(request.token, "Disk.Full", "no space")
        events = {e.event_id: e for e in await history(eng, "f", "run1")}
        assert events[event_id].type == "TaskFailed"
        assert events[event_id].detail == {"error": "Disk.Full", "cause": "no space"}
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error, info.cause) == ("Failed", "Disk.Full", "no space")
        await refused("TaskAlreadyCompleted", eng.report_task_succeeded(request.token, {}))


@engine_test
async def test_report_arguments_are_checked():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        await refused("InvalidArgument", eng.report_task_failed(request.token, ""))
        await refused("InvalidArgument", eng.report_task_failed(request.token, "E" * 129))
        await refused("InvalidArgument", eng.report_task_succeeded(request.token, "[1]"))
        await refused("InvalidArgument", eng.report_task_succeeded(request.token, "{"))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(request.token, '{"ok": 1}')
        assert (await finished(eng, "f", "run1")).output == {"ok": 1}


@engine_test
async def test_report_after_the_attempt_timed_out_is_expired():
    flow = fdl(f"""
    - type: task
      name: slow
      resourceArn: {QUEUE}
      pattern: waitForCallback
      timeoutSeconds: 1
      retry:
        - errors: [FnF.TaskTimeout]
          intervalSeconds: 1
          maxAttempts: 1
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        first = await worker.take(1)
        await asyncio.sleep(1.5)
        assert "TaskTimedOut" in await types_of(eng, "f", "run1")
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        err = await refused("TaskExpired", eng.report_task_succeeded(first.token, {}))
        assert err.status == 409
        second = await worker.take(2, timeout=2.0)
        assert second.token != first.token and second.attempt == first.attempt + 1
        await eng.report_task_succeeded(second.token, {"late": False})
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded" and info.output == {"late": False}
        timed_out = [e for e in await history(eng, "f", "run1") if e.type == "TaskTimedOut"]
        assert len(timed_out) == 1 and timed_out[0].detail["error"] == "FnF.TaskTimeout"


@engine_test
async def test_a_task_timeout_without_retry_fails_the_execution():
    flow = fdl(f"""
    - type: task
      name: slow
      resourceArn: {QUEUE}
      pattern: waitForCallback
      timeoutSeconds: 1
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        info = await finished(eng, "f", "run1", seconds=2.5)
        assert (info.status, info.error) == ("Failed", "FnF.TaskTimeout")
        await refused("ExecutionNotRunning", eng.report_task_succeeded(request.token, {}))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token!",
        "djEjYSNi",  # base64 of "v1#a#b"
        retoken("v2#f#run1#3#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1#f#run1#three#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1##run1#3#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1#f#run1#3#not base64!"),
        retoken("v1#f#run1#3#a#b"),
        base64.b64encode(b"\xff\xfe#\x00").decode(),
    ],
)
@engine_test
async def test_garbled_tokens_are_malformed(token):
    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        err = await refused("TaskTokenMalformed", eng.report_task_succeeded(token, {}))
        assert err.status == 400
        await refused("TaskTokenMalformed", eng.report_task_failed(token, "E"))


@engine_test
async def test_altered_and_forged_tokens_are_invalid():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        text = token_text(request.token)
        prefix, mac_b64 = text.rsplit("#", 1)
        mac = base64.b64decode(mac_b64)
        assert len(mac) == 40  # an HMAC of the prefix, then one bound to the execution's uid
        for byte in (0, 20):
            flipped = mac[:byte] + bytes([mac[byte] ^ 1]) + mac[byte + 1 :]
            bad_mac = retoken(f"{prefix}#{base64.b64encode(flipped).decode()}")
            err = await refused("TaskTokenInvalid", eng.report_task_succeeded(bad_mac, {}))
            assert err.status == 403
        v, flow, execution, task_id = prefix.split("#")
        other_task = retoken(f"{v}#{flow}#{execution}#{int(task_id) + 1}#{mac_b64}")
        await refused("TaskTokenInvalid", eng.report_task_succeeded(other_task, {}))
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        foreign = mint_token(b"another store's secret", "f", "run1", uid, request.task_id)
        await refused("TaskTokenInvalid", eng.report_task_failed(foreign, "E"))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(request.token, {})
        assert (await finished(eng, "f", "run1")).status == "Succeeded"


@engine_test
async def test_token_layout_matches_serverless_workflow():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, token_secret=b"k" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        text = token_text(request.token)
        assert text.startswith(f"v1#f#run1#{request.task_id}#")
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        assert request.token == mint_token(b"k" * 32, "f", "run1", uid, request.task_id)


@engine_test
async def test_well_formed_token_for_a_missing_execution():
    async with make_engine(token_secret=b"s" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        ghost = mint_token(b"s" * 32, "f", "ghost", "uid", 3)
        err = await refused("ExecutionNotExists", eng.report_task_succeeded(ghost, {}))
        assert err.status == 404
        no_flow = mint_token(b"s" * 32, "nope", "run1", "uid", 3)
        await refused("ExecutionNotExists", eng.report_task_failed(no_flow, "E"))


@engine_test
async def test_forged_tokens_cannot_tell_existing_executions_from_missing_ones():
    """The MAC is checked before any lookup; legacy tokens get one answer for both."""
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, token_secret=b"s" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        for name in ("run1", "ghost"):
            forged = mint_token(b"wrong" * 8, "f", name, uid, request.task_id)
            err = await refused("TaskTokenInvalid", eng.report_task_succeeded(forged, {}))
            assert err.status == 403
        # A token of the old layout (the uid-bound MAC alone) still completes its task ...
        prefix = f"v1#f#run1#{request.task_id}#"
        legacy_mac = hmac.new(b"s" * 32, (prefix + uid).encode(), hashlib.sha1).digest()
        legacy = retoken(prefix + base64.b64encode(legacy_mac).decode())
        # ... and for a missing execution answers as a wrong MAC does.
        ghost_mac = hmac.new(b"s" * 32, b"v1#f#ghost#3#uid", hashlib.sha1).digest()
        ghost = retoken("v1#f#ghost#3#" + base64.b64encode(ghost_mac).decode())
        await refused("TaskTokenInvalid", eng.report_task_succeeded(ghost, {}))
        await eng.report_task_succeeded(legacy, {"ok": 1})
        assert (await finished(eng, "f", "run1")).status == "Succeeded"


@engine_test
async def test_reported_error_names_reach_retry_and_catch():
    flow = fdl(f"""
    - type: task
      name: work
      resourceArn: {QUEUE}
      pattern: waitForCallback
      retry:
        - errors: [Busy]
          intervalSeconds: 1
          maxAttempts: 1
      errorMappings:
        - target: why
          source: $local.cause
        - target: what
          source: $local.error
      catch:
        - errors: [Broken]
          goto: recover
    - type: pass
      name: normal
      end: true
    - type: pass
      name: recover
      outputMappings:
        - target: recovered
          source: true
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        first = await worker.take(1)
        await eng.report_task_failed(first.token, "Busy", "try later")
        second = await worker.take(2, timeout=2.5)
        assert second.attempt == 1 and second.token != first.token
        assert worker.times[1] - worker.times[0] >= 0.9
        await eng.report_task_failed(second.token, "Broken", "disk on fire")
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded"
        assert info.output == {"why": "disk on fire", "what": "Broken", "recovered": True}
        steps = [e.step_name for e in await history(eng, "f", "run1") if e.type == "StepEntered"]
        assert steps == ["work", "recover"]


# ---------------------------------------------------------------------------------------------
# requestResponse tasks and integrations


def action_flow(action: str = "demo:Work", extra: str = "") -> str:
    """A flow of one requestResponse task step; ``extra`` adds attributes to the step."""
    step = f"- type: task\n  name: call\n  action: {action}\n"
    return fdl(step + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  "))


@engine_test
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


@engine_test
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


@engine_test
async def test_an_integration_that_raises_fails_the_task_with_runtime_error():
    async def work(request: TaskRequest) -> Succeeded:
        raise ValueError("the database is gone")

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        assert "the database is gone" in info.cause


@engine_test
async def test_a_result_that_is_not_an_object_is_invalid_local():
    async def work(request: TaskRequest) -> Succeeded:
        return Succeeded([1, 2])

    async with make_engine({"demo:Work": work}) as eng:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error) == ("Failed", "FnF.InvalidLocal")


@engine_test
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


@engine_test
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


@engine_test
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


@engine_test
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


@engine_test
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


@engine_test
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


# ---------------------------------------------------------------------------------------------
# Wait steps


@engine_test
async def test_short_waits_finish():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.2
    - type: wait
      name: nap2
      duration: $.sleep
    - type: wait
      name: past
      timestamp: "2001-01-01T00:00:00Z"
    - type: pass
      name: after
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        t0 = time.monotonic()
        started = await eng.start_execution("w", {"sleep": 0.2}, name="r")
        assert started.status == "Running"
        info = await finished(eng, "w", "r", seconds=3)
        elapsed = time.monotonic() - t0
        assert info.status == "Succeeded" and info.output == {}
        assert 0.4 <= elapsed < 1.5
        entered = [e.step_name for e in await history(eng, "w", "r") if e.type == "StepEntered"]
        assert entered == ["nap", "nap2", "past", "after"]


@engine_test
async def test_a_wait_with_a_bad_duration_fails_with_runtime_error():
    flow = fdl("""
    - type: wait
      name: nap
      duration: $.sleep
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        info = await eng.start_execution("w", {"sleep": "soon"}, name="r")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")


# ---------------------------------------------------------------------------------------------
# The seed scenario


@engine_test
async def test_seed_three_tasks_end_to_end():
    worker = Worker()
    async with make_engine({"acs:mns:::/queues/fnf-demo/messages": worker.queue}) as eng:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        extract = await worker.take(1)
        assert extract.step_name == "extract"
        assert extract.input == {"job": "extract", "source": "s3://x", "taskToken": extract.token}
        assert extract.service_params == {"MessageBody": extract.input, "Priority": 8}
        assert extract.timeout_seconds == 300 and extract.pattern == "waitForCallback"
        await eng.report_task_succeeded(extract.token, {"rows": [1, 2]})
        transform = await worker.take(2)
        assert transform.step_name == "transform"
        assert transform.input == {"job": "transform", "rows": [1, 2], "taskToken": transform.token}
        await eng.report_task_succeeded(transform.token, {"rows": [1, 2, 3]})
        load = await worker.take(3)
        assert load.step_name == "load" and load.input["rows"] == [1, 2, 3]
        await eng.report_task_succeeded(load.token, {"count": 3})
        info = await finished(eng, "seed", "run1")
        assert info.status == "Succeeded"
        assert info.output == {"rows": [1, 2, 3], "loaded": 3}
        assert len({extract.token, transform.token, load.token}) == 3
        assert len(worker.requests) == 3


# ---------------------------------------------------------------------------------------------
# Durability


def sqlite_url(tmp_path: Any) -> str:
    return "sqlite:///" + str(tmp_path / "relayflow.db")


@engine_test
async def test_restart_keeps_a_pending_callback(tmp_path):
    url = sqlite_url(tmp_path)
    first = Worker()
    eng = make_engine({"acs:mns:::/queues/fnf-demo/messages": first.queue}, url=url)
    await eng.start()
    try:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        extract = await first.take(1)
        await until(lambda: _has(eng, "seed", "run1", "TaskSubmitted"), what="TaskSubmitted")
    finally:
        await eng.close()

    second = Worker()
    async with make_engine({"acs:mns:::/queues/fnf-demo/messages": second.queue}, url=url) as eng:
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


@engine_test
async def test_a_second_engine_on_the_same_file_is_refused(tmp_path):
    url = sqlite_url(tmp_path)
    async with make_engine(url=url) as eng:
        await eng.create_flow("p", PASS)
        other = make_engine(url=url)
        with pytest.raises(StoreError, match="another relayflow engine"):
            await other.start()
        other.store.close()
        assert (await eng.describe_flow("p")).version == 1
    async with make_engine(url=url) as again:
        assert (await again.describe_flow("p")).name == "p"


@engine_test
async def test_restart_redispatches_outbox_rows_left_undone(tmp_path):
    url = sqlite_url(tmp_path)
    blocked: list[TaskRequest] = []

    async def hang(request: TaskRequest) -> Succeeded:
        blocked.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    eng = make_engine({"demo:Work": hang}, url=url)
    await eng.start()
    try:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {"n": 1}, name="run1")
        await until(lambda: blocked, what="the first dispatch")
    finally:
        await eng.close(grace_seconds=0)

    served: list[TaskRequest] = []

    async def work(request: TaskRequest) -> Succeeded:
        served.append(request)
        return Succeeded({"served": True})

    async with make_engine({"demo:Work": work}, url=url) as eng:
        info = await finished(eng, "f", "run1", seconds=3)
        assert info.status == "Succeeded" and info.output == {"served": True}
        assert served[0].input == {"n": 1}
        assert len(served) == 1
        assert served[0].token == blocked[0].token
        assert served[0].task_id == blocked[0].task_id
        assert (await types_of(eng, "f", "run1")).count("TaskScheduled") == 1


@engine_test
async def test_timers_survive_a_restart(tmp_path):
    url = sqlite_url(tmp_path)
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.5
    - type: pass
      name: after
    """)
    async with make_engine(url=url) as eng:
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="r")
        await asyncio.sleep(0.1)  # see test_close_right_after_a_commit_does_not_hang
    async with make_engine(url=url) as eng:
        assert (await eng.describe_execution("w", "r")).status == "Running"
        info = await finished(eng, "w", "r", seconds=3)
        assert info.status == "Succeeded"
        entered = [e.step_name for e in await history(eng, "w", "r") if e.type == "StepEntered"]
        assert entered == ["nap", "after"]


@engine_test
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


@engine_test
async def test_outcomes_that_arrive_within_the_close_grace_are_kept(tmp_path):
    url = sqlite_url(tmp_path)
    calls: list[float] = []

    async def slow(request: TaskRequest) -> Succeeded:
        calls.append(time.monotonic())
        await asyncio.sleep(0.3)
        return Succeeded({"slow": True})

    eng = make_engine({"demo:Work": slow}, url=url)
    await eng.start()
    try:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="run1")
        await until(lambda: calls, what="the dispatch")
    finally:
        t0 = time.monotonic()
        await eng.close(grace_seconds=3)
        assert time.monotonic() - t0 < 2.0

    async with make_engine({"demo:Work": slow}, url=url) as eng:
        info = await eng.describe_execution("f", "run1")
        assert info.status == "Succeeded" and info.output == {"slow": True}
        await asyncio.sleep(0.3)
        assert len(calls) == 1, "the task was invoked again after a clean close"


# --- rolled-back transitions ------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_rolled_back_transition_leaves_no_trace(store, tmp_path):
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/store.db"
    asyncio.run(asyncio.wait_for(_rolled_back_stop(url), TEST_TIMEOUT))


async def _rolled_back_stop(url: str) -> None:
    from relayflow.engine.model import TaskSubmitted

    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, url=url) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="e")
        request = await worker.take()

        def record_then_refuse(tx: Any, ctx: Any) -> None:
            row = tx.get_execution("f", "e")
            eng.apply(tx, ctx, row, TaskSubmitted(request.task_id, {"Rolled": "back"}))
            raise EngineError("Refused", "the transaction's changes are undone")

        await refused("Refused", eng.submit(record_then_refuse))
        # The event was rolled back, in the store and so in the state the next transition
        # starts from: event ids stay contiguous and the undone event is nowhere.
        await eng.report_task_succeeded(request.token, {"ok": True})
        done = await eng.describe_execution("f", "e")
        assert (done.status, done.output) == ("Succeeded", {"ok": True})
        events = (await eng.get_execution_history("f", "e")).events
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert all("Rolled" not in str(e.detail) for e in events)


@engine_test
async def test_a_long_poll_wakes_for_its_own_execution_only_and_leaves_nothing_behind():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="a")
        await eng.start_execution("f", {}, name="b")
        first, second = await worker.take(1), await worker.take(2)
        tokens = {first.execution_name: first.token, second.execution_name: second.token}
        polls = {n: asyncio.create_task(eng.describe_execution("f", n, 30)) for n in "ab"}
        await until(lambda: len(eng.end_waiters._waiters) == 2, what="both long polls to wait")
        await eng.report_task_succeeded(tokens["b"], {"n": "b"})
        assert (await polls["b"]).output == {"n": "b"}
        assert not polls["a"].done() and set(eng.end_waiters._waiters) == {("f", "a")}
        await eng.report_task_succeeded(tokens["a"], {"n": "a"})
        assert (await polls["a"]).output == {"n": "a"}
        assert eng.end_waiters._waiters == {}
