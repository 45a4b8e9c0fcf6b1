"""The interpreter on choice steps."""

from __future__ import annotations

import pytest

from relayflow.testing import fdl
from tests.engine.interpreter.driver import Driver

CHOICE_FLOW = fdl("""
    - type: choice
      name: size
      choices:
        - condition: $.n > 5
          steps:
            - type: pass
              name: big
              outputMappings:
                - target: size
                  source: big
          goto: report
        - condition: $.n > 0
          steps:
            - type: pass
              name: small
              outputMappings:
                - target: size
                  source: small
        - condition: $.n > 1
          goto: report
      default:
        steps:
          - type: pass
            name: none
            outputMappings:
              - target: size
                source: none
        goto: report
    - type: pass
      name: between
      outputMappings:
        - target: between
          source: true
    - type: pass
      name: report
""")


@pytest.mark.parametrize(
    ("n", "entered", "output"),
    [
        (10, ["size", "big", "report"], {"size": "big"}),
        (3, ["size", "small", "between", "report"], {"size": "small", "between": True}),
        (-1, ["size", "none", "report"], {"size": "none"}),
    ],
)
def test_choice_runs_the_first_true_branch_then_its_goto(n, entered, output):
    d = Driver(CHOICE_FLOW)
    d.start({"n": n})
    assert d.steps_entered() == entered
    assert d.output_of("size") == {"size": output["size"]}
    d.assert_succeeded(output)


def test_choice_without_a_match_or_default_continues():
    d = Driver(
        fdl("""
            - type: choice
              name: maybe
              choices:
                - condition: $.flag
                  steps:
                    - type: pass
                      name: inside
                      outputMappings:
                        - target: inside
                          source: true
                  goto: final
            - type: pass
              name: next
              outputMappings:
                - target: next
                  source: true
            - type: pass
              name: final
        """)
    )
    d.start({"flag": False})
    assert d.steps_entered() == ["maybe", "next", "final"]
    assert d.output_of("maybe") == {}
    d.assert_succeeded({"next": True})


def test_choice_local_is_the_branch_local_and_output_mappings_read_it():
    d = Driver(
        fdl("""
            - type: choice
              name: compute
              inputMappings:
                - target: base
                  source: $input.base
              choices:
                - condition: $.base != null
                  steps:
                    - type: pass
                      name: one
                      outputMappings:
                        - target: a
                          source: $input.base
                    - type: pass
                      name: two
                      outputMappings:
                        - target: b
                          source: $input.a
              outputMappings:
                - target: total
                  source: $local
                - target: b
                  source: $local.b
            - type: choice
              name: plain
              choices:
                - condition: true
                  steps:
                    - type: pass
                      name: three
                      outputMappings:
                        - target: c
                          source: 3
        """)
    )
    d.start({"base": 7, "noise": 1})
    assert d.entered("compute") == [{"base": 7}]
    assert d.entered("two") == [{"base": 7, "a": 7}]
    assert d.output_of("compute") == {"total": {"a": 7, "b": 7}, "b": 7}
    assert d.output_of("plain") == {"c": 3}
    d.assert_succeeded({"total": {"a": 7, "b": 7}, "b": 7, "c": 3})


def test_choice_conditions_can_read_the_context():
    d = Driver(
        fdl("""
            - type: choice
              name: who
              choices:
                - condition: $context.execution.name == "nightly"
                  goto: nightly
            - type: pass
              name: manual
              end: true
              outputMappings:
                - target: by
                  source: manual
            - type: pass
              name: nightly
              outputMappings:
                - target: by
                  source: $context.flow.name
        """),
        execution_name="nightly",
    )
    d.start()
    d.assert_succeeded({"by": "orders"})
