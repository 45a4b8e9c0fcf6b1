"""The server's metrics: one registry of its own, fed by relayflow's hooks.

`ServerMetrics` is registered as a plugin object only when `[prometheus] enabled = true`; its
methods are the hooks. They run on the engine's event loop, several times a step, so they do
as little as they can: the history of a whole store transaction comes in one call
(`relayflow_history_committed`) and is read in one plain loop, and counters and histograms are
dictionary updates (see `families`), turned into metric families only when scraped. What the
hook keeps of steps and tasks in flight is held per execution in dictionaries of plain numbers,
which the garbage collector does not walk, and a dispatched task request is only queued, to be
counted with the next transaction's history or at the next scrape. Nothing here blocks or does
I/O. The waiting-task gauges are read from the store in the background (see `waiting`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

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

_ENDED = {
    "ExecutionSucceeded": "Succeeded",
    "ExecutionFailed": "Failed",
    "ExecutionTimedOut": "TimedOut",
    "ExecutionStopped": "Stopped",
}
# What the history hook does with each event type; a type not here is passed over. Those
# below _EXECUTION_STARTED concern steps and task attempts in flight; a task attempt's
# outcomes are _TASK_ENDED + their index in _OUTCOMES.
_STEP_ENTERED, _TASK_SCHEDULED, _STEP_EXITED, _TASK_ENDED = 1, 2, 3, 4
_EXECUTION_STARTED, _EXECUTION_ENDED = 7, 8
_OUTCOMES = ("succeeded", "failed", "timed_out")
_WATCHED = {
    "StepEntered": _STEP_ENTERED,
    "TaskScheduled": _TASK_SCHEDULED,
    "TaskSucceeded": _TASK_ENDED,
    "TaskFailed": _TASK_ENDED + 1,
    "TaskTimedOut": _TASK_ENDED + 2,
    "StepExited": _STEP_EXITED,
    "ExecutionStarted": _EXECUTION_STARTED,
    **dict.fromkeys(_ENDED, _EXECUTION_ENDED),
}
#: Dispatched task requests queued past this many are counted at once (normally the next
#: transaction's history counts them first).
_MAX_QUEUED = 10_000


class _Open:
    """What one execution has in flight: its open steps and task attempts, by event id.

    Only ints and floats: dictionaries of them are not tracked by the garbage collector, so
    thousands of steps in flight cost it nothing.
    """

    __slots__ = ("kinds", "steps", "tasks")

    def __init__(self) -> None:
        #: StepEntered's event id -> its time.
        self.steps: dict[int, float] = {}
        #: TaskScheduled's event id -> its time.
        self.tasks: dict[int, float] = {}
        #: TaskScheduled's event id -> its (resource, pattern) labels' index in `_kinds`.
        self.kinds: dict[int, int] = {}


class _Flow:
    """A flow label's step and task duration series, found once per execution and batch."""

    __slots__ = ("label", "steps", "tasks")

    def __init__(self, label: str) -> None:
        self.label = label
        #: Its step_seconds series, made when its first step is timed.
        self.steps: list[float] | None = None
        #: Its task_seconds series by kind * 4 + the outcome's index, made when first used.
        self.tasks: dict[int, list[float]] = {}


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
        #: Each execution with steps or task attempts in flight, the oldest first.
        self._open: dict[tuple[str, str], _Open] = {}
        #: Steps and task attempts in flight, over all executions.
        self.open_steps = 0
        self.open_tasks = 0
        #: Past `max_open_steps` of either, the oldest executions' are forgotten (not timed).
        self._max_open = settings.max_open_steps
        self.forgotten_steps = 0
        self.forgotten_tasks = 0
        #: The (resource, pattern) labels of task attempts, numbered in `_kinds`' order.
        self._kinds: dict[tuple[str, str], int] = {}
        self._kind_labels: list[tuple[str, str]] = []
        #: Each flow label's series. A flow name that is its own label finds them with one
        #: look-up; "(other)" cannot be a flow name, so it never finds another's.
        self._flows: dict[str, _Flow] = {}
        #: Dispatched task requests not counted yet: (resource, lag or None).
        self._dispatched: list[tuple[str, float | None]] = []
        #: History events and dispatches no metric could be made of (the first is logged).
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
            settle=self._count_dispatched,
            families=[
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
            ],
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
        lock, instead of a hook call an event. Types no metric needs cost one look-up; what an
        execution has in flight, its flow label and its series are looked up once for all of
        its events in the transaction. The task requests dispatched since the last call are
        counted first.
        """
        watched = _WATCHED.get
        open_executions = self._open
        flows = self._flows
        kinds = self._kinds.get
        bounds = self.step_seconds.bounds  # both histograms have the duration buckets
        steps_opened = tasks_opened = 0  # the change in steps and tasks in flight
        last_name, last_flow = "", None  # the last execution's flow, often the next one's
        with self._lock:
            if self._dispatched:
                self._count_dispatched()
            for flow_name, execution_name, events in history.executions:
                state = None  # what the execution has in flight, looked up when first needed
                # Its flow's label and series when the name is its own label (a look-up
                # that admits no label), else found when first needed.
                if flow_name is not last_name:
                    last_name, last_flow = flow_name, flows.get(flow_name)
                flow = last_flow
                for event in events:
                    try:
                        what = watched(event.type)
                        if what is None:
                            continue
                        if what < _EXECUTION_STARTED:  # a step or a task attempt
                            if state is None:
                                key = (flow_name, execution_name)
                                state = open_executions.get(key)
                                if state is None:
                                    state = open_executions[key] = _Open()
                            if what is _STEP_ENTERED:
                                state.steps[event.event_id] = event.time
                                steps_opened += 1
                            elif what is _TASK_SCHEDULED:
                                detail = event.detail
                                kind = kinds(
                                    (detail.get("resource", ""), detail.get("pattern", ""))
                                )
                                if kind is None:
                                    kind = self._kind(detail)
                                state.kinds[event.event_id] = kind
                                state.tasks[event.event_id] = event.time
                                tasks_opened += 1
                            elif what is _STEP_EXITED:  # it names its StepEntered as schedule
                                start = state.steps.pop(event.schedule_event_id, None)
                                if start is None:
                                    continue
                                steps_opened -= 1
                                if flow is None:
                                    flow = last_flow = self._flow_of(flow_name)
                                step_counts = flow.steps
                                if step_counts is None:
                                    step_counts = flow.steps = self.step_seconds.counts(
                                        (flow.label,)
                                    )
                                # PlainHistogram.observe, inline: this runs for every step
                                # (`x if x > 0.0 else 0.0` is max(0.0, x), NaN included).
                                seconds = event.time - start
                                seconds = seconds if seconds > 0.0 else 0.0
                                step_counts[bisect_left(bounds, seconds)] += 1
                                step_counts[-1] += seconds
                            else:  # a task attempt's outcome, named by its TaskScheduled
                                scheduled = event.schedule_event_id
                                start = state.tasks.pop(scheduled, None)
                                if start is None:
                                    continue
                                tasks_opened -= 1
                                code = state.kinds.pop(scheduled) * 4 + what - _TASK_ENDED
                                if flow is None:
                                    flow = last_flow = self._flow_of(flow_name)
                                task_counts = flow.tasks.get(code)
                                if task_counts is None:
                                    task_counts = flow.tasks[code] = self._task_counts(flow, code)
                                seconds = event.time - start
                                seconds = seconds if seconds > 0.0 else 0.0
                                task_counts[bisect_left(bounds, seconds)] += 1
                                task_counts[-1] += seconds
                        elif what is _EXECUTION_STARTED:
                            if flow is None:
                                flow = last_flow = self._flow_of(flow_name)
                            self.started.inc((flow.label,))
                        else:
                            if flow is None:
                                flow = last_flow = self._flow_of(flow_name)
                            self.ended.inc((flow.label, _ENDED[event.type]))
                    except Exception:  # only this event's metric is lost
                        self._malformed(
                            f"{getattr(event, 'type', '?')} event of "
                            f"{flow_name!r}/{execution_name!r}"
                        )
                if state is not None and not state.steps and not state.tasks:
                    del open_executions[flow_name, execution_name]  # nothing in flight
            self.open_steps += steps_opened
            self.open_tasks += tasks_opened
            if self.open_steps > self._max_open or self.open_tasks > self._max_open:
                self._forget_oldest()

    def _flow_of(self, flow_name: str) -> _Flow:
        """The series of ``flow_name``'s bounded label, made when first asked for."""
        label = self._flow(flow_name)
        flow = self._flows.get(label)
        if flow is None:
            flow = self._flows[label] = _Flow(label)
        return flow

    def _kind(self, detail: dict[str, Any]) -> int:
        """The number of a task attempt's (resource, pattern) labels, numbered when first met.

        `_kinds` holds each number under its labels, which are also the raw values they stand
        for when those are their own labels: the history hook finds those with one look-up
        of the raw values, and comes here for the others.
        """
        resource = detail.get("resource")
        pattern = detail.get("pattern")
        labels = (
            self._resource(resource if isinstance(resource, str) else ""),
            pattern[:40] if isinstance(pattern, str) else "",  # one of three words; cut the odd
        )
        kind = self._kinds.get(labels)
        if kind is None:
            kind = self._kinds[labels] = len(self._kind_labels)
            self._kind_labels.append(labels)
        return kind

    def _task_counts(self, flow: _Flow, code: int) -> list[float]:
        """The task duration series of ``flow`` for ``code`` (kind * 4 + outcome index)."""
        kind, outcome = divmod(code, 4)
        resource, pattern = self._kind_labels[kind]
        return self.task_seconds.counts((flow.label, resource, pattern, _OUTCOMES[outcome]))

    def _forget_oldest(self) -> None:
        """Forget steps and task attempts in flight past `max_open_steps`, oldest first.

        The oldest execution's go first (dicts keep insertion order), until both counts are
        within the limit.
        """
        limit = self._max_open
        open_executions = self._open
        while open_executions and (self.open_steps > limit or self.open_tasks > limit):
            key = next(iter(open_executions))
            state = open_executions[key]
            # A kind over the limit if this execution has one in flight, else the other.
            if state.steps and (self.open_steps > limit or not state.tasks):
                del state.steps[next(iter(state.steps))]
                self.open_steps -= 1
                self.forgotten_steps += 1
            else:
                task = next(iter(state.tasks))
                del state.tasks[task]
                state.kinds.pop(task, None)
                self.open_tasks -= 1
                self.forgotten_tasks += 1
            if not state.steps and not state.tasks:
                del open_executions[key]
        if not open_executions:  # the counts are kept by difference: keep them honest
            self.open_steps = self.open_tasks = 0

    def _malformed(self, what: str) -> None:
        """Count a history event or a dispatch no metric could be made of; log the first."""
        self.malformed += 1
        if self.malformed == 1:
            log.warning(
                "relayflow-prometheus: skipped a malformed %s "
                "(logged once; later ones are only counted)",
                what,
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
        """Queue a dispatched task request, to be counted with the next history or scrape.

        This runs for every task request: an append is all it does on the engine's loop (a
        list's append is atomic, so no lock), and `_count_dispatched` bounds the labels and
        finds the buckets for a whole batch at once.
        """
        queued = self._dispatched
        queued.append((resource, lag_seconds))
        if len(queued) > _MAX_QUEUED:  # nobody counted them for long: do it now
            with self._lock:
                self._count_dispatched()

    def _count_dispatched(self) -> None:
        """Count the queued task requests and their lags (under the lock), in their order.

        Requests queued meanwhile (from another thread) stay queued for the next time: only
        the first ``n`` are taken, and deleting them leaves the ones appended since.
        """
        queued = self._dispatched
        n = len(queued)
        if not n:
            return
        batch = queued[:n]
        del queued[:n]
        # Per resource first (in the order met, so series are made in the order dispatched),
        # then one label and one counter update per resource: taken-over requests under a
        # 1-tuple key, own ones under the plain name.
        counts: dict[str | tuple[str], int] = {}
        lag = self._outbox_lag_counts
        bounds = self.outbox_lag.bounds
        for resource, lag_seconds in batch:
            try:
                if lag_seconds is None:  # claimed from the store: taken over, no lag
                    key: str | tuple[str] = (resource,)
                else:
                    seconds = lag_seconds if lag_seconds > 0.0 else 0.0  # max(0.0, lag)
                    key = resource
                    lag[bisect_left(bounds, seconds)] += 1
                    lag[-1] += seconds
                counts[key] = counts.get(key, 0) + 1
            except Exception:  # not a number: this request is not counted
                self._malformed(f"dispatch of {resource!r} (lag {lag_seconds!r})")
        dispatched = self.outbox_dispatched
        for key, count in counts.items():
            try:
                if isinstance(key, tuple):
                    dispatched.inc((self._resource(key[0]), "1"), count)
                else:
                    dispatched.inc((self._resource(key), "0"), count)
            except Exception:  # not a string: these requests are not counted
                self._malformed(f"dispatch of {key!r}")

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
