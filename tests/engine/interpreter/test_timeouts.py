"""The interpreter on timeouts and Stop."""

from __future__ import annotations

from relayflow.engine.model import (
    CancelTimer,
    CloseTask,
    ExecutionEnded,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
)
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, QUEUE, T0, Driver, ignored


def test_task_timeout_fails_the_step_with_task_timeout():
    d = Driver(
        fdl(f"""
            - type: task
              name: slow
              resourceArn: {FN}
              timeoutSeconds: 30
        """)
    )
    t = d.start()
    task = d.task("slow")
    timer = d.timer("timeout")
    assert timer == StartTimer(timer.timer_id, T0 + 30, "timeout")
    assert sorted(t.effects, key=repr) == sorted([task, timer], key=repr)
    assert task.timeout_seconds == 30
    t = d.fire("timeout")
    assert [(e.type, e.schedule_event_id) for e in t.events[:3]] == [
        ("TaskTimedOut", task.task_id),
        ("StepFailed", d.one("StepEntered", "slow").event_id),
        ("StepExited", d.one("StepEntered", "slow").event_id),
    ]
    assert t.events[0].detail["error"] == "FnF.TaskTimeout"
    assert CloseTask(task.task_id, "expired", "timed out") in t.effects
    d.assert_failed("FnF.TaskTimeout")
    ignored(d, TaskSucceeded(task.task_id, {}))


def test_task_that_finishes_in_time_cancels_its_timeout():
    d = Driver(
        fdl(f"""
            - type: task
              name: slow
              resourceArn: {FN}
              timeoutSeconds: 30
        """)
    )
    d.start()
    timer = d.timer("timeout")
    d.now += 29
    t = d.complete("slow", {"ok": True})
    assert CancelTimer(timer.timer_id) in t.effects
    d.assert_succeeded({"ok": True})
    ignored(d, TimerFired(timer.timer_id))


def test_flow_timeout_times_the_execution_out_and_cancels_everything():
    d = Driver(
        fdl(
            f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {FN}
                      timeoutSeconds: 7200
                - steps:
                    - type: wait
                      name: nap
                      duration: 600
                - steps:
                    - type: wait
                      name: longNap
                      duration: 5000
            """,
            head="timeoutSeconds: 3600",
        )
    )
    t = d.start()
    flow_timer = d.timer("flow")
    assert t.effects[0] == StartTimer(flow_timer.timer_id, T0 + 3600, "flow")
    (nap,) = [x for x in d.pending_timers() if x.kind == "wait" and x.fire_at == T0 + 600]
    d.now = T0 + 600
    d.apply(TimerFired(nap.timer_id))
    work = d.task("work")
    task_timeout = d.timer("timeout")
    long_nap = d.timer("wait")
    t = d.fire("flow")
    assert d.now == T0 + 3600
    assert set(t.effects[:-1]) == {
        CloseTask(work.task_id, "expired", "cancelled"),
        CancelTimer(task_timeout.timer_id),
        CancelTimer(long_nap.timer_id),
    }
    assert t.effects[-1].status == "TimedOut"
    assert [e.type for e in t.events] == ["ExecutionTimedOut"]
    state = d.state
    assert state.status == "TimedOut" and state.output is None
    assert state.error.startswith("FnF.") and state.cause
    assert t.events[0].detail == {"error": state.error, "cause": state.cause}
    ignored(d, TaskSucceeded(work.task_id, {}))
    ignored(d, TimerFired(task_timeout.timer_id))


def test_flow_that_finishes_in_time_cancels_its_timer():
    d = Driver(
        fdl(
            f"""
            - type: task
              name: work
              resourceArn: {FN}
            """,
            head="timeoutSeconds: 100",
        )
    )
    d.start()
    flow_timer = d.timer("flow")
    t = d.complete("work", {"a": 1})
    assert CancelTimer(flow_timer.timer_id) in t.effects
    d.assert_succeeded({"a": 1})


def test_stop_ends_the_execution_and_ignores_later_commands():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {QUEUE}
                      pattern: waitForCallback
                      timeoutSeconds: 600
                - steps:
                    - type: wait
                      name: nap
                      duration: 60
        """)
    )
    d.start()
    work, nap, timeout = d.task("work"), d.timer("wait"), d.timer("timeout")
    d.now += 5
    t = d.apply(Stop("Cancelled", "stopped by the operator"))
    assert [(e.type, e.detail) for e in t.events] == [
        ("ExecutionStopped", {"error": "Cancelled", "cause": "stopped by the operator"})
    ]
    closes = [e for e in t.effects if isinstance(e, CloseTask)]
    assert [(c.task_id, c.state) for c in closes] == [(work.task_id, "expired")]
    assert {e for e in t.effects if isinstance(e, CancelTimer)} == {
        CancelTimer(nap.timer_id),
        CancelTimer(timeout.timer_id),
    }
    assert t.effects[-1] == ExecutionEnded("Stopped", None, "Cancelled", "stopped by the operator")
    state = d.state
    assert (state.status, state.error, state.cause) == (
        "Stopped",
        "Cancelled",
        "stopped by the operator",
    )
    for command in (
        TaskSucceeded(work.task_id, {}),
        TaskFailed(work.task_id, "E"),
        TaskSubmitted(work.task_id),
        TimerFired(nap.timer_id),
        TimerFired(timeout.timer_id),
        Stop(),
        Start({}),
    ):
        ignored(d, command)
