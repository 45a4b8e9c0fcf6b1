"""The interpreter on serial step lists: pass, end, goto, succeed and fail."""

from __future__ import annotations

import pytest

from relayflow.engine.model import (
    CancelTimer,
    CloseTask,
    ExecutionEnded,
    InvokeTask,
    TaskSucceeded,
    TimerFired,
)
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, T0, Driver, ignored, types


def test_serial_steps_record_linked_events_and_effects():
    d = Driver(
        fdl(f"""
            - type: task
              name: fetch
              resourceArn: {FN}
            - type: pass
              name: tag
              outputMappings:
                - target: tagged
                  source: $input.price
        """)
    )
    t = d.start({"orderId": "o-1"})
    assert [(e.event_id, e.schedule_event_id, e.type, e.step_name) for e in t.events] == [
        (1, 0, "ExecutionStarted", ""),
        (2, 0, "StepEntered", "fetch"),
        (3, 2, "TaskScheduled", "fetch"),
        (4, 3, "TaskStarted", "fetch"),
    ]
    assert t.events[0].detail == {"input": {"orderId": "o-1"}}
    assert t.events[1].detail == {"input": {"orderId": "o-1"}}
    assert t.events[2].detail == {
        "resource": FN,
        "pattern": "requestResponse",
        "input": {"orderId": "o-1"},
        "attempt": 0,
    }
    assert t.effects == [
        InvokeTask(3, "token-3", "fetch", FN, "requestResponse", {"orderId": "o-1"}, None, None, 0)
    ]
    assert d.state.status == "Running"

    d.now = T0 + 5
    t = d.complete("fetch", {"price": 12})
    assert [(e.event_id, e.schedule_event_id, e.type, e.step_name, e.detail) for e in t.events] == [
        (5, 3, "TaskSucceeded", "fetch", {"output": {"price": 12}}),
        (6, 2, "StepSucceeded", "fetch", {"output": {"price": 12}}),
        (7, 2, "StepExited", "fetch", {}),
        (8, 0, "StepEntered", "tag", {"input": {"orderId": "o-1", "price": 12}}),
        (9, 8, "StepSucceeded", "tag", {"output": {"tagged": 12}}),
        (10, 8, "StepExited", "tag", {}),
        (11, 0, "ExecutionSucceeded", "", {"output": {"price": 12, "tagged": 12}}),
    ]
    assert all(e.time == T0 + 5 for e in t.events)
    assert t.effects == [
        CloseTask(3, "completed", "succeeded"),
        ExecutionEnded("Succeeded", {"price": 12, "tagged": 12}, "", ""),
    ]
    d.assert_succeeded({"price": 12, "tagged": 12})


def test_a_flow_of_pass_steps_finishes_in_the_start_transition():
    d = Driver(
        fdl("""
            - type: pass
              name: a
              outputMappings:
                - target: a
                  source: 1
            - type: pass
              name: b
              outputMappings:
                - target: b
                  source: $input.a
        """)
    )
    t = d.start({"a": 0, "keep": True})
    assert types(t)[0] == "ExecutionStarted" and types(t)[-1] == "ExecutionSucceeded"
    assert d.entered("b") == [{"a": 1, "keep": True}]
    d.assert_succeeded({"a": 1, "b": 1})


def test_end_true_finishes_the_list_after_its_step():
    d = Driver(
        fdl("""
            - type: pass
              name: first
              outputMappings:
                - target: a
                  source: 1
            - type: pass
              name: last
              end: true
              outputMappings:
                - target: b
                  source: 2
            - type: pass
              name: never
              outputMappings:
                - target: c
                  source: 3
        """)
    )
    d.start()
    assert d.steps_entered() == ["first", "last"]
    d.assert_succeeded({"a": 1, "b": 2})


def test_end_true_inside_a_branch_ends_only_that_branch():
    d = Driver(
        fdl("""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: pass
                      name: one
                      end: true
                      outputMappings:
                        - target: x
                          source: 1
                    - type: pass
                      name: skipped
                      outputMappings:
                        - target: x
                          source: 99
              outputMappings:
                - target: xs
                  source: $local[*].x
            - type: pass
              name: after
              outputMappings:
                - target: after
                  source: true
        """)
    )
    d.start()
    assert "skipped" not in d.steps_entered()
    d.assert_succeeded({"xs": [1], "after": True})


@pytest.mark.parametrize(
    ("skip", "entered", "output"),
    [
        (True, ["route", "landing"], {"landed": True}),
        (False, ["route", "middle", "landing"], {"middle": "ran", "landed": True}),
    ],
)
def test_goto_forwards_skips_the_steps_between(skip, entered, output):
    d = Driver(
        fdl("""
            - type: choice
              name: route
              choices:
                - condition: $.skip == true
                  goto: landing
            - type: pass
              name: middle
              outputMappings:
                - target: middle
                  source: ran
            - type: pass
              name: landing
              outputMappings:
                - target: landed
                  source: true
        """)
    )
    d.start({"skip": skip})
    assert d.steps_entered() == entered
    d.assert_succeeded(output)


def test_goto_backwards_polls_until_the_task_says_done():
    d = Driver(
        fdl(f"""
            - type: task
              name: poll
              resourceArn: {FN}
              inputMappings:
                - target: count
                  source: $local.count
            - type: choice
              name: finished
              choices:
                - condition: $.count < 3
                  goto: poll
            - type: pass
              name: done
              outputMappings:
                - target: polls
                  source: $input.count
        """)
    )
    d.start()
    task_ids = []
    for count in (1, 2, 3):
        task_ids.append(d.task("poll").task_id)
        d.now += 10
        d.complete("poll", {"count": count})
    assert d.entered("poll") == [{"count": None}, {"count": 1}, {"count": 2}]
    assert len(set(task_ids)) == 3
    assert [e.event_id for e in d.find("TaskScheduled", "poll")] == task_ids
    assert len(d.find("StepEntered", "finished")) == 3
    assert d.steps_entered()[-1] == "done"
    d.assert_succeeded({"count": 3, "polls": 3})


def test_goto_inside_a_branch_loops_within_the_branch():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: step
                      resourceArn: {FN}
                    - type: choice
                      name: again
                      choices:
                        - condition: $.more == true
                          goto: step
                - steps:
                    - type: task
                      name: step
                      resourceArn: {FN}
              outputMappings:
                - target: branches
                  source: $local
        """)
    )
    d.start()
    first, second = d.open_tasks()
    d.apply(TaskSucceeded(first.task_id, {"more": True, "n": 1}))
    d.apply(TaskSucceeded(second.task_id, {"n": 10}))
    assert d.state.status == "Running"
    (again,) = d.open_tasks()
    assert again.input == {"more": True, "n": 1}
    d.apply(TaskSucceeded(again.task_id, {"more": False, "n": 2}))
    d.assert_succeeded({"branches": [{"more": False, "n": 2}, {"n": 10}]})


def test_succeed_ends_its_list_early_with_its_output():
    d = Driver(
        fdl("""
            - type: pass
              name: a
              outputMappings:
                - target: x
                  source: 1
            - type: succeed
              name: stop
              outputMappings:
                - target: status
                  source: done
            - type: pass
              name: never
              outputMappings:
                - target: never
                  source: true
        """)
    )
    d.start()
    assert d.steps_entered() == ["a", "stop"]
    d.assert_succeeded({"x": 1, "status": "done"})


def test_succeed_inside_a_nested_list_ends_only_that_list():
    d = Driver(
        fdl("""
            - type: choice
              name: pick
              choices:
                - condition: true
                  steps:
                    - type: pass
                      name: before
                      outputMappings:
                        - target: before
                          source: 1
                    - type: succeed
                      name: early
                    - type: pass
                      name: skippedInChoice
                      outputMappings:
                        - target: skipped
                          source: 1
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: succeed
                      name: quick
                      outputMappings:
                        - target: q
                          source: 1
                    - type: pass
                      name: skippedInBranch
                      outputMappings:
                        - target: u
                          source: 1
                - steps:
                    - type: pass
                      name: other
                      outputMappings:
                        - target: o
                          source: 1
              outputMappings:
                - target: branches
                  source: $local
            - type: pass
              name: after
              outputMappings:
                - target: after
                  source: 1
        """)
    )
    d.start()
    entered = d.steps_entered()
    assert "skippedInChoice" not in entered and "skippedInBranch" not in entered
    assert "after" in entered
    d.assert_succeeded({"before": 1, "branches": [{"q": 1}, {"o": 1}], "after": 1})


def test_fail_step_fails_the_execution_with_its_error_and_cause():
    d = Driver(
        fdl("""
            - type: pass
              name: a
            - type: fail
              name: broken
              error: StatusIsNotReady
              cause: status is not ready
            - type: pass
              name: never
        """)
    )
    t = d.start()
    assert types(t)[-4:] == ["StepEntered", "StepFailed", "StepExited", "ExecutionFailed"]
    failed = d.one("StepFailed", "broken")
    assert failed.detail == {"error": "StatusIsNotReady", "cause": "status is not ready"}
    assert failed.schedule_event_id == d.one("StepEntered", "broken").event_id
    assert "never" not in d.steps_entered()
    d.assert_failed("StatusIsNotReady", "status is not ready")


def test_fail_in_a_parallel_branch_fails_the_step_and_cancels_the_other_branches():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: slow
                      resourceArn: {FN}
                      timeoutSeconds: 60
                - steps:
                    - type: wait
                      name: nap
                      duration: 100
                - steps:
                    - type: task
                      name: check
                      resourceArn: {FN}
                    - type: fail
                      name: reject
                      error: Rejected
                      cause: not allowed
            - type: pass
              name: never
        """)
    )
    t = d.start()
    assert types(t).count("BranchEntered") == 3
    slow, check = d.task("slow"), d.task("check")
    timeout, nap = d.timer("timeout"), d.timer("wait")
    assert (timeout.fire_at, nap.fire_at) == (T0 + 60, T0 + 100)

    d.now = T0 + 1
    t = d.complete("check")
    assert set(t.effects[:-1]) == {
        CloseTask(check.task_id, "completed", "succeeded"),
        CloseTask(slow.task_id, "expired", "cancelled"),
        CancelTimer(timeout.timer_id),
        CancelTimer(nap.timer_id),
    }
    assert len(t.effects) == 5
    assert d.one("StepFailed", "reject").detail == {"error": "Rejected", "cause": "not allowed"}
    assert d.one("StepFailed", "fan").detail == {"error": "Rejected", "cause": "not allowed"}
    assert "never" not in d.steps_entered()
    d.assert_failed("Rejected", "not allowed")
    ignored(d, TaskSucceeded(slow.task_id, {}))
    ignored(d, TimerFired(nap.timer_id))
