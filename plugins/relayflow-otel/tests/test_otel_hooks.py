"""The tracer's hooks called through a plugin manager, without an engine: what it does alone."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from relayflow.plugins import PluginManager
from relayflow.store.records import HistoryEvent
from relayflow_otel.engine_spans import EngineTracer
from relayflow_otel.export import FinishedSpan


def _manager() -> tuple[PluginManager, EngineTracer, list[FinishedSpan]]:
    spans: list[FinishedSpan] = []
    tracer = EngineTracer(spans.append)
    plugins = PluginManager()
    plugins.register(tracer, name="otel-engine")
    return plugins, tracer, spans


def _events(*rows: tuple[Any, ...]) -> list[HistoryEvent]:
    return [HistoryEvent(i, s, t, step, 1_800_000_000.0 + i, d) for i, s, t, step, d in rows]


def test_an_execution_reported_in_order_makes_nested_spans() -> None:
    plugins, _tracer, spans = _manager()
    plugins.notify(
        [
            (
                "f",
                "e",
                _events(
                    (1, 0, "ExecutionStarted", "", {"input": {}}),
                    (2, 0, "StepEntered", "a", {"input": {}}),
                    (
                        3,
                        2,
                        "TaskScheduled",
                        "a",
                        {"resource": "r", "pattern": "sync", "attempt": 0},
                    ),
                    (4, 3, "TaskFailed", "a", {"error": "E", "cause": "c"}),
                    (5, 2, "StepFailed", "a", {"error": "E", "cause": "c"}),
                    (6, 2, "StepExited", "a", {}),
                    (7, 0, "ExecutionFailed", "", {"error": "E", "cause": "c"}),
                ),
            )
        ]
    )
    task, step, root = spans
    assert (task.name, step.name, root.name) == ("task a", "step a", "execution f")
    assert task.parent == step.span and step.parent == root.span and root.parent is None
    assert task.error == step.error == root.error == ("E", "c")
    assert (task.start, task.end) == (1_800_000_003.0, 1_800_000_004.0)
    assert (root.start, root.end) == (1_800_000_001.0, 1_800_000_007.0)


def test_without_an_engine_an_execution_met_in_the_middle_is_left_alone() -> None:
    plugins, _tracer, spans = _manager()
    plugins.notify([("f", "e", _events((6, 2, "StepExited", "a", {})))])
    plugins.notify([("f", "e", _events((7, 0, "ExecutionSucceeded", "", {"output": {}})))])
    assert spans == []


def test_a_malformed_event_is_logged_once_and_spoils_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins, tracer, spans = _manager()
    # Live events are used as they come, unchecked: a time that is not one fails the start.
    bad = HistoryEvent(1, 0, "ExecutionStarted", "", "x", {})  # type: ignore[arg-type]
    good = _events((1, 0, "ExecutionStarted", "", {}), (2, 0, "ExecutionSucceeded", "", {}))
    with caplog.at_level(logging.ERROR):
        plugins.notify([("f", "bad", [bad, bad]), ("f", "good", good)])
    assert tracer.failures == 2
    assert [r.name for r in caplog.records] == ["relayflow.otel"]
    assert [(s.name, s.attributes["relayflow.execution"]) for s in spans] == [
        ("execution f", "good")
    ]


def test_an_event_id_that_is_not_a_number_costs_only_its_own_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins, tracer, spans = _manager()
    entered = HistoryEvent("x", 0, "StepEntered", "b", 1_800_000_004.0, {})  # type: ignore[arg-type]
    exited = HistoryEvent(5, "x", "StepExited", "b", 1_800_000_005.0, {})  # type: ignore[arg-type]
    events = _events(
        (1, 0, "ExecutionStarted", "", {}),
        (2, 0, "StepEntered", "a", {}),
        (3, 2, "StepExited", "a", {}),
    )
    with caplog.at_level(logging.ERROR):
        plugins.notify([("f", "e", [*events, entered, exited])])
        plugins.notify([("f", "e", _events((6, 0, "ExecutionSucceeded", "", {})))])
    assert [s.name for s in spans] == ["step a", "execution f"]
    assert tracer.failures == 1
    assert [r.name for r in caplog.records] == ["relayflow.otel"]
