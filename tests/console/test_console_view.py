"""The console's execution view, read from real engines (SQLite, and PostgreSQL for the main run).

Flows retry, catch, fan out in parallel and foreach steps (with a step name repeated across
branches), wait for a callback and fail inside a branch; the view must give each node its state
and the timeline its bars.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from relayflow.console import view as view_module
from relayflow.console.graph import flow_graph
from relayflow.console.view import MAX_VALUE_CHARS, execution_view
from relayflow.engine import Failed, Succeeded, TaskRequest
from relayflow.fdl import load_flow
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import sqlite_or_postgres

MIXED = fdl("""
- type: task
  name: flaky
  action: demo:Flaky
  retry:
    - errors: [Oops]
      intervalSeconds: 1
      maxAttempts: 2
- type: task
  name: broken
  action: demo:Broken
  catch:
    - errors: [FnF.ALL]
      goto: recover
- type: pass
  name: skipped
- type: pass
  name: recover
- type: parallel
  name: fan
  branches:
    - steps:
        - type: pass
          name: first
        - type: task
          name: work
          action: demo:Work
    - steps:
        - type: task
          name: work
          action: demo:Work
- type: foreach
  name: each
  iterationMapping:
    collection: $.items
    item: it
  steps:
    - type: task
      name: item
      action: demo:Work
- type: task
  name: hold
  action: demo:Hold
  pattern: waitForCallback
  inputMappings:
    - target: taskToken
      source: $context.task.token
""")

BRANCH_FAILS = fdl("""
- type: parallel
  name: fan
  branches:
    - steps:
        - type: task
          name: hold
          action: demo:Hold
          pattern: waitForCallback
    - steps:
        - type: wait
          name: pause
          duration: 0
        - type: fail
          name: boom
          error: Boom
          cause: on purpose
""")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from sqlite_or_postgres(request, "consoleview_")


def handlers(seen: dict[str, int]) -> dict[str, Any]:
    async def flaky(request: TaskRequest) -> Any:
        seen["flaky"] = seen.get("flaky", 0) + 1
        return Failed("Oops", "first try") if seen["flaky"] == 1 else Succeeded({"ok": 1})

    async def broken(request: TaskRequest) -> Any:
        return Failed("Broken", "always")

    async def work(request: TaskRequest) -> Any:
        return Succeeded({"big": "x" * (MAX_VALUE_CHARS + 10)} if "it" in request.input else {})

    async def hold(request: TaskRequest) -> Any:
        from relayflow.engine import Submitted

        return Submitted({})

    return {"demo:Flaky": flaky, "demo:Broken": broken, "demo:Work": work, "demo:Hold": hold}


def nodes_of(definition: str) -> set[str]:
    return {n["id"] for n in flow_graph(load_flow(definition))["nodes"]}


def states(view: dict[str, Any]) -> dict[str, str]:
    return {node: step["state"] for node, step in view["steps"].items()}


@bounded(seconds=40)
async def test_retries_catches_lanes_and_a_callback(store_url):
    flow = "mixed_" + uuid.uuid4().hex[:8]
    async with make_engine(handlers({}), store=store_url) as engine:
        await engine.create_flow(flow, MIXED)
        await engine.start_execution(flow, {"items": [1, 2, 3]}, name="e1")

        async def parked() -> bool:
            info = await engine.describe_execution(flow, "e1", include_waiting=True)
            return any(w.step_name == "hold" for w in info.waiting or ())

        await eventually(parked, 10, "the callback task waits")
        view = await execution_view(engine, flow, "e1")
        assert view["status"] == "Running" and view["flow"] == flow
        assert set(view["steps"]) <= nodes_of(MIXED), "states name graph nodes"
        assert states(view) == {
            "flaky": "retried",
            "broken": "caught",
            "recover": "succeeded",
            "fan": "succeeded",
            "fan/branches.0/first": "succeeded",
            "fan/branches.0/work": "succeeded",
            "fan/branches.1/work": "succeeded",
            "each": "succeeded",
            "each/item": "succeeded",
            "hold": "waiting",
        }
        flaky = view["steps"]["flaky"]
        assert (flaky["attempts"], flaky["retries"], flaky["error"]) == (2, 1, "Oops")
        assert view["steps"]["broken"]["error"] == "Broken"
        item = view["steps"]["each/item"]
        assert (item["runs"], item["outcomes"]) == (3, {"succeeded": 3})
        # An output too long to send whole comes cut, and says so.
        assert item["truncated"] is True and isinstance(item["output"], str)
        assert len(item["output"]) <= MAX_VALUE_CHARS
        timeline = view["timeline"]
        retries = [i for i in timeline if i["kind"] == "retry"]
        assert [(i["node"], i["attempt"], i["state"]) for i in retries] == [("flaky", 2, "retried")]
        tasks = [(i["node"], i["attempt"], i["state"]) for i in timeline if i["kind"] == "task"]
        assert ("flaky", 1, "failed") in tasks and ("flaky", 2, "succeeded") in tasks
        assert sorted(i["indices"] for i in timeline if i["node"] == "each/item") == [
            [0],
            [0],
            [1],
            [1],
            [2],
            [2],
        ]
        hold = [i for i in timeline if i["node"] == "hold"]
        assert {(i["kind"], i["end"], i["state"]) for i in hold} == {
            ("step", None, "waiting"),
            ("task", None, "waiting"),
        }
        (waiting,) = view["waiting"]
        assert (waiting["node"], waiting["kind"], waiting["attempt"]) == ("hold", "task", 1)
        assert waiting["since"] and waiting["taskToken"]
        assert view["events"]["truncated"] is False and view["events"]["unmatched"] == 0

        await engine.report_task_succeeded(waiting["taskToken"], {"done": True})
        await engine.describe_execution(flow, "e1", wait_seconds=5)
        view = await execution_view(engine, flow, "e1")
        assert view["status"] == "Succeeded" and view["waiting"] == []
        assert view["steps"]["hold"]["state"] == "succeeded"
        assert view["steps"]["hold"]["output"] == {"done": True}
        assert all(i["end"] is not None for i in view["timeline"])
        assert "skipped" not in view["steps"], "a step jumped over has not run"


@bounded(seconds=20)
async def test_a_failing_branch_cancels_its_sibling_and_a_redrive_goes_on():
    async with make_engine(handlers({})) as engine:
        await engine.create_flow("f", BRANCH_FAILS)
        await engine.start_execution("f", {}, name="e")
        info = await engine.describe_execution("f", "e", wait_seconds=5)
        assert info.status == "Failed"
        view = await execution_view(engine, "f", "e")
        assert states(view) == {
            "fan": "failed",
            "fan/branches.0/hold": "cancelled",
            "fan/branches.1/pause": "succeeded",
            "fan/branches.1/boom": "failed",
        }
        assert view["steps"]["fan"]["error"] == "Boom"
        assert view["steps"]["fan/branches.1/boom"]["cause"] == "on purpose"
        hold = [i for i in view["timeline"] if i["node"] == "fan/branches.0/hold"]
        assert all(i["state"] == "cancelled" and i["end"] for i in hold)

        await engine.redrive_execution("f", "e")
        await engine.describe_execution("f", "e", wait_seconds=5)
        view = await execution_view(engine, "f", "e")
        assert view["status"] == "Failed"
        assert all(i["end"] for i in view["timeline"]), "an ended execution has no open bars"
        assert view["steps"]["fan/branches.0/hold"]["outcomes"] == {"cancelled": 2}
        # The failed step runs again (and fails again); the parallel holds its lanes meanwhile.
        boom = view["steps"]["fan/branches.1/boom"]
        assert boom["runs"] == 2 and view["events"]["unmatched"] == 0
        assert view["redriveCount"] == 1


@bounded(seconds=20)
async def test_a_stopped_execution_and_a_wait():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 3600
    """)
    async with make_engine() as engine:
        await engine.create_flow("w", flow)
        await engine.start_execution("w", {"payload": "p"}, name="e")
        view = await execution_view(engine, "w", "e")
        assert states(view) == {"nap": "waiting"}
        assert [(w["node"], w["kind"]) for w in view["waiting"]] == [("nap", "wait")]
        kinds = {(i["kind"], i["state"], i["end"]) for i in view["timeline"]}
        assert kinds == {("step", "waiting", None), ("wait", "waiting", None)}
        await engine.stop_execution("w", "e", error="Halt", cause="by hand")
        view = await execution_view(engine, "w", "e")
        assert view["status"] == "Stopped" and view["error"] == "Halt"
        assert states(view) == {"nap": "cancelled"} and view["waiting"] == []
        assert view["input"] == {"payload": "p"}


@bounded(seconds=20)
async def test_reading_stops_at_the_event_limit_and_says_so(monkeypatch):
    async with make_engine(handlers({})) as engine:
        await engine.create_flow("f", BRANCH_FAILS)
        await engine.start_execution("f", {}, name="e")
        await engine.describe_execution("f", "e", wait_seconds=5)
        monkeypatch.setattr(view_module, "MAX_EVENTS", 5)
        view = await execution_view(engine, "f", "e")
        assert view["events"] == {
            "read": 5,
            "limit": 5,
            "truncated": True,
            "lastEventId": 5,
            "unmatched": 0,
        }


@bounded(seconds=10)
async def test_a_missing_execution_is_refused_in_a_sentence():
    from relayflow.errors import EngineError

    async with make_engine() as engine:
        await engine.create_flow("f", BRANCH_FAILS)
        with pytest.raises(EngineError) as caught:
            await execution_view(engine, "f", "nope")
        assert caught.value.code == "ExecutionNotExists"


@bounded(seconds=20)
async def test_a_choice_branch_is_told_by_its_condition_when_names_repeat():
    flow = fdl("""
    - type: choice
      name: c
      choices:
        - condition: $.big == true
          steps:
            - type: pass
              name: x
      default:
        steps:
          - type: pass
            name: x
    - type: choice
      name: again
      choices:
        - condition: $.big == true
          steps:
            - type: pass
              name: x
      default:
        steps:
          - type: pass
            name: x
    """)
    async with make_engine() as engine:
        await engine.create_flow("c", flow)
        await engine.start_execution("c", {"big": False}, name="small")
        await engine.describe_execution("c", "small", wait_seconds=5)
        view = await execution_view(engine, "c", "small")
        assert states(view) == {
            "c": "succeeded",
            "c/default/x": "succeeded",
            "again": "succeeded",
            "again/default/x": "succeeded",
        }


@bounded(seconds=20)
async def test_parent_and_children_are_linked():
    parent = fdl("""
    - type: task
      name: audit
      resourceArn: acs:fnf:::flow/child
      pattern: sync
      serviceParams:
        ExecutionName: kid
    """)
    async with make_engine() as engine:
        await engine.create_flow("child", fdl("- {type: pass, name: p}"))
        await engine.create_flow("parent", parent)
        await engine.start_execution("parent", {}, name="mum")
        assert (await engine.describe_execution("parent", "mum", wait_seconds=5)).succeeded
        mum = await execution_view(engine, "parent", "mum")
        assert mum["children"] == [{"flow": "child", "execution": "kid", "status": "Succeeded"}]
        assert mum["parent"] is None and mum["steps"]["audit"]["state"] == "succeeded"
        kid = await execution_view(engine, "child", "kid")
        assert kid["parent"] == {"flow": "parent", "execution": "mum"}


@bounded(seconds=20)
async def test_a_cut_input_leaves_the_task_token_out():
    flow = fdl("""
    - type: task
      name: hold
      action: demo:Hold
      pattern: waitForCallback
      inputMappings:
        - target: taskToken
          source: $context.task.token
        - target: padding
          source: $input.padding
    """)
    async with make_engine(handlers({})) as engine:
        await engine.create_flow("t", flow)
        await engine.start_execution("t", {"padding": "p" * MAX_VALUE_CHARS}, name="e")

        async def parked() -> bool:
            return bool((await engine.describe_execution("t", "e", include_waiting=True)).waiting)

        await eventually(parked, 5, "the task waits")
        view = await execution_view(engine, "t", "e")
        step = view["steps"]["hold"]
        assert step["truncated"] is True and isinstance(step["input"], str)
        assert "taskToken" not in step["input"] and "padding" in step["input"]
        (waiting,) = view["waiting"]
        assert waiting["taskToken"]  # for roles that may report; the console hides it otherwise
        assert view["truncated"] is True and isinstance(view["input"], str)


@bounded(seconds=20)
async def test_the_graph_of_the_definition_an_execution_runs():
    old = fdl("- {type: wait, name: nap, duration: 3600}")
    new = fdl("- {type: pass, name: quick}")
    async with make_engine() as engine:
        await engine.create_flow("u", old)
        await engine.start_execution("u", {}, name="before")
        await engine.update_flow("u", new)
        await engine.start_execution("u", {}, name="after")
        before = await execution_view(engine, "u", "before", with_graph=True)
        after = await execution_view(engine, "u", "after")
        assert "graph" not in after
        assert {n["id"] for n in before["graph"]["nodes"]} == {"~start", "nap", "~end"}
        assert set(before["steps"]) == {"nap"} and set(after["steps"]) == {"quick"}
        assert before["definitionHash"] != after["definitionHash"]


@bounded(seconds=20)
async def test_a_parallel_retried_shows_the_pause_and_its_steps_latest_runs():
    flow = fdl("""
    - type: parallel
      name: fan
      retry:
        - errors: [Oops]
          intervalSeconds: 1
          maxAttempts: 1
      branches:
        - steps:
            - {type: task, name: flaky, action: demo:Flaky}
        - steps:
            - {type: pass, name: calm}
    """)
    async with make_engine(handlers({})) as engine:
        await engine.create_flow("r", flow)
        await engine.start_execution("r", {}, name="e")
        assert (await engine.describe_execution("r", "e", wait_seconds=5)).succeeded
        view = await execution_view(engine, "r", "e")
        fan = view["steps"]["fan"]
        assert (fan["state"], fan["retries"]) == ("retried", 1)
        flaky = view["steps"]["fan/branches.0/flaky"]
        # The run that failed was superseded by the retry: the step shows how it ends.
        assert flaky["state"] == "succeeded"
        assert flaky["outcomes"] == {"failed": 1, "succeeded": 1}
        assert view["steps"]["fan/branches.1/calm"]["runs"] == 2
        retries = [i for i in view["timeline"] if i["kind"] == "retry"]
        assert [(i["node"], i["attempt"], i["state"]) for i in retries] == [("fan", 2, "retried")]
        assert retries[0]["start"] <= retries[0]["end"]
