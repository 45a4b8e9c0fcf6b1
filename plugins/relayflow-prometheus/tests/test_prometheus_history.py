"""The history hook and the plain families behind the server's metrics.

`relayflow_history_committed` reads a whole transaction's events in one loop, and the counters
and histograms are dictionaries rendered at scrape time: here the exposition is checked against
what the executions did, and against what prometheus_client's own classes would have written.
"""

from __future__ import annotations

import logging
import math
import re
import threading

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)
from prometheus_testkit import manager_with, metrics_of, samples, scrape, value

from relayflow.store.records import HistoryEvent
from relayflow.testing import bounded
from relayflow_prometheus.families import Families, PlainCounter, PlainHistogram

BOUNDS = (0.1, 1.0, 10.0)


def event(
    event_id: int, kind: str, time: float, schedule: int = 0, **detail: object
) -> HistoryEvent:
    return HistoryEvent(event_id, schedule, kind, "s", time, dict(detail))


def task_step(first: int, entered: float, seconds: float, outcome: str) -> list[HistoryEvent]:
    """A task step's events from EventId ``first``: entered, scheduled, started, ended, exited."""
    return [
        event(first, "StepEntered", entered),
        event(first + 1, "TaskScheduled", entered, resource="r", pattern="requestResponse"),
        event(first + 2, "TaskStarted", entered, schedule=first + 1),
        event(first + 3, outcome, entered + seconds, schedule=first + 1),
        event(first + 4, "StepSucceeded", entered + seconds, schedule=first),
        event(first + 5, "StepExited", entered + seconds, schedule=first),
    ]


def masked(text: str) -> str:
    """The exposition without the `_created` values (times of creation) and process metrics."""
    text = re.sub(r"^(\w+_created(\{.*\})?) \S+$", r"\1 T", text, flags=re.MULTILINE)
    return "\n".join(line for line in text.splitlines() if "process_" not in line)


@pytest.fixture(params=[True, False], ids=["created", "no-created"])
def created_series(request):
    """With and without the `_created` series (PROMETHEUS_DISABLE_CREATED_SERIES)."""
    if request.param:
        yield True
        return
    disable_created_metrics()
    try:
        yield False
    finally:
        enable_created_metrics()


def test_plain_families_render_as_prometheus_client_does(created_series):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    flows = PlainCounter("jobs", "Jobs, by flow.", ["flow", "status"])
    fired = PlainCounter("fired", "Fired.")
    timed = PlainHistogram("took_seconds", "Time taken, by flow.", ["flow"], BOUNDS)
    lag = PlainHistogram("lag_seconds", "Lag.", [], BOUNDS)
    ours.register(Families([flows, fired, timed, lag]))
    ref_flows = Counter("jobs", "Jobs, by flow.", ["flow", "status"], registry=theirs)
    ref_fired = Counter("fired", "Fired.", registry=theirs)
    ref_timed = Histogram(
        "took_seconds", "Time taken, by flow.", ["flow"], buckets=BOUNDS, registry=theirs
    )
    ref_lag = Histogram("lag_seconds", "Lag.", buckets=BOUNDS, registry=theirs)
    for flow, status in (("b", "ok"), ("a", "ok"), ("b", "ok"), ("a", "bad")):
        flows.inc((flow, status))
        ref_flows.labels(flow, status).inc()
    fired.inc((), 3)
    ref_fired.inc(3)
    # On a bound, between bounds, past the last one, negative, and NaN (only the sum sees it).
    for flow, seconds in (("b", 0.1), ("b", 0.5), ("a", 99.0), ("b", -1.0), ("a", 1.0)):
        timed.observe((flow,), seconds)
        ref_timed.labels(flow).observe(seconds)
    lag.observe((), math.nan)
    ref_lag.observe(math.nan)
    text = generate_latest(ours).decode()
    assert masked(text) == masked(generate_latest(theirs).decode())
    assert ("_created" in text) is created_series
    # The registry knows the families' names, so a clash is refused as for its own metrics.
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("jobs", "again", registry=ours)


@bounded(seconds=10)
async def test_the_history_hook_counts_what_the_executions_did():
    manager = manager_with({"enabled": True, "buckets": list(BOUNDS)})
    # Two transactions: the second ends steps the first began, for two executions at once.
    manager.notify(
        [
            (
                "ok",
                "e1",
                [event(1, "ExecutionStarted", 0.0), *task_step(2, 0.0, 0.05, "TaskSucceeded")[:3]],
            ),
            (
                "ok",
                "e2",
                [event(1, "ExecutionStarted", 0.0), *task_step(2, 0.0, 5.0, "TaskFailed")[:3]],
            ),
        ]
    )
    manager.notify(
        [
            (
                "ok",
                "e1",
                [
                    *task_step(2, 0.0, 0.05, "TaskSucceeded")[3:],
                    event(8, "ExecutionSucceeded", 1.0),
                ],
            ),
            (
                "ok",
                "e2",
                [*task_step(2, 0.0, 5.0, "TaskFailed")[3:], event(8, "ExecutionFailed", 6.0)],
            ),
            (
                "bad",
                "e1",
                [
                    event(1, "ExecutionStarted", 0.0),
                    *task_step(2, 0.0, 0.5, "TaskTimedOut"),
                    event(8, "StepExited", 3.0, schedule=99),  # its entry was never seen
                    event(9, "ExecutionTimedOut", 3.0),
                ],
            ),
        ]
    )
    _, text = await scrape(manager)
    started = "relayflow_executions_started_total"
    assert value(text, started, flow="ok") == 2 and value(text, started, flow="bad") == 1
    ended = "relayflow_executions_ended_total"
    assert value(text, ended, flow="ok", status="Succeeded") == 1
    assert value(text, ended, flow="ok", status="Failed") == 1
    assert value(text, ended, flow="bad", status="TimedOut") == 1
    step = "relayflow_step_duration_seconds"
    assert value(text, f"{step}_count", flow="ok") == 2
    assert value(text, f"{step}_bucket", flow="ok", le="0.1") == 1
    assert value(text, f"{step}_bucket", flow="ok", le="1.0") == 1
    assert value(text, f"{step}_bucket", flow="ok", le="10.0") == 2
    assert value(text, f"{step}_sum", flow="ok") == pytest.approx(5.05)
    assert value(text, f"{step}_count", flow="bad") == 1  # not the step without an entry
    task = "relayflow_task_attempt_duration_seconds_count"
    common = {"resource": "r", "pattern": "requestResponse"}
    assert value(text, task, flow="ok", outcome="succeeded", **common) == 1
    assert value(text, task, flow="ok", outcome="failed", **common) == 1
    assert value(text, task, flow="bad", outcome="timed_out", **common) == 1
    metrics = metrics_of(manager)
    assert metrics.open_steps == 0 and metrics.open_tasks == 0
    assert not metrics._open  # an execution with nothing in flight is not kept


@bounded(seconds=10)
async def test_a_malformed_event_costs_only_its_own_metric(caplog):
    manager = manager_with({"enabled": True})
    broken = [
        event(1, "ExecutionStarted", 0.0),
        event(2, "StepEntered", 0.0),
        HistoryEvent(3, 2, "StepExited", "s", None, {}),  # type: ignore[arg-type]
        HistoryEvent(4, 0, "TaskScheduled", "s", 0.0, None),  # type: ignore[arg-type]
        *task_step(5, 1.0, 0.2, "TaskSucceeded"),
        event(11, "ExecutionSucceeded", 2.0),
    ]
    with caplog.at_level(logging.WARNING, logger="relayflow_prometheus"):
        manager.notify([("f", "x", broken)])
    _, text = await scrape(manager)
    assert value(text, "relayflow_executions_started_total", flow="f") == 1
    assert value(text, "relayflow_executions_ended_total", flow="f", status="Succeeded") == 1
    assert value(text, "relayflow_step_duration_seconds_count", flow="f") == 1
    assert metrics_of(manager).malformed == 2
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1  # logged once
    assert "failed in relayflow_history_committed" not in caplog.text  # the hook went on


@bounded(seconds=10)
async def test_open_steps_and_tasks_are_capped():
    manager = manager_with({"enabled": True, "max_open_steps": 100})
    for i in range(150):  # steps entered and tasks scheduled that never end
        manager.notify([("f", f"e{i}", task_step(1, 0.0, 1.0, "TaskSucceeded")[:2])])
    metrics = metrics_of(manager)
    assert metrics.open_steps == 100 and metrics.forgotten_steps == 50
    assert metrics.open_tasks == 100 and metrics.forgotten_tasks == 50
    assert len(metrics._open) == 100
    # The newest are remembered, the oldest forgotten: only e149's end is timed.
    manager.notify([("f", "e0", task_step(1, 0.0, 1.0, "TaskSucceeded")[3:])])
    manager.notify([("f", "e149", task_step(1, 0.0, 1.0, "TaskSucceeded")[3:])])
    _, text = await scrape(manager)
    assert value(text, "relayflow_step_duration_seconds_count", flow="f") == 1


@bounded(seconds=10)
async def test_updates_from_threads_are_all_counted_while_scraped():
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)
    threads, calls = 4, 2000

    def dispatch() -> None:
        for _ in range(calls):
            metrics.relayflow_outbox_dispatched("r", 0.001)

    workers = [threading.Thread(target=dispatch) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        metrics.exposition()  # a scrape meanwhile sees whole updates, and never breaks them
    for worker in workers:
        worker.join()
    _, text = await scrape(manager)
    total = threads * calls
    assert value(text, "relayflow_outbox_dispatched_total", resource="r", taken_over="0") == total
    assert value(text, "relayflow_outbox_lag_seconds_count") == total
    assert ("relayflow_outbox_lag_seconds_bucket", (("le", "+Inf"),)) in samples(text)
