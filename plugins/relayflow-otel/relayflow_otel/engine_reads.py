"""What `EngineTracer` reads from the engine, off its hooks: histories and definitions.

A hook never waits. When the tracer meets an execution in the middle (after a restart, or a
report of a task another replica dispatched) it holds the execution's events and reads its
history through `Engine.get_execution_history` in a task on the engine's loop, a few reads at a
time (`MAX_READS`), then replays it and applies what it held. The same way it reads a
definition once, for an execution whose steps nest (parallel, foreach, choice), and a parent's
history to link a child execution's root span to the task attempt that started it.

`EngineReads` is a part of `EngineTracer` (which inherits it); it uses the tracer's state and
span methods, declared below for the type checker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from relayflow_otel.engine_state import (
    MAX_HISTORY_EVENTS,
    MAX_READS,
    PAGE,
    ExecutionTrace,
    HistoryRecord,
    OpenSpan,
    child_task,
    enclosing_steps,
    with_parent,
)
from relayflow_otel.ids import span_id, trace_id

if TYPE_CHECKING:
    from relayflow.engine import Engine

__all__ = ["EngineReads"]

log = logging.getLogger("relayflow.otel")


class EngineReads:
    """The tracer's reads of histories and definitions, as `EngineTracer` methods."""

    _engine: Engine | None
    _tasks: set[asyncio.Task[None]]
    _reads: asyncio.Semaphore | None
    _reads_loop: asyncio.AbstractEventLoop | None
    _records: list[tuple[Any, ...]]

    if TYPE_CHECKING:  # `EngineTracer`'s and `EngineEvents`'

        def _flush(self) -> None: ...
        def _failed(self, event: Any) -> None: ...
        def _apply(self, state: ExecutionTrace, event: Any, *, live: bool) -> None: ...
        def _step_parent(self, state: ExecutionTrace, opened: OpenSpan) -> int | None: ...
        def _end_step(
            self,
            state: ExecutionTrace,
            entered: int,
            opened: OpenSpan,
            end: float,
            flags: int,
        ) -> None: ...

    def _spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work`` on the running loop; False (and nothing runs) without an engine or loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._engine is None:
            work.close()
            return False
        if self._reads_loop is not loop:
            self._reads = asyncio.Semaphore(MAX_READS)
            self._reads_loop = loop
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _history(
        self, flow: str, name: str, before: int | None = None
    ) -> list[HistoryRecord]:
        """The execution's events, oldest first, up to `MAX_HISTORY_EVENTS` (and ``before``)."""
        engine = self._engine
        assert engine is not None and self._reads is not None
        events: list[HistoryRecord] = []
        token = ""
        async with self._reads:
            while len(events) < MAX_HISTORY_EVENTS:
                page = await engine.get_execution_history(flow, name, PAGE, token)
                for item in page.items:
                    if before is not None and item.event_id >= before:
                        return events
                    events.append(HistoryRecord.of(item))
                token = page.next_token or ""
                if not token:
                    break
        return events

    async def _catch_up(self, state: ExecutionTrace) -> None:
        """Replay the history before the held events, then apply them."""
        try:
            await self._replay(state)
        finally:
            self._flush()

    async def _replay(self, state: ExecutionTrace) -> None:
        pending = state.pending or []
        try:
            events = await self._history(state.flow, state.name, pending[0].event_id)
        except Exception as exc:
            log.debug("relayflow-otel cannot read %s/%s: %s", state.flow, state.name, exc)
            events = []
        if not events or events[0].type != "ExecutionStarted":
            if not state.trace:
                state.unknown = True  # no start, no trace id: untraced here
            held, state.pending = state.pending or [], None
            state.replayed = pending[0].event_id
            for event in held if state.trace else []:
                self._apply_held(state, event)
            return
        state.steps.clear()
        state.tasks.clear()
        for index, event in enumerate(events):
            self._apply(state, event, live=False)
            if index % 1000 == 999:
                await asyncio.sleep(0)  # a long replay lets the engine's other work run
        state.replayed = pending[0].event_id
        held, state.pending = state.pending or [], None
        for event in held:
            self._apply_held(state, event)

    def _apply_held(self, state: ExecutionTrace, event: Any) -> None:
        try:
            self._apply(state, event, live=True)
        except Exception:
            self._failed(event)

    def _read_definition(self, state: ExecutionTrace) -> None:
        if state.reading_definition:
            return
        state.reading_definition = True
        if not self._spawn(self._definition(state)):
            self._nest(state, {})

    async def _definition(self, state: ExecutionTrace) -> None:
        engine = self._engine
        enclosing: dict[str, frozenset[str]] = {}
        try:
            assert engine is not None and self._reads is not None
            async with self._reads:
                info = await engine.describe_execution(state.flow, state.name)
            # Parsing a large definition takes a while: not on the engine's loop.
            enclosing = await asyncio.to_thread(enclosing_steps, info.flow_definition)
        except Exception as exc:
            log.debug("relayflow-otel cannot read %s/%s: %s", state.flow, state.name, exc)
        self._nest(state, enclosing)
        self._flush()

    def _nest(self, state: ExecutionTrace, enclosing: dict[str, frozenset[str]]) -> None:
        state.enclosing = enclosing
        waiting, state.waiting = state.waiting or [], None
        for entered, opened, end, flags in waiting:
            parent = self._step_parent(state, opened)
            self._end_step(state, entered, with_parent(opened, parent), end, flags)

    async def _link_and_emit(self, state: ExecutionTrace, root: tuple[Any, ...]) -> None:
        """Link a child's root span to the parent's task attempt that started it, then emit it."""
        assert state.parent is not None
        flow, name = state.parent
        try:
            events = await self._history(flow, name)
            if events and events[0].type == "ExecutionStarted":
                parent_trace = trace_id(flow, name, events[0].micros)
                task = child_task(events, state.flow, state.name)
                if task:
                    root = (*root[:-1], (parent_trace, span_id(parent_trace, task)))
        except Exception as exc:
            log.debug("relayflow-otel cannot read the parent %s/%s: %s", flow, name, exc)
        self._records.append(root)
        self._flush()

    async def drain(self) -> None:
        """Wait for the reads in flight (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
