"""Child flows: a parent's task starts an execution of another flow (relayflow.engine.childflows).

Parent/child pairs in the three patterns, errors crossing from child to parent (retry and catch
by the child's error name), name collisions (`fnf.ExecutionAlreadyExists`), StartExecution's
CallbackFnFTaskToken, and a parent waiting on its child across an engine restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine, FunctionIntegration
from relayflow.engine.childflows import ChildFlowIntegration
from relayflow.store import open_store
from tests.engine.helpers import QUEUE, TEST_TIMEOUT, Worker, fdl, refused

CHILD = fdl("""
- type: task
  name: work
  resourceArn: acs:mns:::/queues/q/messages
  pattern: waitForCallback
  outputMappings:
    - target: doubled
      source: $local.doubled
""")

QUICK_CHILD = fdl("""
- type: pass
  name: answer
  outputMappings:
    - target: echoed
      source: $input.value
""")

FAILING_CHILD = fdl("""
- type: fail
  name: nope
  error: AuditErrorNeedsRetry
  cause: the audit needs another try
""")


def parent(task: str) -> str:
    """A parent flow whose first step is ``task`` (YAML), then a pass step that ends it."""
    return fdl(task + "\n- type: pass\n  name: after\n")


def make_engine(worker: Worker | None = None, url: str = "memory://") -> Engine:
    handlers: dict[str, Any] = {QUEUE: (worker or Worker()).queue}
    return Engine(open_store(url), integrations=[FunctionIntegration(handlers)], poll_seconds=0.1)


def run(coroutine: Any) -> None:
    asyncio.run(asyncio.wait_for(coroutine, TEST_TIMEOUT))


async def done(eng: Engine, flow: str, name: str, seconds: int = 5) -> Any:
    """The execution once it has ended (a long poll of up to ``seconds``)."""
    info = await eng.describe_execution(flow, name, wait_seconds=seconds)
    assert info.done, f"{flow}/{name} is still {info.status} after {seconds} s"
    return info


def test_the_engine_serves_child_flows_in_every_pattern() -> None:
    integration = ChildFlowIntegration()
    assert integration.claims("acs:fnf:::flow/audit_child")
    assert integration.claims("acs:fnf:cn-hangzhou:123:flow/x")
    assert integration.claims("fnf:StartExecution")
    assert not integration.claims("acs:fc:::services/s/functions/f")
    assert integration.patterns == {"requestResponse", "sync", "waitForCallback"}
    assert isinstance(make_engine().integrations[-1], ChildFlowIntegration)


def test_request_response_returns_once_the_child_has_started() -> None:
    async def main() -> None:
        worker = Worker()
        async with make_engine(worker) as eng:
            await eng.create_flow("child", CHILD)
            await eng.create_flow(
                "parent",
                parent("""
- type: task
  name: start
  resourceArn: acs:fnf:::flow/child
  serviceParams:
    ExecutionName: $.name
    Input: $
  outputMappings:
    - target: child
      source: $local
"""),
            )
            await eng.start_execution("parent", {"name": "kid-1", "n": 2}, "p")
            info = await done(eng, "parent", "p")
            assert info.status == "Succeeded"
            child = info.output["child"]
            assert (child["Name"], child["FlowName"], child["Status"]) == (
                "kid-1",
                "child",
                "Running",
            )
            assert child["StartedTime"].endswith("Z")
            # the child runs on by itself, with the mapped input
            kid = await eng.describe_execution("child", "kid-1")
            assert kid.status == "Running" and kid.input == {"name": "kid-1", "n": 2}
            await worker.take()

    run(main())


@pytest.mark.parametrize("pattern", ["sync", "waitForCallback"])
def test_a_waiting_parent_takes_the_child_output(pattern: str) -> None:
    async def main() -> None:
        worker = Worker()
        async with make_engine(worker) as eng:
            await eng.create_flow("child", CHILD)
            await eng.create_flow(
                "parent",
                parent(f"""
- type: task
  name: start
  action: fnf:StartExecution
  pattern: {pattern}
  inputMappings:
    - target: n
      source: $input.n
  serviceParams:
    FlowName: child
  outputMappings:
    - target: result
      source: $local.doubled
"""),
            )
            await eng.start_execution("parent", {"n": 21}, "p")
            request = await worker.take()
            assert request.input == {"n": 21} and request.flow_name == "child"
            assert (await eng.describe_execution("parent", "p")).status == "Running"
            await eng.report_task_succeeded(request.token, {"doubled": 42})
            info = await done(eng, "parent", "p")
            assert (info.status, info.output) == ("Succeeded", {"result": 42})
            events = (await eng.get_execution_history("parent", "p")).events
            types = [e.type for e in events]
            assert "TaskSubmitted" in types and "TaskSucceeded" in types
            # the child's name was made from the task token: one attempt, one child
            children = (await eng.list_executions("child")).items
            assert len(children) == 1 and children[0].name.startswith("child-")

    run(main())


def test_a_failing_child_reaches_the_parent_retry_and_catch_by_its_error_name() -> None:
    async def main() -> None:
        async with make_engine() as eng:
            await eng.create_flow("audit_child", FAILING_CHILD)
            await eng.create_flow(
                "main",
                fdl("""
- type: task
  name: triggerAudit
  resourceArn: acs:fnf:::flow/audit_child
  pattern: sync
  serviceParams:
    Input: $
  retry:
    - errors: [AuditErrorNeedsRetry]
      intervalSeconds: 1
      maxAttempts: 1
  catch:
    - errors: [AuditErrorNeedsRetry]
      goto: notifyDeveloper
- type: pass
  name: auditPassed
  end: true
- type: pass
  name: notifyDeveloper
"""),
            )
            await eng.start_execution("main", {"auditMessage": "hi"}, "m")
            info = await done(eng, "main", "m", seconds=8)  # after its retry
            assert info.status == "Succeeded"
            events = (await eng.get_execution_history("main", "m")).events
            failed = [e for e in events if e.type == "TaskFailed"]
            assert len(failed) == 2  # the first attempt and its one retry
            assert all(e.detail.get("error") == "AuditErrorNeedsRetry" for e in failed)
            assert [e.step_name for e in events if e.type == "StepEntered"][-1] == (
                "notifyDeveloper"
            )
            children = (await eng.list_executions("audit_child")).items
            assert len(children) == 2 and {c.status for c in children} == {"Failed"}

    run(main())


def test_a_stopped_child_fails_the_parent_task_with_fnf_execution_stopped() -> None:
    async def main() -> None:
        worker = Worker()
        async with make_engine(worker) as eng:
            await eng.create_flow("child", CHILD)
            await eng.create_flow(
                "parent",
                fdl("""
- type: task
  name: start
  resourceArn: acs:fnf:::flow/child
  pattern: sync
  serviceParams:
    ExecutionName: kid
"""),
            )
            await eng.start_execution("parent", {}, "p")
            await worker.take()
            await eng.stop_execution("child", "kid")
            info = await done(eng, "parent", "p")
            assert (info.status, info.error) == ("Failed", "fnf.ExecutionStopped")

    run(main())


def test_a_taken_name_is_fnf_execution_already_exists_and_can_be_caught() -> None:
    async def main() -> None:
        async with make_engine() as eng:
            await eng.create_flow("quick", QUICK_CHILD)
            await eng.create_flow(
                "parent",
                fdl("""
- type: task
  name: start
  action: fnf:StartExecution
  pattern: sync
  serviceParams:
    FlowName: quick
    ExecutionName: once
    Input: $
  catch:
    - errors: [fnf.ExecutionAlreadyExists]
      goto: ignore
- type: pass
  name: ran
  end: true
- type: pass
  name: ignore
"""),
            )
            await eng.start_execution("parent", {"value": 1}, "first")
            first = await done(eng, "parent", "first")
            assert first.status == "Succeeded" and first.output["echoed"] == 1
            await eng.start_execution("parent", {"value": 2}, "second")
            second = await done(eng, "parent", "second")
            assert second.status == "Succeeded"
            events = (await eng.get_execution_history("parent", "second")).events
            failed = [e for e in events if e.type == "TaskFailed"]
            assert failed[0].detail["error"] == "fnf.ExecutionAlreadyExists"
            assert [e.step_name for e in events if e.type == "StepEntered"][-1] == "ignore"

    run(main())


def test_a_missing_child_flow_fails_the_task_with_fnf_flow_not_exists() -> None:
    async def main() -> None:
        async with make_engine() as eng:
            await eng.create_flow(
                "parent", fdl("- type: task\n  name: s\n  resourceArn: acs:fnf:::flow/ghost\n")
            )
            await eng.start_execution("parent", {}, "p")
            info = await done(eng, "parent", "p")
            assert (info.status, info.error) == ("Failed", "fnf.FlowNotExists")
            assert "ghost" in info.cause

    run(main())


def test_start_execution_with_a_callback_token_reports_when_it_ends() -> None:
    async def main() -> None:
        worker = Worker()
        async with make_engine(worker) as eng:
            await eng.create_flow(
                "waits",
                parent(f"""
- type: task
  name: hand-off
  resourceArn: {QUEUE}
  pattern: waitForCallback
"""),
            )
            await eng.create_flow("quick", QUICK_CHILD)
            await eng.start_execution("waits", {}, "w")
            request = await worker.take()
            # whoever got the token starts another flow and hands the token on
            await eng.start_execution("quick", {"value": "v"}, "k", callback_token=request.token)
            info = await done(eng, "waits", "w")
            assert (info.status, info.output) == ("Succeeded", {"echoed": "v"})
            await refused(
                "InvalidArgument",
                eng.start_execution("quick", {}, "bad", callback_token="not-a-token"),
            )

    run(main())


def test_a_parent_waits_for_its_child_across_an_engine_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"

    async def first() -> str:
        worker = Worker()
        async with make_engine(worker, url) as eng:
            await eng.create_flow("child", CHILD)
            await eng.create_flow(
                "parent",
                fdl("""
- type: task
  name: start
  resourceArn: acs:fnf:::flow/child
  pattern: sync
"""),
            )
            await eng.start_execution("parent", {"n": 1}, "p")
            return (await worker.take()).token

    async def second(token: str) -> None:
        async with make_engine(Worker(), url) as eng:
            await eng.report_task_succeeded(token, {"doubled": 2})
            info = await done(eng, "parent", "p")
            assert (info.status, info.output) == ("Succeeded", {"doubled": 2})

    token = asyncio.run(asyncio.wait_for(first(), TEST_TIMEOUT))
    run(second(token))
