"""The interpreter on parallel steps and their branches."""

from __future__ import annotations

from relayflow.engine.model import CancelTimer, CloseTask, InvokeTask, TaskSucceeded, TimerFired
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, T0, Driver, ignored, types

PARALLEL_FLOW = fdl(f"""
    - type: pass
      name: seed
      outputMappings:
        - target: shared
          source: s
    - type: parallel
      name: fan
      branches:
        - steps:
            - type: task
              name: left
              resourceArn: {FN}
            - type: pass
              name: leftAfter
              outputMappings:
                - target: seen
                  source: $input.x
        - steps:
            - type: task
              name: right
              resourceArn: {FN}
      outputMappings:
        - target: xs
          source: $local[*].x
        - target: all
          source: $local
    - type: parallel
      name: quiet
      branches:
        - steps:
            - type: pass
              name: p
              outputMappings:
                - target: q
                  source: 1
""")


def test_parallel_starts_every_branch_at_once_and_keeps_branch_order():
    d = Driver(PARALLEL_FLOW)
    t = d.start({"x": 0})
    fan = d.one("StepEntered", "fan")
    branch_events = [(e.type, e.detail, e.schedule_event_id) for e in d.find("BranchEntered")]
    assert branch_events == [
        ("BranchEntered", {"index": 0}, fan.event_id),
        ("BranchEntered", {"index": 1}, fan.event_id),
    ]
    invokes = [e for e in t.effects if isinstance(e, InvokeTask)]
    assert [i.step_name for i in invokes] == ["left", "right"]
    assert all(i.input == {"x": 0, "shared": "s"} for i in invokes)

    d.complete("right", {"x": 2})
    assert d.one("BranchExited", "fan").detail == {"index": 1}
    d.complete("left", {"x": 1})
    # a branch step sees the parallel's input and its own branch's local, never another's
    assert d.entered("leftAfter") == [{"x": 1, "shared": "s"}]
    assert [e.detail for e in d.find("BranchExited", "fan")] == [{"index": 1}, {"index": 0}]
    assert d.output_of("fan") == {"xs": [1, 2], "all": [{"x": 1, "seen": 1}, {"x": 2}]}
    assert d.output_of("quiet") == {}
    d.assert_succeeded({"shared": "s", "xs": [1, 2], "all": [{"x": 1, "seen": 1}, {"x": 2}]})


def test_parallel_catch_takes_a_branch_failure_with_error_mappings():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: a
                      resourceArn: {FN}
                      timeoutSeconds: 300
                - steps:
                    - type: task
                      name: b
                      resourceArn: {FN}
                - steps:
                    - type: wait
                      name: nap
                      duration: 100
              errorMappings:
                - target: why
                  source: $local.error
              catch:
                - errors: [Boom]
                  goto: recover
            - type: pass
              name: fine
              end: true
            - type: task
              name: recover
              resourceArn: {FN}
        """)
    )
    d.start()
    a, timeout, nap = d.task("a"), d.timer("timeout"), d.timer("wait")
    t = d.fail("b", "Boom", "b broke")
    assert CloseTask(a.task_id, "expired", "cancelled") in t.effects
    assert CancelTimer(timeout.timer_id) in t.effects
    assert CancelTimer(nap.timer_id) in t.effects
    assert d.pending_timers() == []
    assert [i.step_name for i in d.open_tasks()] == ["recover"]
    assert d.one("StepFailed", "fan").detail == {"error": "Boom", "cause": "b broke"}
    assert d.task("recover").input == {"why": "Boom"}
    ignored(d, TimerFired(nap.timer_id))
    ignored(d, TaskSucceeded(a.task_id, {}))
    d.complete("recover", {"recovered": True})
    assert "fine" not in d.steps_entered()
    d.assert_succeeded({"why": "Boom", "recovered": True})


def test_parallel_retry_runs_every_branch_again():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: fan
              retry:
                - errors: [FnF.ALL]
                  intervalSeconds: 5
                  maxAttempts: 1
              branches:
                - steps:
                    - type: task
                      name: a
                      resourceArn: {FN}
                - steps:
                    - type: task
                      name: b
                      resourceArn: {FN}
              outputMappings:
                - target: all
                  source: $local
        """)
    )
    d.start()
    first_a = d.task("a")
    t = d.fail("b", "Flaky")
    assert CloseTask(first_a.task_id, "expired", "cancelled") in t.effects
    assert [e.step_name for e in d.find("StepFailed")] == ["b"]
    assert d.timer("retry").fire_at == T0 + 5
    assert d.open_tasks() == []
    t = d.fire("retry")
    assert sorted(i.step_name for i in d.open_tasks()) == ["a", "b"]
    assert first_a.task_id not in {i.task_id for i in d.open_tasks()}
    assert types(t).count("BranchEntered") == 2
    d.complete("a", {"a": 1})
    d.complete("b", {"b": 2})
    d.assert_succeeded({"all": [{"a": 1}, {"b": 2}]})
