"""The cheap paths of the server's hooks: queued dispatches, per-execution state, label caches.

A dispatched task request is only queued by its hook and counted later (by the next history
hook or the next scrape); the history hook keeps steps and tasks in flight per execution and
finds labels and series through caches. Here the exposition they give is checked against
prometheus_client's own classes fed the same inputs directly, and each slower path is driven.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_testkit import manager_with, metrics_of, scrape, value
from test_prometheus_history import event, masked, task_step

import relayflow_prometheus.metrics as metrics_module
from relayflow.store.records import HistoryEvent
from relayflow.testing import bounded
from relayflow_prometheus.families import PlainCounter
from relayflow_prometheus.metrics import ServerMetrics

OUTCOMES = {"TaskSucceeded": "succeeded", "TaskFailed": "failed", "TaskTimedOut": "timed_out"}
ENDED = {"ExecutionSucceeded": "Succeeded", "ExecutionFailed": "Failed"}


class Reference:
    """The same families as prometheus_client objects, fed one sample at a time.

    Labels are admitted as the plugin admits them: a task's resource when it is scheduled, a
    flow when one of its metrics is first counted, a dispatch's resource when dispatched.
    """

    def __init__(self, metrics: ServerMetrics, max_flows: int, max_resources: int) -> None:
        self.registry = CollectorRegistry()
        self.family: dict[str, Any] = {}
        for family in metrics.families.families:
            if isinstance(family, PlainCounter):
                self.family[family.name] = Counter(
                    family.name, family.documentation, family.labelnames, registry=self.registry
                )
            else:
                self.family[family.name] = Histogram(
                    family.name,
                    family.documentation,
                    family.labelnames,
                    buckets=family.bounds,
                    registry=self.registry,
                )
        self.limits = {"flow": max_flows, "resource": max_resources}
        self.admitted: dict[str, list[str]] = {"flow": [], "resource": []}
        self.open: dict[tuple[str, str, int], Any] = {}

    def label(self, kind: str, value: str) -> str:
        value = value[:256]
        seen = self.admitted[kind]
        if value in seen:
            return value
        if len(seen) >= self.limits[kind]:
            return "(other)"
        seen.append(value)
        return value

    def history(self, committed: list[tuple[str, str, list[HistoryEvent]]]) -> None:
        for flow, execution, events in committed:
            for e in events:
                if e.type == "StepEntered":
                    self.open[flow, execution, e.event_id] = e.time
                elif e.type == "TaskScheduled":
                    resource, pattern = e.detail.get("resource"), e.detail.get("pattern")
                    labels = (
                        self.label("resource", resource if isinstance(resource, str) else ""),
                        pattern[:40] if isinstance(pattern, str) else "",
                    )
                    self.open[flow, execution, e.event_id] = (e.time, labels)
                elif e.type == "StepExited":
                    start = self.open.pop((flow, execution, e.schedule_event_id), None)
                    if start is not None:
                        self.family["relayflow_step_duration_seconds"].labels(
                            self.label("flow", flow)
                        ).observe(max(0.0, e.time - start))
                elif e.type in OUTCOMES:
                    task = self.open.pop((flow, execution, e.schedule_event_id), None)
                    if task is not None:
                        (start, (resource, pattern)) = task
                        self.family["relayflow_task_attempt_duration_seconds"].labels(
                            self.label("flow", flow), resource, pattern, OUTCOMES[e.type]
                        ).observe(max(0.0, e.time - start))
                elif e.type == "ExecutionStarted":
                    self.family["relayflow_executions_started"].labels(
                        self.label("flow", flow)
                    ).inc()
                elif e.type in ENDED:
                    self.family["relayflow_executions_ended"].labels(
                        self.label("flow", flow), ENDED[e.type]
                    ).inc()

    def dispatched(self, resource: str, lag: float | None) -> None:
        taken_over = "1" if lag is None else "0"
        self.family["relayflow_outbox_dispatched"].labels(
            self.label("resource", resource), taken_over
        ).inc()
        if lag is not None:
            self.family["relayflow_outbox_lag_seconds"].observe(max(0.0, lag))


def rendered(metrics: ServerMetrics) -> str:
    """The plugin's counters and histograms alone (no process or waiting metrics)."""
    registry = CollectorRegistry()
    registry.register(metrics.families)
    return masked(generate_latest(registry).decode())


def random_run(seed: int) -> tuple[list[Any], int, int]:
    """Transactions and dispatches of interleaved executions, as ("history" | "dispatch", ...)."""
    rng = random.Random(seed)
    flows = [f"flow{i}" for i in range(5)]
    resources = ["r0", "r1", "r2", "r3", "x" * 300]
    patterns = ["requestResponse", "waitForCallback", "p" * 50, None]
    running: dict[tuple[str, str], dict[str, Any]] = {}
    calls: list[Any] = []
    clock = 1000.0
    for n in range(60):
        flow = rng.choice(flows)
        running[flow, f"e{n}"] = {"next": 1, "started": False, "steps": rng.randint(1, 4)}
    while running:
        committed = []
        for key in rng.sample(sorted(running), k=min(len(running), rng.randint(1, 8))):
            state = running[key]
            clock += rng.random()
            events = []
            if not state["started"]:
                events.append(event(state["next"], "ExecutionStarted", clock))
                state["next"] += 1
                state["started"] = True
            elif state["steps"] == 0:
                events.append(event(state["next"], rng.choice(sorted(ENDED)), clock))
                del running[key]
            else:
                first = state["next"]
                steps = task_step(first, clock, rng.random() * 20, rng.choice(sorted(OUTCOMES)))
                resource: object = rng.choice([*resources, 7])  # 7: not a string
                steps[1] = HistoryEvent(
                    first + 1,
                    first,
                    "TaskScheduled",
                    "s",
                    clock,
                    {"resource": resource, "pattern": rng.choice(patterns)},
                )
                cut = rng.randint(0, 6)  # some steps end in a later transaction, or never
                events.extend(steps[:cut])
                if cut < 6 and rng.random() < 0.8:
                    state.setdefault("rest", []).extend(steps[cut:])
                state["next"] = first + 6
                state["steps"] -= 1
            events = state.pop("rest", []) + events if rng.random() < 0.7 else events
            committed.append((key[0], key[1], events))
        calls.append(("history", committed))
        for _ in range(rng.randint(0, 6)):
            lag = rng.choice([None, -1.0, math.nan, rng.random() * 2, 0.0])
            calls.append(("dispatch", rng.choice(resources), lag))
        if rng.random() < 0.2:
            calls.append(("scrape",))
    return calls, 3, 2


@pytest.mark.parametrize("seed", range(6))
def test_the_exposition_is_prometheus_clients_for_the_same_inputs(seed):
    calls, max_flows, max_resources = random_run(seed)
    manager = manager_with(
        {"enabled": True, "max_flows": max_flows, "max_resources": max_resources}
    )
    metrics = metrics_of(manager)
    reference = Reference(metrics, max_flows, max_resources)
    for call in calls:
        if call[0] == "history":
            manager.notify(call[1])
            reference.history(call[1])
        elif call[0] == "dispatch":
            manager.outbox_dispatched(call[1], call[2])
            reference.dispatched(call[1], call[2])
        else:
            assert rendered(metrics) == masked(generate_latest(reference.registry).decode())
    assert rendered(metrics) == masked(generate_latest(reference.registry).decode())
    assert metrics.malformed == 0
    # What is still in flight is what the reference still holds, counted the same.
    assert metrics.open_steps + metrics.open_tasks == len(reference.open)


@bounded(seconds=10)
async def test_queued_dispatches_are_counted_at_the_scrape():
    manager = manager_with({"enabled": True, "latency_buckets": [0.01, 1]})
    metrics = metrics_of(manager)
    manager.outbox_dispatched("b", 0.5)
    manager.outbox_dispatched("a", None)
    manager.outbox_dispatched("b", 2.0)
    assert len(metrics._dispatched) == 3  # only queued: nothing counted yet
    _, text = await scrape(manager)
    assert not metrics._dispatched
    dispatched = "relayflow_outbox_dispatched_total"
    assert value(text, dispatched, resource="b", taken_over="0") == 2
    assert value(text, dispatched, resource="a", taken_over="1") == 1
    assert value(text, "relayflow_outbox_lag_seconds_bucket", le="1.0") == 1
    assert value(text, "relayflow_outbox_lag_seconds_count") == 2
    assert value(text, "relayflow_outbox_lag_seconds_sum") == 2.5
    # Series are made in the order the requests were dispatched.
    names = [line.split("{")[1] for line in text.splitlines() if line.startswith(dispatched)]
    assert names == ['resource="b",taken_over="0"} 2.0', 'resource="a",taken_over="1"} 1.0']


def test_queued_dispatches_are_counted_by_the_next_history():
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)
    manager.outbox_dispatched("r", 0.001)
    manager.notify([("f", "x", [event(1, "ExecutionStarted", 0.0)])])
    assert not metrics._dispatched
    assert metrics.outbox_dispatched.values == {("r", "0"): 1.0}


def test_the_dispatch_queue_is_bounded(monkeypatch):
    monkeypatch.setattr(metrics_module, "_MAX_QUEUED", 5)
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)
    for _ in range(6):
        manager.outbox_dispatched("r", 0.001)
    assert not metrics._dispatched  # the sixth went past the bound: all six were counted
    assert metrics.outbox_dispatched.values == {("r", "0"): 6.0}


def test_requests_queued_while_counting_are_kept_for_the_next_count():
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)
    calls = 20000
    done = threading.Event()

    def dispatch() -> None:
        for _ in range(calls):
            metrics.relayflow_outbox_dispatched("r", 0.001)
        done.set()

    worker = threading.Thread(target=dispatch)
    worker.start()
    while not done.is_set():
        with metrics.families.lock:
            metrics._count_dispatched()
    worker.join()
    with metrics.families.lock:
        metrics._count_dispatched()
    assert metrics.outbox_dispatched.values == {("r", "0"): float(calls)}


def test_a_malformed_dispatch_costs_only_its_own_count(caplog):
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)
    metrics.relayflow_outbox_dispatched("r", "soon")  # type: ignore[arg-type]
    metrics.relayflow_outbox_dispatched(None, None)  # type: ignore[arg-type]
    metrics.relayflow_outbox_dispatched("r", 0.5)
    with caplog.at_level(logging.WARNING, logger="relayflow_prometheus"):
        generate_latest(metrics.registry)
    assert metrics.malformed == 2
    assert metrics.outbox_dispatched.values == {("r", "0"): 1.0}
    assert sum(1 for r in caplog.records if "malformed" in r.getMessage()) == 1


def test_a_large_execution_past_the_cap_loses_only_its_oldest_steps():
    manager = manager_with({"enabled": True, "max_open_steps": 100})
    metrics = metrics_of(manager)
    entered = [event(i, "StepEntered", float(i)) for i in range(1, 121)]
    manager.notify([("f", "big", entered)])
    assert metrics.open_steps == 100 and metrics.forgotten_steps == 20
    exits = [event(200 + i, "StepExited", 500.0, schedule=i) for i in (1, 20, 21, 120)]
    manager.notify([("f", "big", exits)])
    assert metrics.step_seconds.series[("f",)][-2] == 0  # none past the last bound
    assert sum(metrics.step_seconds.series[("f",)][:-1]) == 2  # 21 and 120, not 1 or 20
    assert metrics.open_steps == 98


def test_tasks_past_the_cap_are_forgotten_with_their_kind():
    manager = manager_with({"enabled": True, "max_open_steps": 100})
    metrics = metrics_of(manager)
    scheduled = [
        event(i, "TaskScheduled", 0.0, resource="r", pattern="requestResponse")
        for i in range(1, 102)
    ]
    manager.notify([("f", "many", scheduled)])
    assert metrics.open_tasks == 100 and metrics.forgotten_tasks == 1
    state = metrics._open["f", "many"]
    assert sorted(state.tasks) == sorted(state.kinds) == list(range(2, 102))
    # Every attempt ended: nothing is in flight, and the execution is let go.
    manager.notify(
        [("f", "many", [event(200 + i, "TaskSucceeded", 1.0, schedule=i) for i in range(1, 102)])]
    )
    assert metrics.open_tasks == 0 and not metrics._open
    text = metrics.exposition().decode()
    labels = {"flow": "f", "resource": "r", "pattern": "requestResponse", "outcome": "succeeded"}
    assert value(text, "relayflow_task_attempt_duration_seconds_count", **labels) == 100


def test_task_labels_found_without_the_cache():
    manager = manager_with({"enabled": True, "max_resources": 1})
    metrics = metrics_of(manager)
    long_pattern = "p" * 50

    def step(first: int, **detail: object) -> list[HistoryEvent]:
        events = task_step(first, 0.0, 1.0, "TaskSucceeded")
        events[1] = HistoryEvent(first + 1, first, "TaskScheduled", "s", 0.0, dict(detail))
        return events

    manager.notify(
        [
            ("f", "a", step(1, resource="r1", pattern="requestResponse")),
            ("f", "b", step(1, resource="r2", pattern="requestResponse")),  # past the limit
            ("f", "c", step(1, resource="r1", pattern=long_pattern)),  # cut to 40 characters
            ("f", "d", step(1, resource=None, pattern=None)),  # neither is a string
            ("f", "e", step(1)),  # neither is there
        ]
    )
    series = set(metrics.task_seconds.series)
    assert series == {
        ("f", "r1", "requestResponse", "succeeded"),
        ("f", "(other)", "requestResponse", "succeeded"),
        ("f", "r1", "p" * 40, "succeeded"),
        ("f", "(other)", "", "succeeded"),  # "" is a resource too, past the limit
    }
    assert metrics.malformed == 0
