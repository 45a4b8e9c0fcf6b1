"""The interpreter within its limits: data sizes, history events and steps per transition."""

from __future__ import annotations

from relayflow.engine.model import CloseTask, InvokeTask, Limits, StartTimer, TimerFired
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, T0, Driver


def test_step_input_over_the_data_limit_fails_the_step():
    d = Driver(
        fdl("""
            - type: pass
              name: big
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start({"blob": "x" * 200})
    assert d.one("StepFailed", "big").detail["error"] == "FnF.DataLimitExceeded"
    d.assert_failed("FnF.DataLimitExceeded")


def test_step_output_over_the_data_limit_fails_the_step():
    d = Driver(
        fdl(f"""
            - type: task
              name: big
              resourceArn: {FN}
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start({"small": 1})
    d.complete("big", {"blob": "x" * 200})
    assert d.one("StepFailed", "big").detail["error"] == "FnF.DataLimitExceeded"
    d.assert_failed("FnF.DataLimitExceeded")


def test_step_output_under_the_data_limit_passes():
    d = Driver(
        fdl(f"""
            - type: task
              name: big
              resourceArn: {FN}
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"blob": "x" * 50})
    d.assert_succeeded({"blob": "x" * 50})


def test_task_local_over_the_data_limit_fails_the_step_even_when_mapped_down():
    # Limits.max_step_data_bytes: "size of a step's input, output or local as JSON"
    d = Driver(
        fdl(f"""
            - type: task
              name: big
              resourceArn: {FN}
              outputMappings:
                - target: id
                  source: $local.id
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"id": 1, "blob": "x" * 200})
    d.assert_failed("FnF.DataLimitExceeded")


def test_data_limit_error_can_be_caught():
    d = Driver(
        fdl(f"""
            - type: task
              name: big
              resourceArn: {FN}
              catch:
                - errors: [FnF.DataLimitExceeded]
                  goto: tooBig
            - type: pass
              name: fine
              end: true
            - type: pass
              name: tooBig
              outputMappings:
                - target: tooBig
                  source: true
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"blob": "x" * 200})
    d.assert_succeeded({"tooBig": True})


def test_event_limit_fails_an_endless_loop():
    d = Driver(
        fdl("""
            - type: pass
              name: tick
            - type: choice
              name: again
              choices:
                - condition: true
                  goto: tick
        """),
        limits=Limits(max_events=10),
    )
    d.start()
    assert all(e.event_id <= 10 for e in d.events[:-1])
    assert len(d.events) == 11
    d.assert_failed("FnF.EventLimitExceeded")


def test_event_limit_reached_mid_transition_ends_there():
    d = Driver(
        fdl(f"""
            - type: task
              name: work
              resourceArn: {FN}
            - type: task
              name: next
              resourceArn: {FN}
        """),
        limits=Limits(max_events=6),
    )
    d.start()
    d.complete("work", {"n": 1})  # TaskSucceeded 5, StepSucceeded 6, then the limit
    assert [e.type for e in d.last.events] == ["TaskSucceeded", "StepSucceeded", "ExecutionFailed"]
    d.assert_failed("FnF.EventLimitExceeded")
    assert not any(isinstance(e, InvokeTask) for e in d.last.effects)


def test_event_limit_in_a_parallel_closes_the_other_branch():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {FN}
                - steps:
                    - type: task
                      name: loop
                      resourceArn: {FN}
                    - type: choice
                      name: again
                      choices:
                        - condition: true
                          goto: loop
        """),
        limits=Limits(max_events=20),
    )
    d.start()
    work = d.task("work")
    while d.state.status == "Running":
        d.complete("loop", {})
    expired = [e for e in d.last.effects if isinstance(e, CloseTask) and e.state == "expired"]
    assert [c.task_id for c in expired] == [work.task_id]
    assert d.state.tasks == {}
    d.assert_failed("FnF.EventLimitExceeded")


def test_steps_per_transition_continue_with_a_timer_due_now():
    steps = "\n".join(
        f"- type: pass\n  name: p{i}\n  outputMappings:\n    - target: v{i}\n      source: {i}"
        for i in range(1, 8)
    )
    d = Driver(fdl(steps), limits=Limits(steps_per_transition=3))
    t = d.start()
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p1", "p2", "p3"]
    timer = d.timer("continue")
    assert t.effects == [StartTimer(timer.timer_id, T0, "continue")]
    assert d.state.status == "Running"
    d.now += 0.25
    t = d.apply(TimerFired(timer.timer_id))
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p4", "p5", "p6"]
    assert d.timer("continue").fire_at == T0 + 0.25
    t = d.fire("continue")
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p7"]
    assert d.entered("p7") == [{f"v{i}": i for i in range(1, 7)}]
    d.assert_succeeded({f"v{i}": i for i in range(1, 8)})


def test_steps_per_transition_applies_to_parallel_branches():
    d = Driver(
        fdl("""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: pass
                      name: a1
                    - type: pass
                      name: a2
                - steps:
                    - type: pass
                      name: b1
                    - type: pass
                      name: b2
              outputMappings:
                - target: n
                  source: 2
        """),
        limits=Limits(steps_per_transition=2),
    )
    d.start()
    assert d.state.status == "Running"
    for _ in range(5):
        if d.state.status != "Running":
            break
        d.fire("continue")
    assert sorted(d.steps_entered()) == ["a1", "a2", "b1", "b2", "fan"]
    d.assert_succeeded({"n": 2})
