"""The interpreter on catch clauses."""

from __future__ import annotations

from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, Driver

CATCH_FLOW = fdl(f"""
    - type: pass
      name: seed
      outputMappings:
        - target: orderId
          source: o-1
    - type: task
      name: charge
      resourceArn: {FN}
      errorMappings:
        - target: failure.code
          source: $local.error
        - target: failure.message
          source: $local.cause
        - target: failure.orderId
          source: $input.orderId
      catch:
        - errors: [CardDeclined]
          goto: notify
        - errors: [FnF.ALL]
          goto: giveUp
    - type: pass
      name: charged
      end: true
    - type: task
      name: notify
      resourceArn: {FN}
      end: true
    - type: pass
      name: giveUp
      outputMappings:
        - target: gaveUp
          source: $input.failure.code
""")


def test_catch_goes_to_a_sibling_with_the_error_mappings_in_the_parent_local():
    d = Driver(CATCH_FLOW)
    d.start()
    task = d.task("charge")
    t = d.fail("charge", "CardDeclined", "card declined")
    assert [(e.type, e.step_name, e.schedule_event_id) for e in t.events[:3]] == [
        ("TaskFailed", "charge", task.task_id),
        ("StepFailed", "charge", d.one("StepEntered", "charge").event_id),
        ("StepExited", "charge", d.one("StepEntered", "charge").event_id),
    ]
    assert t.events[0].detail == {"error": "CardDeclined", "cause": "card declined"}
    failure = {"code": "CardDeclined", "message": "card declined", "orderId": "o-1"}
    assert d.entered("notify") == [{"orderId": "o-1", "failure": failure}]
    assert d.task("notify").input == {"orderId": "o-1", "failure": failure}
    d.complete("notify", {"sent": True})
    assert "charged" not in d.steps_entered()
    d.assert_succeeded({"orderId": "o-1", "failure": failure, "sent": True})


def test_catch_policies_are_matched_in_order():
    d = Driver(CATCH_FLOW)
    d.start()
    d.fail("charge", "Timeout", "slow")
    assert d.steps_entered() == ["seed", "charge", "giveUp"]
    failure = {"code": "Timeout", "message": "slow", "orderId": "o-1"}
    d.assert_succeeded({"orderId": "o-1", "failure": failure, "gaveUp": "Timeout"})


def test_caught_step_without_error_mappings_outputs_nothing():
    d = Driver(
        fdl(f"""
            - type: task
              name: call
              resourceArn: {FN}
              catch:
                - errors: [FnF.ALL]
                  goto: after
            - type: pass
              name: after
        """)
    )
    d.start({"in": 1})
    d.fail("call", "E")
    d.assert_succeeded({})


def test_error_without_a_matching_catch_propagates_to_the_execution():
    d = Driver(
        fdl(f"""
            - type: parallel
              name: outer
              branches:
                - steps:
                    - type: task
                      name: call
                      resourceArn: {FN}
                      catch:
                        - errors: [Other]
                          goto: handled
                    - type: pass
                      name: handled
              catch:
                - errors: [AlsoOther]
                  goto: recover
            - type: pass
              name: recover
        """)
    )
    d.start()
    d.fail("call", "Boom", "it broke")
    assert [e.step_name for e in d.find("StepFailed")] == ["call", "outer"]
    assert "handled" not in d.steps_entered() and "recover" not in d.steps_entered()
    d.assert_failed("Boom", "it broke")
