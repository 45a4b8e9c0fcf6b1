"""The interpreter on flow-level input/output mappings and the context."""

from __future__ import annotations

from relayflow.testing import fdl
from tests.engine.interpreter.driver import Driver


def test_flow_mappings_and_context_names():
    d = Driver(
        fdl(
            """
            - type: pass
              name: note
              outputMappings:
                - target: flow
                  source: $context.flow.name
                - target: execution
                  source: $context.execution.name
            """,
            head="""
            inputMappings:
              - target: orderId
                source: $input.order.id
              - target: runBy
                source: $context.execution.name
            outputMappings:
              - target: orderId
                source: $input.orderId
              - target: runBy
                source: $input.runBy
              - target: note
                source: $local
            """,
        ),
        flow_name="orders",
        execution_name="run-42",
    )
    d.start({"order": {"id": "o-1"}, "debug": True})
    assert d.one("ExecutionStarted").detail == {"input": {"order": {"id": "o-1"}, "debug": True}}
    assert d.entered("note") == [{"orderId": "o-1", "runBy": "run-42"}]
    d.assert_succeeded(
        {
            "orderId": "o-1",
            "runBy": "run-42",
            "note": {"flow": "orders", "execution": "run-42"},
        }
    )


def test_flow_without_output_mappings_outputs_its_local():
    d = Driver(
        fdl("""
            - type: pass
              name: a
              outputMappings:
                - target: x
                  source: 1
            - type: pass
              name: b
              outputMappings:
                - target: x
                  source: 2
                - target: y
                  source: $input.x
        """)
    )
    d.start({"input": "not in output"})
    d.assert_succeeded({"x": 2, "y": 1})


def test_mappings_do_not_change_the_recorded_input():
    # A dotted target written under an object copied from the input must not reach back into
    # the input: the history has already recorded it, and the flow's input is read again later.
    d = Driver(
        fdl(
            """
            - type: pass
              name: enrich
              outputMappings:
                - target: customer
                  source: $input.customer
                - target: customer.tier
                  source: gold
            """,
            head="""
            outputMappings:
              - target: original
                source: $input.customer
              - target: enriched
                source: $local.customer
            """,
        ),
    )
    d.start({"customer": {"name": "Ann"}})
    assert d.output_of("enrich") == {"customer": {"name": "Ann", "tier": "gold"}}
    assert d.one("ExecutionStarted").detail == {"input": {"customer": {"name": "Ann"}}}
    assert d.entered("enrich") == [{"customer": {"name": "Ann"}}]
    d.assert_succeeded({"original": {"name": "Ann"}, "enriched": {"name": "Ann", "tier": "gold"}})
