"""The interpreter on task steps: invocations, reports and their patterns."""

from __future__ import annotations

import pytest

from relayflow.engine.model import CloseTask, InvokeTask, TaskSubmitted, TaskSucceeded
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, QUEUE, Driver, ignored, mint


@pytest.mark.parametrize("pattern", ["requestResponse", "sync", "waitForCallback"])
def test_task_invocation_carries_pattern_mapped_input_params_and_token(pattern):
    d = Driver(
        fdl(f"""
            - type: pass
              name: prep
              outputMappings:
                - target: job
                  source: {{"id": "j-1", "size": 3}}
            - type: task
              name: send
              resourceArn: {QUEUE}
              pattern: {pattern}
              timeoutSeconds: 90
              inputMappings:
                - target: job
                  source: $local.job
                - target: taskToken
                  source: $context.task.token
              serviceParams:
                MessageBody: $
                Priority: 1
                JobId: $.job.id
                Nested:
                  size: $.job.size
        """)
    )
    d.start({"ignored": True})
    scheduled = d.one("TaskScheduled", "send")
    invoke = d.task("send")
    token = mint(scheduled.event_id)
    mapped = {"job": {"id": "j-1", "size": 3}, "taskToken": token}
    params = {"MessageBody": mapped, "Priority": 1, "JobId": "j-1", "Nested": {"size": 3}}
    assert invoke == InvokeTask(
        scheduled.event_id, token, "send", QUEUE, pattern, mapped, params, 90, 0
    )
    assert d.entered("send") == [mapped]
    assert scheduled.detail == {
        "resource": QUEUE,
        "pattern": pattern,
        "input": mapped,
        "attempt": 0,
        "serviceParams": params,
    }
    started = d.one("TaskStarted", "send")
    assert started.schedule_event_id == scheduled.event_id
    d.complete("send", {"done": 1})
    d.assert_succeeded({"job": {"id": "j-1", "size": 3}, "done": 1})


def test_task_with_an_action_is_invoked_with_the_action_as_resource():
    d = Driver(
        fdl("""
            - type: task
              name: startChild
              action: fnf:StartExecution
              serviceParams:
                FlowName: child
                Input: $
        """)
    )
    d.start({"a": 1})
    invoke = d.task("startChild")
    assert (invoke.resource, invoke.service_params) == (
        "fnf:StartExecution",
        {"FlowName": "child", "Input": {"a": 1}},
    )


def test_task_submitted_records_an_event_and_changes_nothing_else():
    d = Driver(
        fdl(f"""
            - type: task
              name: send
              resourceArn: {QUEUE}
              pattern: waitForCallback
        """)
    )
    d.start()
    invoke = d.task("send")
    before = d.state
    d.now += 1
    t = d.apply(TaskSubmitted(invoke.task_id, {"messageId": "m-1"}))
    assert [(e.type, e.step_name, e.schedule_event_id, e.detail) for e in t.events] == [
        ("TaskSubmitted", "send", invoke.task_id, {"messageId": "m-1"})
    ]
    assert t.effects == []
    after = d.state
    after.next_event = before.next_event
    assert after == before
    d.complete("send", {"ok": True})
    d.assert_succeeded({"ok": True})
    ignored(d, TaskSubmitted(invoke.task_id, {}))


@pytest.mark.parametrize("result", [[1, 2], "text", 3, None, True])
def test_task_result_that_is_not_an_object_is_invalid_local(result):
    d = Driver(
        fdl(f"""
            - type: task
              name: call
              resourceArn: {FN}
        """)
    )
    d.start()
    task = d.task("call")
    t = d.apply(TaskSucceeded(task.task_id, result))
    assert d.find("TaskSucceeded") == []
    failed = d.one("TaskFailed", "call")
    assert failed.detail["error"] == "FnF.InvalidLocal"
    assert failed.schedule_event_id == task.task_id
    assert CloseTask(task.task_id, "completed", "failed") in t.effects
    d.assert_failed("FnF.InvalidLocal")


def test_invalid_local_can_be_caught():
    d = Driver(
        fdl(f"""
            - type: task
              name: call
              resourceArn: {FN}
              catch:
                - errors: [FnF.InvalidLocal]
                  goto: fallback
            - type: pass
              name: ok
              end: true
            - type: pass
              name: fallback
              outputMappings:
                - target: fallback
                  source: true
        """)
    )
    d.start()
    d.complete("call", ["not", "an", "object"])
    d.assert_succeeded({"fallback": True})
