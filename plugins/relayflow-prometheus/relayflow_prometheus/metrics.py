"""The server's metrics: one registry of its own, fed by relayflow's hooks.

`ServerMetrics` is registered as a plugin object only when `[prometheus] enabled = true`; its
methods are the hooks. They run on the engine's event loop, several times a step, so they do
as little as they can: the history of a whole store transaction comes in one call
(`relayflow_history_committed`) and is read in one plain loop, and counters and histograms are
dictionary updates (see `families`), turned into metric families only when scraped. Nothing
here blocks or does I/O. The waiting-task gauges are read from the store in the background
(see `waiting`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)

from relayflow.plugins import hookimpl
from relayflow_prometheus.families import Families, PlainCounter, PlainHistogram
from relayflow_prometheus.labels import BoundedLabel
from relayflow_prometheus.waiting import WaitingCollector

if TYPE_CHECKING:
    from relayflow.engine import Engine
    from relayflow.plugins.events import ApiRequestEvent, CommitEvent, CommittedHistory
    from relayflow.plugins.hookspecs import RouteRegister
    from relayflow_prometheus.settings import PrometheusSettings

__all__ = ["ServerMetrics"]

log = logging.getLogger("relayflow_prometheus")

_TASK_OUTCOMES = {"TaskSucceeded": "succeeded", "TaskFailed": "failed", "TaskTimedOut": "timed_out"}
_ENDED = {
    "ExecutionSucceeded": "Succeeded",
    "ExecutionFailed": "Failed",
    "ExecutionTimedOut": "TimedOut",
    "ExecutionStopped": "Stopped",
}
# What the history hook does with each event type; a type not here is passed over.
_STEP_ENTERED, _TASK_SCHEDULED, _TASK_ENDED, _STEP_EXITED = 1, 2, 3, 4
_EXECUTION_STARTED, _EXECUTION_ENDED = 5, 6
_WATCHED = {
    "StepEntered": _STEP_ENTERED,
    "TaskScheduled": _TASK_SCHEDULED,
    **dict.fromkeys(_TASK_OUTCOMES, _TASK_ENDED),
    "StepExited": _STEP_EXITED,
    "ExecutionStarted": _EXECUTION_STARTED,
    **dict.fromkeys(_ENDED, _EXECUTION_ENDED),
}
_Key = tuple[str, str, int]  # (flow, execution, event id): no label, only a memory key
_V = TypeVar("_V")


class _OpenStarts(Generic[_V]):
    """Start times of steps and task attempts until they end, the oldest forgotten past a cap.

    The history hook writes `items` itself (a method call an event shows on the engine's
    loop), then calls `forget_oldest` when it holds more than `limit`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: dict[_Key, _V] = {}
        self.forgotten = 0

    def forget_oldest(self) -> None:
        """Drop the oldest entries past `limit` (dicts keep insertion order)."""
        items = self.items
        while len(items) > self.limit:
            del items[next(iter(items))]
            self.forgotten += 1

    def __len__(self) -> int:
        return len(self.items)


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
        #: When each open step was entered.
        self._steps: _OpenStarts[float] = _OpenStarts(settings.max_open_steps)
        #: When each open task attempt was scheduled, with its resource and pattern.
        self._tasks: _OpenStarts[tuple[float, str, str]] = _OpenStarts(settings.max_open_steps)
        #: History events no metric could be made of (the first is logged).
        self.malformed = 0
        self._refresher: asyncio.Task[None] | None = None
        durations = settings.duration_buckets()
        latencies = settings.latency_bounds()
        reg = self.registry
        ProcessCollector(registry=reg)
        self.started = PlainCounter(
            "relayflow_executions_started",
            "Executions started, by flow.",
            ["flow"],
        )
        self.ended = PlainCounter(
            "relayflow_executions_ended",
            "Executions ended, by flow and final status (Succeeded, Failed, TimedOut, Stopped).",
            ["flow", "status"],
        )
        self.step_seconds = PlainHistogram(
            "relayflow_step_duration_seconds",
            "Time from a step's StepEntered to its StepExited, by flow.",
            ["flow"],
            durations,
        )
        self.task_seconds = PlainHistogram(
            "relayflow_task_attempt_duration_seconds",
            "Time from a task attempt's TaskScheduled to its outcome, by flow, resource, "
            "pattern and outcome (succeeded, failed, timed_out).",
            ["flow", "resource", "pattern", "outcome"],
            durations,
        )
        self.outbox_lag = PlainHistogram(
            "relayflow_outbox_lag_seconds",
            "Time from the commit that wrote a task request to its dispatch.",
            [],
            latencies,
        )
        self.outbox_dispatched = PlainCounter(
            "relayflow_outbox_dispatched",
            "Task requests that left the outbox, by resource; taken_over is 1 for requests "
            "this engine claimed from the store (after a restart, or another replica's).",
            ["resource", "taken_over"],
        )
        self.timer_lag = PlainHistogram(
            "relayflow_timer_lag_seconds",
            "How late a batch of timers fired (its earliest timer).",
            [],
            latencies,
        )
        self.timers_fired = PlainCounter(
            "relayflow_timers_fired",
            "Timers fired: waits, retry pauses and timeouts.",
        )
        self.commit_seconds = PlainHistogram(
            "relayflow_store_commit_duration_seconds",
            "Time of one writer transaction, from its start to its COMMIT answered, by store.",
            ["store"],
            latencies,
        )
        self.commit_jobs = PlainHistogram(
            "relayflow_store_commit_jobs",
            "Jobs carried by one writer transaction (its group-commit batch size), by store.",
            ["store"],
            (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.api_requests = PlainCounter(
            "relayflow_api_requests",
            "RPC requests answered, by action, HTTP status code and error code ('' on success).",
            ["action", "code", "error"],
        )
        self.api_seconds = PlainHistogram(
            "relayflow_api_request_duration_seconds",
            "Time from an RPC request's arrival to its answer, by action.",
            ["action"],
            latencies,
        )
        self.families = Families(
            [
                self.started,
                self.ended,
                self.step_seconds,
                self.task_seconds,
                self.outbox_lag,
                self.outbox_dispatched,
                self.timer_lag,
                self.timers_fired,
                self.commit_seconds,
                self.commit_jobs,
                self.api_requests,
                self.api_seconds,
            ]
        )
        reg.register(self.families)
        self._outbox_lag_counts = self.outbox_lag.counts(())
        self._lock = self.families.lock
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
    def relayflow_history_committed(self, history: CommittedHistory) -> None:
        """Count executions started and ended, and time steps and task attempts.

        One call a store transaction: a plain loop over its events, under one hold of the
        lock, instead of a hook call an event. Types no metric needs cost one look-up.
        """
        watched = _WATCHED.get
        steps, tasks = self._steps, self._tasks
        entered_at, scheduled_at = steps.items, tasks.items
        step_seconds, task_seconds = self.step_seconds, self.task_seconds
        bounds = step_seconds.bounds  # both histograms have the duration buckets
        with self._lock:
            for flow_name, execution_name, events in history.executions:
                flow = None  # the execution's bounded flow label, looked up when first needed
                step_counts = None  # its step_seconds series, likewise
                for event in events:
                    try:
                        what = watched(event.type)
                        if what is None:
                            continue
                        if what is _STEP_ENTERED:
                            entered_at[flow_name, execution_name, event.event_id] = event.time
                            if len(entered_at) > steps.limit:
                                steps.forget_oldest()
                        elif what is _TASK_SCHEDULED:
                            detail = event.detail
                            resource = detail.get("resource")
                            pattern = detail.get("pattern")
                            scheduled_at[flow_name, execution_name, event.event_id] = (
                                event.time,
                                resource if isinstance(resource, str) else "",
                                pattern if isinstance(pattern, str) else "",
                            )
                            if len(scheduled_at) > tasks.limit:
                                tasks.forget_oldest()
                        elif what is _STEP_EXITED:  # it names its StepEntered as schedule event
                            start = entered_at.pop(
                                (flow_name, execution_name, event.schedule_event_id), None
                            )
                            if start is not None:
                                if step_counts is None:
                                    if flow is None:
                                        flow = self._flow(flow_name)
                                    step_counts = step_seconds.counts((flow,))
                                # PlainHistogram.observe, inline: this runs for every step.
                                seconds = max(0.0, event.time - start)
                                step_counts[bisect_left(bounds, seconds)] += 1
                                step_counts[-1] += seconds
                        elif what is _EXECUTION_STARTED:
                            if flow is None:
                                flow = self._flow(flow_name)
                            self.started.inc((flow,))
                        elif what is _EXECUTION_ENDED:
                            if flow is None:
                                flow = self._flow(flow_name)
                            self.ended.inc((flow, _ENDED[event.type]))
                        else:  # a task attempt's outcome
                            task = scheduled_at.pop(
                                (flow_name, execution_name, event.schedule_event_id), None
                            )
                            if task is not None:
                                if flow is None:
                                    flow = self._flow(flow_name)
                                scheduled, resource, pattern = task
                                task_counts = task_seconds.counts(
                                    (
                                        flow,
                                        self._resource(resource),
                                        pattern[:40],  # one of three words; cut anything odd
                                        _TASK_OUTCOMES[event.type],
                                    )
                                )
                                seconds = max(0.0, event.time - scheduled)
                                task_counts[bisect_left(bounds, seconds)] += 1
                                task_counts[-1] += seconds
                    except Exception:  # only this event's metric is lost
                        self._malformed(flow_name, execution_name, event)

    def _malformed(self, flow_name: object, execution_name: object, event: object) -> None:
        """Count an event no metric could be made of; log the first one."""
        self.malformed += 1
        if self.malformed == 1:
            log.warning(
                "relayflow-prometheus: skipped a malformed %s event of %r/%r "
                "(logged once; later ones are only counted)",
                getattr(event, "type", "?"),
                flow_name,
                execution_name,
                exc_info=True,
            )

    # -- the engine's own work ----------------------------------------------------------------

    @hookimpl
    def relayflow_batch_committed(self, batch: CommitEvent) -> None:
        """Time a writer transaction and count its jobs."""
        key = (batch.store[:20],)
        with self._lock:
            self.commit_seconds.observe(key, batch.seconds)
            self.commit_jobs.observe(key, batch.jobs)

    @hookimpl
    def relayflow_outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        """Count a dispatched task request and its lag (when it is this engine's own)."""
        label = self._resource(resource)
        with self._lock:
            if lag_seconds is None:  # claimed from the store: taken over, no lag
                self.outbox_dispatched.inc((label, "1"))
                return
            self.outbox_dispatched.inc((label, "0"))
            # PlainHistogram.observe, inline: this runs for every task request.
            seconds = max(0.0, lag_seconds)
            lag = self._outbox_lag_counts
            lag[bisect_left(self.outbox_lag.bounds, seconds)] += 1
            lag[-1] += seconds

    @hookimpl
    def relayflow_timers_fired(self, count: int, lag_seconds: float) -> None:
        """Count fired timers and how late the batch was."""
        if count < 0:
            raise ValueError(f"a negative count of fired timers: {count}")
        with self._lock:
            self.timers_fired.inc((), count)
            self.timer_lag.observe((), max(0.0, lag_seconds))

    @hookimpl
    def relayflow_api_request_finished(self, request: ApiRequestEvent) -> None:
        """Count an answered RPC request and time it."""
        action = request.action[:64]  # the server already maps unknown actions to Unknown
        key = (action, str(request.status), self._error(request.code))
        with self._lock:
            self.api_requests.inc(key)
            self.api_seconds.observe((action,), request.seconds)
