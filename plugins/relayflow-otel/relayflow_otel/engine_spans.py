"""The engine's spans: one trace per execution, built from the lifecycle hooks alone.

`EngineTracer` is the hook object `relayflow_configure` registers when tracing is on. It keeps,
per running execution this process has seen, the spans that are open (the root, the steps
entered and not yet exited, the task attempts scheduled and not yet completed) and exports each
span when it ends, its start taken from the history event that opened it.

Ids come from `relayflow_otel.ids`, so a process that meets an execution in the middle (after a
restart, or a replica that receives the report of a task another replica dispatched) reads the
execution's history once through `Engine.get_execution_history`, replays it to learn what is
open, and goes on in the same trace. Reads run as tasks on the engine's loop, a few at a time
(`relayflow_otel.engine_reads`); a hook itself never waits.

Where a step nests: a step entered while no other step is open is a child of the root. One
entered while others are open (inside a parallel, foreach or choice step) is a child of the
innermost open step that encloses it in the definition, which is read once per execution
(`Engine.describe_execution`) and only for such executions.

This module holds the hooks, their fast paths (`_live`, `_skim`) and which executions are
followed; what each event does on the general path is `relayflow_otel.engine_events`
(`EngineEvents`), and the reads `relayflow_otel.engine_reads` (`EngineReads`), both parts of
`EngineTracer`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from relayflow.plugins import CommittedHistory, hookimpl
from relayflow_otel.engine_events import EngineEvents
from relayflow_otel.engine_reads import EngineReads
from relayflow_otel.engine_state import (
    CHILD_ACTION,
    CHILD_PREFIX,
    COMPLETIONS,
    ENDS,
    MAX_EXECUTIONS,
    MAX_OPEN,
    MAX_PENDING,
    MAX_SPAWNS,
    TRACED,
    ExecutionTrace,
    cause_text,
    child_flow,
    enclosing_steps,
    with_error,
)
from relayflow_otel.export import FinishedSpan
from relayflow_otel.exporter_process import STEP, TASK, rows
from relayflow_otel.ids import span_id_from, span_id_hex

if TYPE_CHECKING:
    from relayflow.engine import Engine
    from relayflow.engine.integration import TaskRequest

__all__ = ["MAX_EXECUTIONS", "EngineTracer", "enclosing_steps"]

log = logging.getLogger("relayflow.otel")

#: What `_skim` stops at in an execution not traced here: while it has no trace id, a start;
#: else a start (its name used again) or an end.
_STARTS = frozenset({"ExecutionStarted"})
_STARTS_OR_ENDS = _STARTS | ENDS


class EngineTracer(EngineEvents, EngineReads):
    """The hooks that turn an engine's history into spans."""

    def __init__(
        self,
        emit: Callable[[FinishedSpan], None] | None = None,
        sampling_ratio: float = 1.0,
        *,
        emit_records: Callable[[list[tuple[Any, ...]]], None] | None = None,
    ) -> None:
        """Trace into ``emit_records``, or else into ``emit``.

        Args:
            emit: takes each ended span, made here (a `SpanSink.emit`); must be quick.
            sampling_ratio: the share of executions traced, 0 to 1.
            emit_records: takes the ended spans of a hook call as the engine's records
                (`PipeSink.emit_records`, whose exporter process makes the spans); must be quick.
        """
        if emit_records is None:
            if emit is None:
                raise TypeError("EngineTracer needs emit or emit_records")
            self._emit = emit
            emit_records = self._emit_spans
        self._emit_records = emit_records
        self._ratio = sampling_ratio
        #: Records of ended spans, handed over at the end of each hook call or read.
        self._records: list[tuple[Any, ...]] = []
        #: The executions followed here, least recently active first, by name: under each name
        #: the latest execution of that name, those of other flows chained behind it
        #: (`ExecutionTrace.same_name`; `_find`). A name is a string that keeps its hash: a
        #: (flow, name) key would be a tuple made and hashed at every lookup, and the hooks look
        #: an execution up for every transaction and every task request.
        self._executions: OrderedDict[str, ExecutionTrace] = OrderedDict()
        #: How many executions `_executions` holds, chains included.
        self._followed = 0
        #: Executions that ended here, with what names their trace (a redrive goes on in it).
        #: Kept as tuples of plain values (`ExecutionTrace.ended`): thousands of them, left alone
        #: by the garbage collector.
        self._finished: OrderedDict[tuple[str, str], tuple[Any, ...]] = OrderedDict()
        self._engine: Engine | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reads: asyncio.Semaphore | None = None
        self._reads_loop: asyncio.AbstractEventLoop | None = None
        #: (parent flow, parent name) -> [(child flow, child name or "", trace, span)]: child
        #: flow attempts dispatched here, matched to the child's ExecutionStarted.
        self._spawns: OrderedDict[tuple[str, str], list[tuple[str, str, int, int]]] = OrderedDict()
        #: Events this plugin failed on (the first is logged with its traceback).
        self.failures = 0
        #: Called as the engine stops: sends what has ended (`SpanSink.flush`).
        self.on_stopping: Callable[[], object] | None = None
        #: Called by `close`: stops the export (`SpanSink.close`).
        self.on_close: Callable[[], object] | None = None

    def close(self) -> None:
        """Stop exporting (flushing first, a bounded time); for tests and embedding programs."""
        if self.on_close is not None:
            self.on_close()

    # -- the engine ---------------------------------------------------------------------------

    @hookimpl
    def relayflow_engine_started(self, engine: Engine) -> None:
        """Keep the engine, to read histories and definitions from it."""
        self._engine = engine

    @hookimpl
    def relayflow_engine_stopping(self, engine: Engine) -> None:
        """Send the spans that have ended (waiting a bounded time)."""
        if self.on_stopping is not None:
            self.on_stopping()
        if engine is self._engine:
            self._engine = None

    # -- the hooks ----------------------------------------------------------------------------

    @hookimpl
    def relayflow_history_committed(self, history: CommittedHistory) -> None:
        """Open and end spans as a transaction's history events say.

        An execution known here and not being read goes through a fast path (`_live` when
        sampled, else `_skim`) up to an event that path leaves to `_handle`; after that one
        the fast path goes on, if the execution allows it then.
        """
        executions = self._executions
        handle = self._handle
        traced = TRACED
        for flow, name, events in history.executions:
            count = len(events)
            index = 0
            while index < count:
                state = executions.get(name)
                if state is not None and state.flow != flow:
                    state = self._find(flow, name)
                if state is not None and state.pending is None:
                    executions.move_to_end(name)
                    if state.sampled:
                        index = self._live(state, events, index)
                    else:
                        index = self._skim(state, events, index)
                    if index >= count:
                        break
                event = events[index]
                index += 1
                try:  # free unless it raises: a bad event costs only its own spans
                    if event.type in traced:
                        handle(flow, name, event)
                except Exception:  # a bug here must neither stop the engine nor flood its log
                    self._failed(event)
        if self._records:
            self._flush()

    def _live(self, state: ExecutionTrace, events: Sequence[Any], start: int) -> int:
        """Apply ``events[start:]`` of a sampled execution in step, as `_handle` would, cheaply.

        The events every task step brings are applied inline, the execution's values read
        once: a method call and attribute loads for each would cost as much as the work
        itself, on the engine's loop. The rarer ones go to the methods `_apply` calls.

        Returns:
            The index of the first event left to `_handle`: one that starts the execution,
            ends it with spans open, or ends a span this process did not see open (all after
            it too); or the index after an end applied here (the execution is forgotten).
        """
        kind = None
        steps = state.steps
        tasks = state.tasks
        append = self._records.append
        trace, root, flow, name = state.trace, state.root, state.flow, state.name
        traced = TRACED
        for index in range(start, len(events)):
            event = events[index]
            try:
                kind = event.type
                if kind not in traced:
                    continue
                if kind == "StepEntered":
                    if steps:  # among open steps: `_step_entered` notes which
                        self._step_entered(state, event)
                    else:
                        steps[event.event_id] = (
                            event.step_name, event.time, root, (), None, (), 0, None, None, None
                        )  # fmt: skip
                elif kind == "TaskScheduled":
                    if len(tasks) < MAX_OPEN:
                        detail = event.detail
                        entered = event.schedule_event_id
                        tasks[event.event_id] = (
                            event.step_name, event.time, entered if entered else root, (), None,
                            (), entered, detail.get("resource", ""), detail.get("pattern", ""),
                            detail.get("attempt"),
                        )  # fmt: skip
                elif kind in COMPLETIONS:
                    scheduled = event.schedule_event_id
                    opened = tasks.pop(scheduled, None)
                    if opened is None:
                        return index  # maybe missed: `_handle` decides
                    error: tuple[str, str] | None = None
                    if kind != "TaskSucceeded":
                        detail = event.detail
                        error = (str(detail.get("error", "")), cause_text(detail.get("cause")))
                    step, begun, parent, _, _, submitted, entered, resource, pattern, attempt = (
                        opened
                    )
                    around = steps.get(entered)
                    if around is not None and around[4] != error:
                        steps[entered] = with_error(around, error)
                    append(
                        (TASK, trace, scheduled, parent, begun, event.time, flow, name, step,
                         error, 0, resource, pattern, attempt, submitted)
                    )  # fmt: skip
                elif kind == "StepExited":
                    entered = event.schedule_event_id
                    opened = steps.pop(entered, None)
                    if opened is None:
                        return index
                    if opened[2] is None:  # nested among open steps: `_end_step` finds where
                        self._end_step(state, entered, opened, event.time, 0)
                    else:
                        append(
                            (STEP, trace, entered, opened[2], opened[1], event.time, flow, name,
                             opened[0], opened[4], 0)
                        )  # fmt: skip
                elif kind == "TaskSubmitted":
                    self._task_submitted(state, event)
                elif kind in ENDS and not steps and not tasks:
                    # As `_handle` would (nothing open: nothing missed), without looking the
                    # execution up again. It is forgotten: what follows goes to `_handle`.
                    self._ended(state, event, True)
                    return index + 1
                else:  # the execution starts, or ends with spans open
                    return index
            except Exception:
                self._failed(event)
                if kind in ENDS:  # as `_handle` would: the execution looked up again after
                    return index + 1
        return len(events)

    @staticmethod
    def _skim(state: ExecutionTrace, events: Sequence[Any], start: int) -> int:
        """Skip ``events[start:]`` of an execution that is not traced, as `_handle` would.

        Returns:
            The index of the first event that may change that, left to `_handle`: a start
            (the name used again, or the start that could not be read), or an end (the
            execution is then forgotten), or one it cannot read.
        """
        wanted = _STARTS if state.unknown or not state.trace else _STARTS_OR_ENDS
        for index in range(start, len(events)):
            try:
                if events[index].type in wanted:
                    return index
            except Exception:  # `_handle` says so, once
                return index
        return len(events)

    @hookimpl
    def relayflow_prepare_task_request(self, request: TaskRequest) -> None:
        """Name the attempt's span in a W3C `traceparent` header of the request (in place)."""
        state = self._executions.get(request.execution_name)
        if state is not None and state.flow != request.flow_name:
            state = self._find(request.flow_name, request.execution_name)
        if state is None or not state.trace:
            return
        resource = request.resource
        if resource == CHILD_ACTION or resource.startswith(CHILD_PREFIX):
            self._spawning(state, request)
        span = span_id_hex(state.hasher, request.task_id)
        request.headers["traceparent"] = f"{state.before}{span}{state.after}"

    def _spawning(self, state: ExecutionTrace, request: TaskRequest) -> None:
        """Note the attempt that starts a child execution, to link the child's root span to."""
        child = child_flow(request)
        if child is not None:
            key = (request.flow_name, request.execution_name)
            span = span_id_from(state.hasher, request.task_id)
            self._spawns.setdefault(key, []).append((*child, state.trace, span))
            self._spawns.move_to_end(key)
            while len(self._spawns) > MAX_SPAWNS:
                self._spawns.popitem(last=False)

    def _spawned(self, parent: tuple[str, str], flow: str, name: str) -> tuple[int, int] | None:
        """The parent's attempt that started this child here: its name, else the oldest."""
        spawns = self._spawns.get(parent)
        if not spawns:
            return None
        candidates = [i for i, s in enumerate(spawns) if s[0] == flow and s[1] in (name, "")]
        if not candidates:
            return None
        named = [i for i in candidates if spawns[i][1] == name]
        _flow, _name, trace, span = spawns.pop((named or candidates)[0])
        if not spawns:
            del self._spawns[parent]
        return trace, span

    # -- the general path, and the hand-over of ended spans -----------------------------------

    def _failed(self, event: Any) -> None:
        self.failures += 1
        if self.failures == 1:
            kind = getattr(event, "type", "?")
            log.exception("relayflow-otel failed on a %s event; spans may be missing", kind)

    def _flush(self) -> None:
        """Hand the records of ended spans over."""
        records, self._records = self._records, []
        if not records:
            return
        try:
            self._emit_records(records)
        except Exception:  # the sink's own bug: those spans are lost, said once
            self._failed(None)

    def _handle(self, flow: str, name: str, event: Any) -> None:
        state = self._find(flow, name)
        if state is None:
            kept = self._finished.pop((flow, name), None)
            ended = ExecutionTrace.resumed(flow, name, kept) if kept is not None else None
            state = ended if ended is not None else ExecutionTrace(flow, name)
            self._remember(state)
            if event.type != "ExecutionStarted":
                # Met in the middle (or going on after its end: a redrive): read how it
                # started, and what is open, first. An execution that ended here keeps its
                # trace meanwhile, so its task requests are named at once.
                state.pending = [event]
                if not self._spawn(self._catch_up(state)):
                    state.pending = None
                    if ended is None:
                        state.unknown = True
                    else:
                        self._apply(state, event, live=True)
                return
        else:
            self._executions.move_to_end(name)
            if state.pending is not None:
                if len(state.pending) < MAX_PENDING:
                    state.pending.append(event)
                return
            if state.sampled and self._missed(state, event):
                # Another replica recorded what opened this span: read the history again.
                state.pending = [event]
                if self._spawn(self._catch_up(state)):
                    return
                state.pending = None
        self._apply(state, event, live=True)

    @staticmethod
    def _missed(state: ExecutionTrace, event: Any) -> bool:
        """Whether ``event`` ends a span this process never saw open, opened after its replay.

        Also an end of the execution while spans look open: another replica may have closed
        them, and a replay tells those apart from spans the end leaves open.
        """
        kind = event.type
        if kind == "StepExited":
            return event.schedule_event_id not in state.steps and (
                event.schedule_event_id > state.replayed
            )
        if kind in COMPLETIONS:
            return event.schedule_event_id not in state.tasks and (
                event.schedule_event_id > state.replayed
            )
        if kind in ENDS:
            return bool(state.steps or state.tasks) and event.event_id > state.replayed
        return False

    # -- the executions followed --------------------------------------------------------------

    def _find(self, flow: str, name: str) -> ExecutionTrace | None:
        """The execution ``flow``/``name`` if it is followed here."""
        state = self._executions.get(name)
        while state is not None and state.flow != flow:
            state = state.same_name
        return state

    def _remember(self, state: ExecutionTrace) -> None:
        """Follow ``state`` (not followed yet); past `MAX_EXECUTIONS`, forget the least active.

        The executions of the least recently active name are forgotten together: one, but
        for a name several flows use at once.
        """
        executions = self._executions
        state.same_name = executions.get(state.name)
        executions[state.name] = state
        executions.move_to_end(state.name)
        self._followed += 1
        while self._followed > MAX_EXECUTIONS:
            forgotten: ExecutionTrace | None = executions.popitem(last=False)[1]
            while forgotten is not None:
                self._followed -= 1
                after = forgotten.same_name
                forgotten.same_name = None
                forgotten = after

    def _unfollow(self, state: ExecutionTrace) -> None:
        """Stop following ``state``; nothing if it is not followed (forgotten meanwhile)."""
        executions = self._executions
        first = executions.get(state.name)
        if first is state:
            if state.same_name is None:
                del executions[state.name]
            else:  # the next of its name takes its place
                executions[state.name] = state.same_name
        else:
            while first is not None and first.same_name is not state:
                first = first.same_name
            if first is None:
                return
            first.same_name = state.same_name
        state.same_name = None
        self._followed -= 1

    def _forget(self, state: ExecutionTrace) -> None:
        """The execution ended: keep only what names its trace, should it go on (a redrive)."""
        self._unfollow(state)
        key = (state.flow, state.name)
        if self._spawns:
            self._spawns.pop(key, None)
        self._finished[key] = state.ended()
        while len(self._finished) > MAX_EXECUTIONS:
            self._finished.popitem(last=False)

    def _emit_spans(self, records: list[tuple[Any, ...]]) -> None:
        """Records -> `FinishedSpan`s made in this process -> ``emit`` (the SDK's path)."""
        spans, malformed = rows(records)
        if malformed:  # said once, as a failure on an event is
            if not self.failures:
                log.error("relayflow-otel left out %d malformed spans", malformed)
            self.failures += malformed
        for one in spans:
            name, trace, span, parent, kind, start, end, attributes, links, error, events = one
            self._emit(
                FinishedSpan(
                    name,
                    trace,
                    span,
                    parent or None,
                    True,
                    SpanKind(kind - 1),  # OTLP's kinds count from 1, the SDK's from 0
                    start,
                    end,
                    attributes,
                    links,
                    error,
                    events,
                )
            )
