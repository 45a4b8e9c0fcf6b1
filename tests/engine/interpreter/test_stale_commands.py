"""Commands that match nothing (stale or unknown ids) change nothing."""

from __future__ import annotations

from relayflow.engine.model import TaskFailed, TaskSubmitted, TaskSucceeded, TimerFired
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, Driver, ignored


def test_commands_for_unknown_tasks_and_timers_are_ignored():
    d = Driver(
        fdl(f"""
            - type: task
              name: work
              resourceArn: {FN}
            - type: wait
              name: nap
              duration: 10
            - type: pass
              name: done
        """)
    )
    d.start()
    work = d.task("work")
    entered = d.one("StepEntered", "work").event_id
    for command in (
        TaskSucceeded(999, {}),
        TaskFailed(999, "E"),
        TaskSubmitted(999, {"x": 1}),
        TimerFired(999),
        TaskSucceeded(entered, {}),  # an EventId that is not a task
        TaskSucceeded(work.task_id + 1, {}),  # TaskStarted's EventId
    ):
        ignored(d, command)
    d.complete("work", {"a": 1})
    ignored(d, TaskSucceeded(work.task_id, {"again": True}))
    ignored(d, TaskFailed(work.task_id, "Late"))
    nap = d.timer("wait")
    d.fire("wait")
    d.assert_succeeded({"a": 1})
    ignored(d, TimerFired(nap.timer_id))


def test_a_fired_timer_fired_again_is_ignored_while_running():
    d = Driver(
        fdl(f"""
            - type: wait
              name: nap
              duration: 10
            - type: task
              name: work
              resourceArn: {FN}
        """)
    )
    d.start()
    nap = d.timer("wait")
    d.fire("wait")
    assert d.state.status == "Running"
    ignored(d, TimerFired(nap.timer_id))
    assert len(d.find("StepSucceeded", "nap")) == 1
