"""Where a step nests, read from its definition."""

from __future__ import annotations

from relayflow.testing import fdl
from relayflow_otel.engine_spans import enclosing_steps


def test_every_step_knows_the_steps_that_may_enclose_it() -> None:
    definition = fdl("""
- type: choice
  name: pick
  choices:
    - condition: $.a == 1
      steps:
        - type: pass
          name: chosen
  default:
    steps:
      - type: pass
        name: fallback
- type: parallel
  name: fan
  branches:
    - steps:
        - type: foreach
          name: each
          iterationMapping:
            collection: $.items
            item: item
          steps:
            - type: pass
              name: inner
    - steps:
        - type: pass
          name: chosen
""")
    assert enclosing_steps(definition) == {
        "pick": frozenset({""}),
        "chosen": frozenset({"pick", "fan"}),
        "fallback": frozenset({"pick"}),
        "fan": frozenset({""}),
        "each": frozenset({"fan"}),
        "inner": frozenset({"each"}),
    }


def test_a_definition_it_cannot_read_nests_nothing() -> None:
    assert enclosing_steps("steps: [unclosed") == {}
    assert enclosing_steps("- just a list") == {}
    assert enclosing_steps('{"steps": [{"name": 7}, "x", {"name": "ok"}]}') == {
        "ok": frozenset({""})
    }
