"""The bookkeeping of one transition: events and their ids, scope and timer ids, tasks, limits.

`Run` holds what one command works on (the state, the time, the names `$context` reads) and
what it produced so far (a `Transition`). The step kinds and the step loop (`_machine.py`)
build on these operations and never touch `Transition` or the id counters themselves.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any

from relayflow import jsontext
from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.model import (
    ERROR_DATA_LIMIT,
    CancelTimer,
    CloseTask,
    ExecutionEnded,
    ExecutionState,
    HistoryEvent,
    Limits,
    Scope,
    StartTimer,
    StepRun,
    Transition,
)
from relayflow.fdl import Flow, StepBase

__all__ = ["EventLimit", "Run", "StepFault", "TokenMinter"]

#: Makes the token of a task attempt from its task id (the EventId of TaskScheduled).
TokenMinter = Callable[[int], str]


class EventLimit(Exception):
    """The execution reached `Limits.max_events`; it fails as a whole."""


class StepFault(Exception):
    """A step cannot go on; it fails with `error` and `cause` (and may be retried or caught)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


class Run:
    """One transition: the state, the time, and what the transition produced so far.

    Args:
        flow: the validated flow.
        index: its step lists.
        limits: engine limits.
        state: the execution's state, changed in place.
        now: the time of the command, in seconds since the epoch.
        flow_name, execution_name: what `$context.flow.name` and `$context.execution.name` read.
        mint_token: makes a task attempt's token from its task id.
    """

    def __init__(
        self,
        flow: Flow,
        index: FlowIndex,
        limits: Limits,
        state: ExecutionState,
        now: float,
        flow_name: str,
        execution_name: str,
        mint_token: TokenMinter,
    ) -> None:
        self.flow = flow
        self.index = index
        self.limits = limits
        self.state = state
        self.now = now
        self.flow_name = flow_name
        self.execution_name = execution_name
        self.mint_token = mint_token
        self.out = Transition()
        self.work: deque[int] = deque()  # scopes whose current step must be entered
        self.steps_run = 0
        # The scopes as they were when a failure that ends the execution began to unwind
        # (`Machine.fail_step`): what a redrive goes on from.
        self.resume: dict[int, Scope] | None = None

    def emit(
        self, kind: str, step: str = "", detail: dict[str, Any] | None = None, schedule: int = 0
    ) -> int:
        """Record a history event; its EventId."""
        state = self.state
        event_id = state.next_event
        if event_id > self.limits.max_events and not kind.startswith("Execution"):
            raise EventLimit
        state.next_event = event_id + 1
        self.out.events.append(HistoryEvent(event_id, schedule, kind, step, self.now, detail or {}))
        return event_id

    def new_id(self) -> int:
        """A new scope or timer id."""
        value = self.state.next_scope
        self.state.next_scope = value + 1
        return value

    def start_timer(self, kind: str, scope: int, fire_at: float) -> int:
        """Start a timer of ``kind`` (flow, continue, timeout, wait, retry) for ``scope``."""
        timer_id = self.new_id()
        self.state.timers[timer_id] = [kind, scope]
        self.out.effects.append(StartTimer(timer_id, fire_at, kind))
        return timer_id

    def cancel_timer(self, timer_id: int | None) -> None:
        """Cancel a timer, if it is still running."""
        if timer_id is not None and self.state.timers.pop(timer_id, None) is not None:
            self.out.effects.append(CancelTimer(timer_id))

    def close_task(self, task_id: int | None, state: str, reason: str) -> None:
        """Close an open task attempt: `completed`, or `expired` (a late report is told why)."""
        if task_id is not None and self.state.tasks.pop(task_id, None) is not None:
            if state == "expired":  # remembered, so that a late report is told why
                self.state.expired[task_id] = reason
            self.out.effects.append(CloseTask(task_id, state, reason))

    def context(self, token: str | None = None) -> dict[str, Any]:
        """What `$context` reads; with a task attempt's token, `$context.task.token` too."""
        ctx: dict[str, Any] = {
            "flow": {"name": self.flow_name, "environment": self.state.environment},
            "execution": {"name": self.execution_name},
        }
        if token is not None:
            ctx["task"] = {"token": token}
        return ctx

    def step_of(self, scope: Scope) -> StepBase:
        """The step a scope is at."""
        return self.index.lists[scope.key][scope.pc]

    def check_size(self, data: Any, what: str, step: str) -> None:
        """Fail the step when ``data`` is too large or too deep for the engine's limits."""
        size = jsontext.size(data)
        depth = self.limits.max_json_depth
        # Each level takes two bytes of JSON at least, so small data need not be walked.
        if size > 2 * depth and jsontext.too_deep(data, depth):
            raise StepFault(
                ERROR_DATA_LIMIT,
                f"the {what} of step '{step}' nests objects and arrays more than {depth} levels "
                "deep (engine.max_json_depth)",
            )
        limit = self.limits.max_step_data_bytes
        if size > limit:
            raise StepFault(
                ERROR_DATA_LIMIT,
                f"the {what} of step '{step}' is {size} bytes as JSON; the limit is {limit} "
                "(engine.max_step_data_bytes)",
            )

    def child(self, scope: Scope, slot: int, key: str, data: dict[str, Any]) -> int:
        """Open a child list (a branch, an iteration, a choice's steps) below ``scope``'s step."""
        child = Scope(self.new_id(), scope.id, slot, key, data, {})
        self.state.scopes[child.id] = child
        self.work.append(child.id)
        return child.id

    def defer(self, scope_id: int) -> None:
        """Leave a scope for the next transition (the steps-per-transition limit was reached)."""
        ready = self.state.ready
        if not ready:
            self.start_timer("continue", 0, self.now)
        ready.append(scope_id)

    def abandon_children(self, run: StepRun) -> None:
        """Cancel everything still running below a step: child lists, tasks, timers."""
        self.close_task(run.task, "expired", "cancelled")
        self.cancel_timer(run.timeout_timer)
        self.cancel_timer(run.timer)
        run.task = run.timeout_timer = run.timer = None
        for child_id in run.children:
            if child_id is not None:
                self.abandon_scope(child_id)
        run.children = [None] * len(run.children)
        run.pending = 0

    def abandon_scope(self, scope_id: int) -> None:
        """Drop a scope and everything running below it."""
        scope = self.state.scopes.pop(scope_id, None)
        if scope is not None and scope.run is not None:
            self.abandon_children(scope.run)

    def keep_scopes(self) -> dict[int, Scope]:
        """The scopes as they are now, for a redrive, safe from what ending the execution does.

        Unwinding a failure and ending an execution change the scopes and their runs (which
        child lists run, open tasks and timers) but not the data they hold, so new scope and
        run objects (and children lists) suffice: the data is shared, not copied.
        """
        kept: dict[int, Scope] = {}
        for scope_id, scope in self.state.scopes.items():
            run = scope.run
            if run is not None:
                run = dataclasses.replace(run, children=list(run.children))
            kept[scope_id] = dataclasses.replace(scope, run=run)
        return kept

    def end(
        self,
        status: str,
        kind: str,
        *,
        output: dict[str, Any] | None = None,
        error: str = "",
        cause: str = "",
    ) -> None:
        """End the execution with ``status``, cancelling whatever it was waiting for."""
        state = self.state
        if status == "Succeeded":
            state.resume = None
        else:  # kept before anything is cancelled, so that a redrive can go on from here
            state.resume = self.resume if self.resume is not None else self.keep_scopes()
        for scope_id in list(state.scopes):
            self.abandon_scope(scope_id)
        for task_id in list(state.tasks):
            self.close_task(task_id, "expired", status.lower())
        for timer_id in list(state.timers):
            self.cancel_timer(timer_id)
        state.ready.clear()
        state.flow_timer = None
        state.status = status
        state.output = output
        state.error, state.cause = error, cause
        detail: dict[str, Any] = (
            {"output": output} if status == "Succeeded" else {"error": error, "cause": cause}
        )
        self.emit(kind, "", detail)
        self.work.clear()
        self.out.effects.append(ExecutionEnded(status, output, error, cause))
