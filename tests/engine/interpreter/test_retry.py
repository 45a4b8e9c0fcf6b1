"""The interpreter on task retries."""

from __future__ import annotations

import textwrap

import pytest

from relayflow.engine.model import CancelTimer, CloseTask, TaskFailed, TaskSucceeded
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, QUEUE, T0, Driver, ignored, mint


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        ("intervalSeconds: 10\n  maxIntervalSeconds: 30\n  maxAttempts: 4", [10, 20, 30, 30]),
        ("intervalSeconds: 10", [10, 20, 40]),
        ("intervalSeconds: 2\n  multiplier: 1.5\n  maxAttempts: 3", [2, 3, 4.5]),
        ("intervalSeconds: 5\n  multiplier: 1\n  maxAttempts: 2", [5, 5]),
        ("maxAttempts: 4", [1, 2, 4, 8]),
        ("maxAttempts: 0", []),
    ],
)
def test_retry_back_off_and_attempt_count(policy, delays):
    policy_yaml = textwrap.indent(f"- errors: [Throttled]\n  {policy}", " " * 4)
    d = Driver(fdl(f"- type: task\n  name: call\n  resourceArn: {FN}\n  retry:\n{policy_yaml}"))
    d.start()
    for attempt, delay in enumerate(delays):
        invoke = d.task("call")
        assert invoke.attempt == attempt
        d.now += 3
        failed_at = d.now
        t = d.fail("call", "Throttled", f"attempt {attempt}")
        assert d.state.status == "Running"
        timer = d.timer("retry")
        assert timer.fire_at == failed_at + delay
        assert [e.type for e in t.events] == ["TaskFailed"]
        assert d.find("StepFailed") == []
        assert d.open_tasks() == []
        d.fire("retry")
    d.now += 3
    d.fail("call", "Throttled", "last")
    assert len(d.invoked) == len(delays) + 1
    assert [i.attempt for i in d.invoked.values()] == list(range(len(delays) + 1))
    assert [e.detail["attempt"] for e in d.find("TaskScheduled")] == list(range(len(delays) + 1))
    assert len(d.find("StepEntered", "call")) == 1
    d.assert_failed("Throttled", "last")


RETRY_ORDER_FLOW = fdl(f"""
    - type: task
      name: call
      resourceArn: {FN}
      retry:
        - errors: [Fatal]
          maxAttempts: 0
        - errors: [Throttled, Busy]
          intervalSeconds: 5
          maxAttempts: 1
        - errors: [FnF.ALL]
          intervalSeconds: 7
          maxAttempts: 1
""")


def test_retry_policy_with_no_attempts_shadows_later_policies():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "Fatal")
    assert d.started == {}
    d.assert_failed("Fatal")


def test_retry_first_matching_policy_decides_even_when_exhausted():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "Throttled")
    assert d.timer("retry").fire_at == T0 + 5
    d.fire("retry")
    # the policy for Busy is the same one, and it has used its single retry; FnF.ALL is not asked
    d.fail("call", "Busy")
    assert len(d.invoked) == 2
    d.assert_failed("Busy")


def test_retry_fnf_all_matches_any_other_error():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "SomethingElse")
    assert d.timer("retry").fire_at == T0 + 7
    d.fire("retry")
    d.complete("call", {"ok": 1})
    d.assert_succeeded({"ok": 1})


def test_retried_callback_task_gets_a_new_task_id_and_token():
    d = Driver(
        fdl(f"""
            - type: task
              name: approve
              resourceArn: {QUEUE}
              pattern: waitForCallback
              timeoutSeconds: 60
              inputMappings:
                - target: taskToken
                  source: $context.task.token
              retry:
                - errors: [FnF.TaskTimeout, Lost]
                  intervalSeconds: 10
                  maxAttempts: 2
        """)
    )
    d.start()
    first = d.task("approve")
    assert first.input == {"taskToken": first.token}
    assert d.timer("timeout").fire_at == T0 + 60

    t = d.fire("timeout")
    assert [(e.type, e.schedule_event_id) for e in t.events] == [("TaskTimedOut", first.task_id)]
    assert t.events[0].detail["error"] == "FnF.TaskTimeout"
    assert CloseTask(first.task_id, "expired", "timed out") in t.effects
    assert d.timer("retry").fire_at == T0 + 70

    d.fire("retry")
    second = d.task("approve")
    assert second.task_id != first.task_id and second.token != first.token
    assert second.token == mint(second.task_id)
    assert second.input == {"taskToken": second.token}
    assert second.attempt == 1
    assert d.timer("timeout").fire_at == T0 + 130
    ignored(d, TaskSucceeded(first.task_id, {"late": True}))
    ignored(d, TaskFailed(first.task_id, "Lost"))

    d.now = T0 + 80
    t = d.fail("approve", "Lost", "message lost")
    second_timeout = [e for e in t.effects if isinstance(e, CancelTimer)]
    assert CloseTask(second.task_id, "completed", "failed") in t.effects
    assert len(second_timeout) == 1
    assert d.timer("retry").fire_at == T0 + 80 + 20
    d.fire("retry")
    third = d.task("approve")
    assert len({first.task_id, second.task_id, third.task_id}) == 3
    assert third.input == {"taskToken": third.token}
    d.complete("approve", {"approved": True})
    d.assert_succeeded({"approved": True})


def test_retry_comes_before_catch():
    d = Driver(
        fdl(f"""
            - type: task
              name: charge
              resourceArn: {FN}
              retry:
                - errors: [FnF.ALL]
                  intervalSeconds: 3
                  maxAttempts: 1
              catch:
                - errors: [FnF.ALL]
                  goto: recover
            - type: pass
              name: charged
              end: true
            - type: pass
              name: recover
              outputMappings:
                - target: recovered
                  source: true
        """)
    )
    d.start()
    d.fail("charge", "Declined")
    assert d.find("StepFailed") == [] and "recover" not in d.steps_entered()
    d.fire("retry")
    d.fail("charge", "Declined")
    assert d.steps_entered() == ["charge", "recover"]
    d.assert_succeeded({"recovered": True})


def test_retry_count_starts_again_when_a_loop_reenters_the_step():
    d = Driver(
        fdl(f"""
            - type: task
              name: call
              resourceArn: {FN}
              retry:
                - errors: [Flaky]
                  intervalSeconds: 1
                  maxAttempts: 1
            - type: choice
              name: loop
              choices:
                - condition: $.again == true
                  goto: call
        """)
    )
    d.start()
    d.fail("call", "Flaky")
    d.fire("retry")
    d.complete("call", {"again": True})
    d.fail("call", "Flaky")
    assert d.state.status == "Running"
    d.fire("retry")
    d.complete("call", {"again": False})
    d.assert_succeeded({"again": False})
