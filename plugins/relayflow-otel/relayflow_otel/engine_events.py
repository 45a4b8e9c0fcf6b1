"""What each history event does to an execution's open spans: the tracer's general path.

`EngineTracer.relayflow_history_committed` applies the events of an execution it follows
through its fast paths (`relayflow_otel.engine_spans`); the events those leave, the ones a
replayed history brings (`relayflow_otel.engine_reads`) and the ones held while it is read go
through `_apply` here. A start names the trace; a step entered or a task attempt scheduled
opens a span, its exit or completion hands the span's record over; the execution's end closes
what it left open, then its root span. The fast path `_live` calls these methods too, for the
rarer events.

`EngineEvents` is a part of `EngineTracer` (which inherits it), apart so that each module stays
small; it uses the tracer's state, reads and bookkeeping, declared below for the type checker.
"""

from __future__ import annotations

from collections.abc import Coroutine
from itertools import islice
from typing import TYPE_CHECKING, Any

from relayflow_otel.engine_state import (
    COMPLETIONS,
    ENDS,
    MAX_OPEN,
    ExecutionTrace,
    HistoryRecord,
    OpenSpan,
    cause_text,
    open_step,
    with_error,
    with_submitted,
)
from relayflow_otel.exporter_process import ABANDONED, ROOT, START_UNKNOWN, STEP, TASK
from relayflow_otel.ids import is_sampled, micros, trace_id

__all__ = ["EngineEvents"]


class EngineEvents:
    """What each history event does to the open spans, as `EngineTracer` methods."""

    _ratio: float
    _records: list[tuple[Any, ...]]

    if TYPE_CHECKING:  # `EngineTracer`'s and `EngineReads`'

        def _spawned(
            self, parent: tuple[str, str], flow: str, name: str
        ) -> tuple[int, int] | None: ...
        def _forget(self, state: ExecutionTrace) -> None: ...
        def _spawn(self, work: Coroutine[Any, Any, None]) -> bool: ...
        def _read_definition(self, state: ExecutionTrace) -> None: ...
        async def _link_and_emit(self, state: ExecutionTrace, root: tuple[Any, ...]) -> None: ...

    def _apply(self, state: ExecutionTrace, event: Any, *, live: bool) -> None:
        kind = event.type
        if kind == "ExecutionStarted":
            self._started(state, event)
        elif state.unknown or not state.trace or kind == "ExecutionRedriven":
            return  # untraced here; or a redrive, met in a replay only: the execution goes on
        elif not state.sampled:
            if kind in ENDS and live:
                self._forget(state)
        elif kind == "StepEntered":
            self._step_entered(state, event)
        elif kind == "TaskScheduled":
            self._task_scheduled(state, event)
        elif kind in COMPLETIONS:
            self._task_completed(state, event, live)
        elif kind == "StepExited":
            self._step_exited(state, event, live)
        elif kind == "TaskSubmitted":
            self._task_submitted(state, event)
        elif kind in ENDS:
            self._ended(state, event, live)

    def _started(self, state: ExecutionTrace, event: Any) -> None:
        exact = event.micros if type(event) is HistoryRecord else micros(event.time)
        trace = trace_id(state.flow, state.name, exact)
        if state.trace and trace != state.trace:  # the name was used again: a new execution
            state.steps.clear()
            state.tasks.clear()
            state.link = None
            state.parent = None
            state.enclosing = None
            state.reading_definition = False
            state.replayed = 0
        state.unknown = False
        state.named(trace, is_sampled(trace, self._ratio))
        state.start = exact / 1_000_000
        state.root = int(event.event_id)
        parent = event.detail.get("ParentExecution")
        if isinstance(parent, dict):
            state.parent = (str(parent.get("FlowName", "")), str(parent.get("Name", "")))
            if state.link is None:  # not again in a replay: the match was taken
                state.link = self._spawned(state.parent, state.flow, state.name)

    def _task_submitted(self, state: ExecutionTrace, event: Any) -> None:
        task = state.tasks.get(event.schedule_event_id)
        if task is not None:
            state.tasks[event.schedule_event_id] = with_submitted(task, event.time)

    def _step_entered(self, state: ExecutionTrace, event: Any) -> None:
        steps = state.steps
        if not steps:
            opened = open_step(event.step_name, event.time, state.root)
        elif len(steps) < MAX_OPEN:
            around = tuple(islice(((o[0], at) for at, o in reversed(steps.items())), 64))
            opened = open_step(event.step_name, event.time, None, around)
        else:
            return
        steps[event.event_id] = opened

    def _step_exited(self, state: ExecutionTrace, event: Any, live: bool) -> None:
        entered = event.schedule_event_id
        opened = state.steps.pop(entered, None)
        if not live:
            return
        if opened is None:  # its StepEntered was never seen: an empty span, said so
            when = event.time
            self._records.append(
                (STEP, state.trace, entered, state.root, when, when, state.flow, state.name,
                 event.step_name, None, START_UNKNOWN)
            )  # fmt: skip
            return
        self._end_step(state, entered, opened, event.time, 0)

    def _end_step(
        self, state: ExecutionTrace, entered: int, opened: OpenSpan, end: float, flags: int
    ) -> None:
        step, start, parent, error = opened[0], opened[1], opened[2], opened[4]
        if parent is None:
            parent = self._step_parent(state, opened)
            if parent is None:  # nested among open steps: the definition says where
                if state.waiting is None:
                    state.waiting = []
                state.waiting.append((entered, opened, end, flags))
                self._read_definition(state)
                return
        self._records.append(
            (STEP, state.trace, entered, parent, start, end, state.flow, state.name, step, error,
             flags)
        )  # fmt: skip

    def _step_parent(self, state: ExecutionTrace, opened: OpenSpan) -> int | None:
        """The EventId that opened a step's parent; None while the definition is unknown."""
        step, around = opened[0], opened[3]
        if not around:
            return state.root
        if state.enclosing is None:
            return None
        enclosers = state.enclosing.get(step, frozenset())
        for name, entered in around:
            if name in enclosers:
                return entered
        return state.root

    def _task_scheduled(self, state: ExecutionTrace, event: Any) -> None:
        tasks = state.tasks
        if len(tasks) >= MAX_OPEN:
            return
        detail = event.detail
        entered = event.schedule_event_id
        tasks[event.event_id] = (
            event.step_name,
            event.time,
            entered if entered else state.root,
            (),
            None,
            (),
            entered,
            detail.get("resource", ""),  # made text, and the attempt checked, by `expand`
            detail.get("pattern", ""),
            detail.get("attempt"),
        )

    def _task_completed(self, state: ExecutionTrace, event: Any, live: bool) -> None:
        scheduled = event.schedule_event_id
        opened = state.tasks.pop(scheduled, None)
        error: tuple[str, str] | None = None
        if event.type != "TaskSucceeded":
            error = (str(event.detail.get("error", "")), cause_text(event.detail.get("cause")))
        if opened is not None:
            entered = opened[6]
            step = state.steps.get(entered)
            if step is not None and step[4] != error:
                state.steps[entered] = with_error(step, error)
        if not live:
            return
        if opened is None:
            when = event.time
            self._records.append(
                (TASK, state.trace, scheduled, state.root, when, when, state.flow, state.name,
                 event.step_name, error, START_UNKNOWN, None, None, None, ())
            )  # fmt: skip
            return
        name, start, parent, _, _, submitted, _, resource, pattern, attempt = opened
        self._records.append(
            (TASK, state.trace, scheduled, parent, start, event.time, state.flow, state.name,
             name, error, 0, resource, pattern, attempt, submitted)
        )  # fmt: skip

    def _ended(self, state: ExecutionTrace, event: Any, live: bool) -> None:
        if not live:  # an end in a replayed history (then a redrive): nothing stays open
            state.steps.clear()
            state.tasks.clear()
            return
        self._forget(state)
        end = event.time
        for scheduled, task in state.tasks.items():  # left waiting when the execution ended
            step, start, parent, _, _, submitted, _, resource, pattern, attempt = task
            self._records.append(
                (TASK, state.trace, scheduled, parent, start, end, state.flow, state.name, step,
                 None, ABANDONED, resource, pattern, attempt, submitted)
            )  # fmt: skip
        for entered, opened in reversed(state.steps.items()):
            self._end_step(state, entered, opened, end, ABANDONED)
        state.tasks.clear()
        state.steps.clear()
        error: tuple[str, str] | None = None
        if event.type != "ExecutionSucceeded":
            error = (str(event.detail.get("error", "")), cause_text(event.detail.get("cause")))
        root = (ROOT, state.trace, state.root, state.start, end, state.flow, state.name,
                event.type.removeprefix("Execution"), error, state.parent, state.link)  # fmt: skip
        linked = state.parent is None or state.link is not None  # else: read the parent
        if linked or not self._spawn(self._link_and_emit(state, root)):
            self._records.append(root)
