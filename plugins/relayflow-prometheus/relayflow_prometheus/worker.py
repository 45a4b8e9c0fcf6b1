"""The worker side of relayflow-prometheus: `relayflow worker --metrics-port PORT`.

Loaded by every `relayflow worker` (entry point group `relayflow.worker`), it does nothing until
the worker asks it to serve metrics: then it starts prometheus_client's HTTP server on the given
host and port, in a daemon thread, with a registry of its own, and counts each handled message
by queue and outcome. Without `--metrics-port` every hook returns at once.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import start_http_server

from relayflow.worker.hooks import WorkerInfo, WorkerMessage, hookimpl
from relayflow_prometheus.constants import DEFAULT_BUCKETS, OTHER
from relayflow_prometheus.labels import BoundedLabel

__all__ = [
    "WorkerMetrics",
    "current",
    "relayflow_worker_message_handled",
    "relayflow_worker_serve_metrics",
    "relayflow_worker_started",
]

log = logging.getLogger("relayflow_prometheus")

#: Distinct queues and outcome words counted; past them the label is "(other)".
MAX_QUEUES = 100
MAX_OUTCOMES = 20
_OUTCOME = re.compile(r"[a-z][a-z_-]{0,31}")


@dataclass
class WorkerMetrics:
    """The registry of one worker process and its metrics."""

    registry: CollectorRegistry
    messages: Counter
    seconds: Histogram
    queue: BoundedLabel
    outcome: BoundedLabel

    @classmethod
    def build(cls) -> WorkerMetrics:
        """A fresh registry with the worker's metrics (and the process's own)."""
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        messages = Counter(
            "relayflow_worker_messages_total",
            "Task messages handled, by queue and outcome (succeeded, failed, settled, kept...).",
            ["queue", "outcome"],
            registry=registry,
        )
        seconds = Histogram(
            "relayflow_worker_message_duration_seconds",
            "Time from a message's receipt to its report, by queue.",
            ["queue"],
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )
        return cls(
            registry, messages, seconds, BoundedLabel(MAX_QUEUES), BoundedLabel(MAX_OUTCOMES)
        )

    def handled(self, queue: str, outcome: str, seconds: float) -> None:
        """Count one handled message."""
        label = self.queue(queue)
        word = self.outcome(outcome) if _OUTCOME.fullmatch(outcome) else OTHER
        self.messages.labels(label, word).inc()
        self.seconds.labels(label).observe(max(0.0, seconds))


_lock = threading.Lock()
_metrics: WorkerMetrics | None = None


def current() -> WorkerMetrics | None:
    """The metrics being served in this process, or None when none are."""
    return _metrics


@hookimpl
def relayflow_worker_serve_metrics(host: str, port: int) -> bool | None:
    """Serve the worker's metrics on ``host``:``port``; True once they are served."""
    global _metrics
    with _lock:
        if _metrics is not None:
            return True  # one registry and one server per process
        metrics = WorkerMetrics.build()
        try:
            start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as exc:
            log.error("relayflow-prometheus cannot serve metrics on %s:%s: %s", host, port, exc)
            return None
        _metrics = metrics
    log.info("relayflow-prometheus serving worker metrics on http://%s:%s/metrics", host, port)
    return True


@hookimpl
def relayflow_worker_started(worker: WorkerInfo) -> None:
    """Show every served queue at zero, so that rates start from the first message."""
    metrics = _metrics
    if metrics is None:
        return
    for queue in worker.queues:
        label = metrics.queue(queue)
        metrics.messages.labels(label, "succeeded")
        metrics.seconds.labels(label)


@hookimpl
def relayflow_worker_message_handled(message: WorkerMessage, outcome: str, seconds: float) -> None:
    """Count a handled message by queue and outcome, and time it."""
    metrics = _metrics
    if metrics is not None:
        metrics.handled(message.queue, outcome, seconds)
