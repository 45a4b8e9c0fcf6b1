"""The server's metrics: one registry of its own, fed by relayflow's hooks.

`ServerMetrics` is registered as a plugin object only when `[prometheus] enabled = true`; its
methods are the hooks. Each hook does a dictionary look-up and a counter or histogram update,
which is quick enough for the engine's event loop: nothing here blocks or does I/O. The
waiting-task gauges are read from the store in the background (see `waiting`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from relayflow.plugins import hookimpl
from relayflow_prometheus.labels import BoundedLabel
from relayflow_prometheus.waiting import WaitingCollector

if TYPE_CHECKING:
    from relayflow.engine import Engine
    from relayflow.plugins.events import (
        ApiRequestEvent,
        CommitEvent,
        ExecutionEvent,
        StepEvent,
        TaskEvent,
    )
    from relayflow.plugins.hookspecs import RouteRegister
    from relayflow_prometheus.settings import PrometheusSettings

__all__ = ["ServerMetrics"]

log = logging.getLogger("relayflow_prometheus")

_TASK_OUTCOMES = {"TaskSucceeded": "succeeded", "TaskFailed": "failed", "TaskTimedOut": "timed_out"}
_Key = tuple[str, str, int]  # (flow, execution, event id): no label, only a memory key


class _OpenStarts:
    """Start times of steps and task attempts until they end, the oldest forgotten past a cap."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[_Key, tuple[float, str, str, str]] = {}
        self.forgotten = 0

    def add(self, key: _Key, value: tuple[float, str, str, str]) -> None:
        self._items[key] = value
        if len(self._items) > self._limit:  # dicts keep insertion order: drop the oldest
            del self._items[next(iter(self._items))]
            self.forgotten += 1

    def pop(self, key: _Key) -> tuple[float, str, str, str] | None:
        return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class ServerMetrics:
    """The metrics of one `relayflow server` (or any process running an engine with plugins).

    Args:
        settings: the validated `[prometheus]` table.
    """

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self._flow = BoundedLabel(settings.max_flows)
        self._resource = BoundedLabel(settings.max_resources)
        self._error = BoundedLabel(100)
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.allow_from]
        self._steps = _OpenStarts(settings.max_open_steps)
        self._tasks = _OpenStarts(settings.max_open_steps)
        self._refresher: asyncio.Task[None] | None = None
        durations = settings.duration_buckets()
        latencies = settings.latency_bounds()
        reg = self.registry
        ProcessCollector(registry=reg)
        self.started = Counter(
            "relayflow_executions_started_total",
            "Executions started, by flow.",
            ["flow"],
            registry=reg,
        )
        self.ended = Counter(
            "relayflow_executions_ended_total",
            "Executions ended, by flow and final status (Succeeded, Failed, TimedOut, Stopped).",
            ["flow", "status"],
            registry=reg,
        )
        self.step_seconds = Histogram(
            "relayflow_step_duration_seconds",
            "Time from a step's StepEntered to its StepExited, by flow.",
            ["flow"],
            buckets=durations,
            registry=reg,
        )
        self.task_seconds = Histogram(
            "relayflow_task_attempt_duration_seconds",
            "Time from a task attempt's TaskScheduled to its outcome, by flow, resource, "
            "pattern and outcome (succeeded, failed, timed_out).",
            ["flow", "resource", "pattern", "outcome"],
            buckets=durations,
            registry=reg,
        )
        self.outbox_lag = Histogram(
            "relayflow_outbox_lag_seconds",
            "Time from the commit that wrote a task request to its dispatch.",
            buckets=latencies,
            registry=reg,
        )
        self.outbox_dispatched = Counter(
            "relayflow_outbox_dispatched_total",
            "Task requests that left the outbox, by resource; taken_over is 1 for requests "
            "this engine claimed from the store (after a restart, or another replica's).",
            ["resource", "taken_over"],
            registry=reg,
        )
        self.timer_lag = Histogram(
            "relayflow_timer_lag_seconds",
            "How late a batch of timers fired (its earliest timer).",
            buckets=latencies,
            registry=reg,
        )
        self.timers_fired = Counter(
            "relayflow_timers_fired_total",
            "Timers fired: waits, retry pauses and timeouts.",
            registry=reg,
        )
        self.commit_seconds = Histogram(
            "relayflow_store_commit_duration_seconds",
            "Time of one writer transaction, from its start to its COMMIT answered, by store.",
            ["store"],
            buckets=latencies,
            registry=reg,
        )
        self.commit_jobs = Histogram(
            "relayflow_store_commit_jobs",
            "Jobs carried by one writer transaction (its group-commit batch size), by store.",
            ["store"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=reg,
        )
        self.api_requests = Counter(
            "relayflow_api_requests_total",
            "RPC requests answered, by action, HTTP status code and error code ('' on success).",
            ["action", "code", "error"],
            registry=reg,
        )
        self.api_seconds = Histogram(
            "relayflow_api_request_duration_seconds",
            "Time from an RPC request's arrival to its answer, by action.",
            ["action"],
            buckets=latencies,
            registry=reg,
        )
        self.waiting = WaitingCollector(
            self._flow,
            self._resource,
            interval=settings.waiting_refresh_seconds,
            max_pages=settings.waiting_max_pages,
        )
        reg.register(self.waiting)

    # -- serving ------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)

    def _allowed(self, scope: MutableMapping[str, Any]) -> bool:
        if not self._networks:
            return True
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:  # a Unix socket or an odd server: not a listed network
            return False
        return any(address in network for network in self._networks)

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """The scrape endpoint: `GET` (or `HEAD`) answers the text exposition format."""
        if scope.get("type") != "http":
            return
        if not self._allowed(scope):
            status, body, kind = 403, b"metrics are not served to this address\n", "text/plain"
        else:
            # Rendering takes a few milliseconds with many series: keep it off the event loop.
            status, kind = 200, CONTENT_TYPE_LATEST
            body = await asyncio.to_thread(self.exposition)
        headers = [
            (b"content-type", kind.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})

    @hookimpl
    def relayflow_register_http_routes(self, register: RouteRegister) -> None:
        """Serve the metrics at `[prometheus] path`."""
        register(self.settings.path, self.asgi)

    # -- the engine ---------------------------------------------------------------------------

    @hookimpl
    def relayflow_engine_started(self, engine: Engine) -> None:
        """Start reading the waiting-task gauges in the background."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # started outside a loop: the waiting gauges stay empty
            log.warning("relayflow-prometheus: no event loop, waiting-task gauges are off")
            return
        if self._refresher is not None:
            self._refresher.cancel()
        self._refresher = loop.create_task(self.waiting.run(engine))

    @hookimpl
    def relayflow_engine_stopping(self) -> None:
        """Stop the background read."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    @hookimpl
    def relayflow_execution_started(self, execution: ExecutionEvent) -> None:
        """Count an execution started."""
        self.started.labels(self._flow(execution.flow_name)).inc()

    @hookimpl
    def relayflow_execution_finished(self, execution: ExecutionEvent) -> None:
        """Count an execution ended, by status."""
        self.ended.labels(self._flow(execution.flow_name), execution.status).inc()

    @hookimpl
    def relayflow_step_entered(self, step: StepEvent) -> None:
        """Remember when a step was entered."""
        key = (step.flow_name, step.execution_name, step.event.event_id)
        self._steps.add(key, (step.event.time, "", "", ""))

    @hookimpl
    def relayflow_step_exited(self, step: StepEvent) -> None:
        """Time a step from its entry (StepExited names it as its schedule event)."""
        key = (step.flow_name, step.execution_name, step.event.schedule_event_id)
        start = self._steps.pop(key)
        if start is not None:
            seconds = max(0.0, step.event.time - start[0])
            self.step_seconds.labels(self._flow(step.flow_name)).observe(seconds)

    @hookimpl
    def relayflow_task_scheduled(self, task: TaskEvent) -> None:
        """Remember when a task attempt was scheduled, with its resource and pattern."""
        detail = task.detail
        resource = detail.get("resource")
        pattern = detail.get("pattern")
        self._tasks.add(
            (task.flow_name, task.execution_name, task.task_id),
            (
                task.event.time,
                resource if isinstance(resource, str) else "",
                pattern if isinstance(pattern, str) else "",
                "",
            ),
        )

    @hookimpl
    def relayflow_task_completed(self, task: TaskEvent) -> None:
        """Time a task attempt from its scheduling to its outcome."""
        start = self._tasks.pop((task.flow_name, task.execution_name, task.task_id))
        if start is None:
            return
        time, resource, pattern, _ = start
        self.task_seconds.labels(
            self._flow(task.flow_name),
            self._resource(resource),
            pattern[:40],  # a pattern is one of three words; cut anything odd
            _TASK_OUTCOMES.get(task.type, "other"),
        ).observe(max(0.0, task.event.time - time))

    # -- the engine's own work ----------------------------------------------------------------

    @hookimpl
    def relayflow_batch_committed(self, batch: CommitEvent) -> None:
        """Time a writer transaction and count its jobs."""
        store = batch.store[:20]
        self.commit_seconds.labels(store).observe(batch.seconds)
        self.commit_jobs.labels(store).observe(batch.jobs)

    @hookimpl
    def relayflow_outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        """Count a dispatched task request and its lag (when it is this engine's own)."""
        taken_over = lag_seconds is None
        self.outbox_dispatched.labels(self._resource(resource), "1" if taken_over else "0").inc()
        if lag_seconds is not None:
            self.outbox_lag.observe(max(0.0, lag_seconds))

    @hookimpl
    def relayflow_timers_fired(self, count: int, lag_seconds: float) -> None:
        """Count fired timers and how late the batch was."""
        self.timers_fired.inc(count)
        self.timer_lag.observe(max(0.0, lag_seconds))

    @hookimpl
    def relayflow_api_request_finished(self, request: ApiRequestEvent) -> None:
        """Count an answered RPC request and time it."""
        action = request.action[:64]  # the server already maps unknown actions to Unknown
        self.api_requests.labels(action, str(request.status), self._error(request.code)).inc()
        self.api_seconds.labels(action).observe(request.seconds)
