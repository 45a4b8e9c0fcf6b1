"""The tracer's fast paths make what its general path makes, and follow executions by name.

`EngineTracer.relayflow_history_committed` applies the events of an execution it follows
through `_live` (sampled) or `_skim` (not sampled) and leaves the rest to `_handle`. A tracer
whose fast paths leave every event to `_handle` is the reference here: both must hand over the
same records, in the same order, and name task requests alike.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

import relayflow_otel.engine_spans as engine_spans
from relayflow.engine.integration import TaskRequest
from relayflow.plugins import CommittedHistory
from relayflow.store.records import HistoryEvent
from relayflow_otel.engine_spans import EngineTracer
from relayflow_otel.engine_state import ExecutionTrace
from relayflow_otel.exporter_process import STEP, TASK
from relayflow_otel.ids import is_sampled, micros, span_id, trace_id

T0 = 1_800_000_000.0


class Reference(EngineTracer):
    """The tracer with its fast paths off: every event goes through `_handle`."""

    def _live(self, state: ExecutionTrace, events: Sequence[Any], start: int) -> int:
        return start

    @staticmethod
    def _skim(state: ExecutionTrace, events: Sequence[Any], start: int) -> int:
        return start


def _tracer(kind: type[EngineTracer] = EngineTracer, ratio: float = 1.0) -> tuple[Any, list[Any]]:
    records: list[tuple[Any, ...]] = []
    return kind(emit_records=records.extend, sampling_ratio=ratio), records


def _request(flow: str, name: str, task: int, resource: str = "r") -> TaskRequest:
    return TaskRequest(flow, name, "s", task, "token", resource, "sync", {}, None, None, 0)


def _execution(draw: random.Random, first: int) -> list[HistoryEvent]:
    """A plausible history: task steps (some failing, retried or handed over), a parallel step
    with branches open at once, untraced events in between, and an end."""
    events: list[HistoryEvent] = []

    def add(schedule: int, kind: str, step: str, detail: dict[str, Any] | None = None) -> int:
        event_id = len(events) + 1
        when = T0 + first + event_id * 0.001
        events.append(HistoryEvent(event_id, schedule, kind, step, when, detail or {}))
        return event_id

    def task_step(name: str) -> None:
        entered = add(0, "StepEntered", name, {"input": {}})
        for attempt in range(draw.randrange(1, 3)):
            detail = {"resource": "r", "pattern": "sync", "attempt": attempt}
            scheduled = add(entered, "TaskScheduled", name, detail)
            add(scheduled, "TaskStarted", name)
            if draw.random() < 0.3:
                add(scheduled, "TaskSubmitted", name, {"id": 1})
            if draw.random() < 0.3:
                add(scheduled, "TaskFailed", name, {"error": "E", "cause": "c" * attempt})
            else:
                add(scheduled, "TaskSucceeded", name, {"output": {}})
        add(entered, "StepSucceeded", name)
        add(entered, "StepExited", name)

    add(0, "ExecutionStarted", "", {"input": {}})
    for n in range(draw.randrange(1, 5)):
        task_step(f"t{n}")
    if draw.random() < 0.5:  # a parallel step: steps open inside others
        outer = add(0, "StepEntered", "both", {})
        left = add(outer, "StepEntered", "left", {})
        right = add(outer, "StepEntered", "right", {})
        add(right, "StepExited", "right")
        add(left, "StepExited", "left")
        add(outer, "StepExited", "both")
    if draw.random() < 0.2:  # an end with a step and a task still open
        entered = add(0, "StepEntered", "late", {})
        add(entered, "TaskScheduled", "late", {"resource": "r", "pattern": "sync", "attempt": 0})
        add(0, "ExecutionStopped", "", {"error": "Halt", "cause": "enough"})
    else:
        add(0, "ExecutionSucceeded", "", {"output": {}})
    return events


def _transactions(
    draw: random.Random, executions: dict[tuple[str, str], list[HistoryEvent]]
) -> list[list[tuple[str, str, list[HistoryEvent]]]]:
    """The executions' events cut in transactions, interleaved as an engine commits them."""
    left = {key: list(events) for key, events in executions.items()}
    out = []
    while left:
        transaction = []
        for key in draw.sample(sorted(left), k=draw.randint(1, len(left))):
            take = draw.randint(1, 8)
            events, left[key] = left[key][:take], left[key][take:]
            transaction.append((*key, events))
            if not left[key]:
                del left[key]
        out.append(transaction)
    return out


def _run(kind: type[EngineTracer], transactions: Any, ratio: float) -> tuple[list[Any], list[str]]:
    """Records and traceparent headers of a tracer fed ``transactions``, a request after each."""
    tracer, records = _tracer(kind, ratio)
    headers = []
    for transaction in transactions:
        tracer.relayflow_history_committed(CommittedHistory(transaction))
        for flow, name, events in transaction:
            request = _request(flow, name, events[-1].event_id)
            tracer.relayflow_prepare_task_request(request)
            headers.append(request.headers.get("traceparent", "-"))
    return records, headers


@pytest.mark.parametrize("ratio", [1.0, 0.5])
@pytest.mark.parametrize("seed", range(12))
def test_the_fast_paths_make_what_the_general_path_makes(seed: int, ratio: float) -> None:
    draw = random.Random(seed)
    # Names shared by two flows, each with an execution running.
    executions = {("fg"[n % 2], f"e{n // 2}"): _execution(draw, n * 10) for n in range(8)}
    transactions = _transactions(draw, executions)
    fast = _run(EngineTracer, transactions, ratio)
    assert fast == _run(Reference, transactions, ratio)
    assert fast[0] or ratio < 1  # something was traced


def _started(flow: str, name: str, when: float, event_id: int = 1) -> HistoryEvent:
    return HistoryEvent(event_id, 0, "ExecutionStarted", "", when, {"input": {}})


def _step(first: int, step: str, when: float) -> list[HistoryEvent]:
    """A step with one task attempt, EventIds from ``first``."""
    return [
        HistoryEvent(first, 0, "StepEntered", step, when, {}),
        HistoryEvent(first + 1, first, "TaskScheduled", step, when, {"resource": "r"}),
        HistoryEvent(first + 2, first + 1, "TaskSucceeded", step, when + 1, {}),
        HistoryEvent(first + 3, first, "StepExited", step, when + 1, {}),
    ]


def _ended(event_id: int, when: float) -> HistoryEvent:
    return HistoryEvent(event_id, 0, "ExecutionSucceeded", "", when, {"output": {}})


def _header(tracer: EngineTracer, flow: str, name: str, task: int) -> str | None:
    request = _request(flow, name, task)
    tracer.relayflow_prepare_task_request(request)
    return request.headers.get("traceparent")


def test_executions_of_two_flows_with_one_name_are_followed_apart() -> None:
    tracer, records = _tracer()
    one, two = _started("f", "same", T0), _started("g", "same", T0 + 5)
    tracer.relayflow_history_committed(
        CommittedHistory([("f", "same", [one]), ("g", "same", [two, *_step(2, "b", T0 + 6)])])
    )
    tracer.relayflow_history_committed(CommittedHistory([("f", "same", _step(2, "a", T0 + 1))]))
    traces = {flow: trace_id(flow, "same", micros(t)) for flow, t in (("f", T0), ("g", T0 + 5))}
    for flow in ("f", "g"):
        assert _header(tracer, flow, "same", 3) == (
            f"00-{traces[flow]:032x}-{span_id(traces[flow], 3):016x}-01"
        )
    assert [(r[0], r[1], r[8]) for r in records] == [
        (TASK, traces["g"], "b"),
        (STEP, traces["g"], "b"),
        (TASK, traces["f"], "a"),
        (STEP, traces["f"], "a"),
    ]
    # The first of the name ends: the other is still followed, and ends in its own trace.
    tracer.relayflow_history_committed(CommittedHistory([("g", "same", [_ended(6, T0 + 9)])]))
    assert _header(tracer, "g", "same", 3) is None
    assert _header(tracer, "f", "same", 3) is not None
    tracer.relayflow_history_committed(CommittedHistory([("f", "same", [_ended(6, T0 + 9)])]))
    assert [r[1] for r in records[4:]] == [traces["g"], traces["f"]]
    assert tracer._followed == 0 and not tracer._executions


def test_a_chain_loses_any_of_its_executions_and_keeps_the_others() -> None:
    tracer, _records = _tracer()
    flows = ["a", "b", "c"]
    for n, flow in enumerate(flows):
        tracer.relayflow_history_committed(
            CommittedHistory([(flow, "x", [_started(flow, "x", T0 + n)])])
        )
    assert tracer._followed == 3 and len(tracer._executions) == 1
    tracer.relayflow_history_committed(CommittedHistory([("b", "x", [_ended(2, T0 + 9)])]))
    assert [f for f in flows if _header(tracer, f, "x", 7)] == ["a", "c"]
    tracer.relayflow_history_committed(CommittedHistory([("c", "x", [_ended(2, T0 + 9)])]))
    assert [f for f in flows if _header(tracer, f, "x", 7)] == ["a"]
    assert tracer._followed == 1
    # Forgetting one that is no longer followed changes nothing.
    tracer._unfollow(ExecutionTrace("b", "x"))
    assert tracer._followed == 1 and _header(tracer, "a", "x", 7)


def test_past_the_limit_the_least_recently_active_name_is_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_spans, "MAX_EXECUTIONS", 3)
    tracer, _records = _tracer()

    def start(flow: str, name: str) -> None:
        tracer.relayflow_history_committed(
            CommittedHistory([(flow, name, [_started(flow, name, T0)])])
        )

    start("f", "old")
    start("g", "old")  # the same name: forgotten with it
    start("f", "new")
    # "old" is active again: "new" is now the least recently active.
    tracer.relayflow_history_committed(CommittedHistory([("f", "old", _step(2, "s", T0))]))
    start("f", "newest")
    assert tracer._followed == 3
    assert _header(tracer, "f", "new", 3) is None
    start("f", "last")
    assert tracer._followed == 2  # both executions named "old" went
    followed = [n for n in ("old", "newest", "last") if _header(tracer, "f", n, 3)]
    assert followed == ["newest", "last"]
    assert _header(tracer, "g", "old", 3) is None


def _ratio_splitting(name: str) -> tuple[float, float]:
    """Two start times for ``name`` whose traces are unsampled, then sampled, at 0.5."""
    times = [T0 + n for n in range(200)]
    sampled = [is_sampled(trace_id("f", name, micros(t)), 0.5) for t in times]
    return times[sampled.index(False)], times[sampled.index(True)]


def test_an_untraced_execution_is_skimmed_to_its_end_or_its_next_start() -> None:
    tracer, records = _tracer(ratio=0.5)
    unsampled, sampled = _ratio_splitting("u")
    tracer.relayflow_history_committed(
        CommittedHistory([("f", "u", [_started("f", "u", unsampled), *_step(2, "a", unsampled)])])
    )
    header = _header(tracer, "f", "u", 3)
    assert header is not None and header.endswith("-00") and not records
    # The name used again (a new start, no end seen): the new execution is traced.
    tracer.relayflow_history_committed(
        CommittedHistory([("f", "u", [*_step(6, "b", unsampled), _started("f", "u", sampled, 10)])])
    )
    tracer.relayflow_history_committed(CommittedHistory([("f", "u", _step(11, "c", sampled))]))
    assert [(r[0], r[8]) for r in records] == [(TASK, "c"), (STEP, "c")]
    header = _header(tracer, "f", "u", 12)
    assert header is not None and header.endswith("-01")


def test_an_untraced_execution_is_forgotten_at_its_end() -> None:
    tracer, records = _tracer(ratio=0.0)
    tracer.relayflow_history_committed(
        CommittedHistory([("f", "e", [_started("f", "e", T0), *_step(2, "a", T0), _ended(6, T0)])])
    )
    assert not records and tracer._followed == 0
    assert _header(tracer, "f", "e", 3) is None


def test_a_start_that_cannot_be_read_is_skimmed_to_the_next_start() -> None:
    tracer, records = _tracer()
    bad = HistoryEvent(1, 0, "ExecutionStarted", "", "x", {})  # type: ignore[arg-type]
    tracer.relayflow_history_committed(CommittedHistory([("f", "e", [bad, *_step(2, "a", T0)])]))
    assert tracer.failures == 1 and not records
    assert _header(tracer, "f", "e", 3) is None
    tracer.relayflow_history_committed(
        CommittedHistory([("f", "e", [_started("f", "e", T0, 6), *_step(7, "b", T0)])])
    )
    assert [(r[0], r[8]) for r in records] == [(TASK, "b"), (STEP, "b")]


def test_an_end_that_fails_costs_what_it_costs_on_the_general_path() -> None:
    # An end whose detail is not a mapping fails once the execution is forgotten (its root
    # span lost): the events after it go on in its trace, as after a redrive, on either path.
    bad_end = HistoryEvent(6, 0, "ExecutionFailed", "", T0 + 2, None)  # type: ignore[arg-type]
    events = [_started("f", "e", T0), *_step(2, "a", T0), bad_end, *_step(7, "b", T0 + 3)]
    outcomes = []
    for kind in (EngineTracer, Reference):
        tracer, records = _tracer(kind)
        tracer.relayflow_history_committed(CommittedHistory([("f", "e", events)]))
        outcomes.append((records, tracer.failures, tracer._followed))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == 1 and [r[8] for r in outcomes[0][0]] == ["a", "a", "b", "b"]
