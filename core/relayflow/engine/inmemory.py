"""One Express execution run in memory: the interpreter, its timers and its task calls, no store.

A Standard execution records every transition in the store and waits for timers and task
outcomes through the outbox and the timer table. An Express execution (`relayflow.engine.
express`) keeps all of that in this object instead: timers are times it sleeps until, task
attempts are direct calls of their integration, and the history events the interpreter
produces are dropped (or handed to the lifecycle plugins, when any observe). Only the end
is recorded, by the caller.

The run is bounded by its deadline (`EXPRESS_MAX_SECONDS` after it started): past it the
execution ends `TimedOut` and task calls still running are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from relayflow.engine.dispatch import Dispatcher, invoke_integration
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.integration import Failed, Submitted, TaskOutcome, TaskRequest
from relayflow.engine.interpreter import Interpreter

# The interpreter ends an execution as TimedOut only for a flow's own timer, whose cause names
# the flow's timeoutSeconds; the Express limit needs the same end with its own cause.
from relayflow.engine.interpreter._machine import Machine
from relayflow.engine.model import (
    CancelTimer,
    CloseTask,
    Command,
    ExecutionState,
    HistoryEvent,
    InvokeTask,
    Start,
    StartTimer,
    Stop,
    TimerFired,
    Transition,
)
from relayflow.engine.outcomes import outcome_command
from relayflow.errors import ERROR_RUNTIME, first_line

__all__ = ["ERROR_TIMEOUT", "ExpressRun", "call_integration"]

log = logging.getLogger("relayflow.engine")

#: The error an execution that ran out of time ends with (as a flow's own timeout does).
ERROR_TIMEOUT = "FnF.Timeout"


async def call_integration(
    dispatcher: Dispatcher, hooks: EngineHooks | None, request: TaskRequest
) -> TaskOutcome:
    """Carry out one task attempt of an Express execution and return its outcome.

    As the dispatcher does for Standard executions (plugins may change the request and see
    the outcome; an integration that raises fails the task), except that the outcome comes
    back to the caller instead of to the store, and an integration that only hands the work
    over (`Submitted`) fails the task: nothing could report its result later.
    """
    if hooks is not None:
        request = hooks.prepare_request(request)
    integration = dispatcher.integration_for(request.resource)
    outcome = await invoke_integration(integration, request)
    if isinstance(outcome, Submitted) and integration is not None:
        outcome = Failed(
            ERROR_RUNTIME,
            f"integration {integration.name} handed task step '{request.step_name}' over "
            "instead of answering; an Express execution keeps nothing a later report "
            "could reach, so its tasks must answer in the call (requestResponse)",
        )
    if hooks is not None:
        hooks.task_outcome(request, outcome)
    return outcome


class ExpressRun:
    """The state of one Express execution and what it waits for, driven to its end in memory.

    `begin` runs the first transition and every timer already due, without awaiting anything,
    so that it may run inside the store's writer transaction as well as on the event loop; a
    flow of pass, choice and other steps that need no waiting ends there. `run_to_end` then
    waits for task calls and timers on the event loop.

    Args:
        interp: the interpreter of the flow version the execution runs.
        flow_name: the flow's name.
        name: the execution's name.
        uid: the execution's unique id (its tokens are bound to it).
        mint_token: makes a task attempt's token from its task id.
        invoke: calls a task attempt's integration (`call_integration`, bound).
        started: when the execution started (seconds since the epoch).
        deadline: when it times out.
        clock: the engine's time source.
        keep_events: whether to keep the history events in `events` (for the plugins that
            observe lifecycles; else they are dropped as they come).
    """

    def __init__(
        self,
        interp: Interpreter,
        *,
        flow_name: str,
        name: str,
        uid: str,
        mint_token: Callable[[int], str],
        invoke: Callable[[TaskRequest], Awaitable[TaskOutcome]],
        started: float,
        deadline: float,
        clock: Callable[[], float],
        keep_events: bool = False,
    ) -> None:
        self.interp = interp
        self.flow_name = flow_name
        self.name = name
        self.uid = uid
        self.state = ExecutionState()
        self.started = started
        self.deadline = deadline
        self.stopped: float | None = None
        self._mint = mint_token
        self._invoke = invoke
        self._clock = clock
        self._keep_events = keep_events
        #: The history events, oldest first, when kept (`keep_events`).
        self.events: list[HistoryEvent] = []
        self._timers: dict[int, float] = {}  # timer id -> when it is due
        self._waiting: list[InvokeTask] = []  # task attempts not yet called
        self._calls: dict[int, asyncio.Task[TaskOutcome]] = {}  # task id -> integration call
        #: Set (with a cause) to make `run_to_end` stop the execution at its next look.
        self.stop_cause = ""

    @property
    def done(self) -> bool:
        """Whether the execution has ended."""
        return self.state.done

    def begin(self, data: dict[str, Any], variables: dict[str, str]) -> None:
        """Start the execution with ``data`` and run it as far as it goes without waiting.

        ``variables`` are the flow's Environment variables (`$context.flow.environment`).
        """
        self.state.environment = variables
        self._apply(Start(data), self.started)
        self._fire_due(self.started)

    async def run_to_end(self, recheck_seconds: float) -> None:
        """Wait for task calls and timers until the execution ends, at its deadline at the latest.

        ``recheck_seconds`` bounds every sleep, so that a clock that is not the wall's (a
        test's) and `stop_cause` are noticed that often.
        """
        try:
            while not self.state.done:
                self._call_waiting()
                now = self._clock()
                if self.stop_cause:
                    self._apply(Stop(ERROR_RUNTIME, self.stop_cause), now)
                elif now >= self.deadline:
                    self._time_out(now)
                elif self._fire_due(now):
                    continue
                elif not self._take_outcomes(now):
                    await self._wait(now, recheck_seconds)
        finally:
            for call in self._calls.values():
                call.cancel()
            self._calls.clear()

    # -- the interpreter ------------------------------------------------------------------------

    def _apply(self, command: Command, now: float) -> None:
        try:
            transition = self.interp.apply(
                self.state,
                command,
                now,
                flow_name=self.flow_name,
                execution_name=self.name,
                mint_token=self._mint,
            )
        except Exception as exc:  # a bug must not hang the caller: fail the execution, visibly
            log.exception(
                "interpreter failed on Express %s/%s",
                self.flow_name,
                self.name,
                extra={"flow": self.flow_name, "execution": self.name},
            )
            transition = self.interp.fail(
                self.state, now, ERROR_RUNTIME, f"relayflow internal error: {type(exc).__name__}"
            )
        self._carry_out(transition, now)

    def _time_out(self, now: float) -> None:
        limit = self.deadline - self.started
        run = Machine(
            self.interp.flow,
            self.interp.index,
            self.interp.limits,
            self.state,
            now,
            self.flow_name,
            self.name,
            self._mint,
        )
        run.end(
            "TimedOut",
            "ExecutionTimedOut",
            error=ERROR_TIMEOUT,
            cause=f"the Express execution ran longer than {limit:.0f} seconds, the most an "
            "Express execution may run",
        )
        self._carry_out(run.out, now)

    def _carry_out(self, transition: Transition, now: float) -> None:
        """Note what a transition asks for: task calls, timers; the end time."""
        for effect in transition.effects:
            if isinstance(effect, InvokeTask):
                self._waiting.append(effect)
            elif isinstance(effect, StartTimer):
                self._timers[effect.timer_id] = effect.fire_at
            elif isinstance(effect, CancelTimer):
                self._timers.pop(effect.timer_id, None)
            elif isinstance(effect, CloseTask) and effect.state == "expired":
                # Timed out or cancelled: its outcome no longer counts, and its call may stop.
                call = self._calls.pop(effect.task_id, None)
                if call is not None:
                    call.cancel()
                self._waiting = [w for w in self._waiting if w.task_id != effect.task_id]
        if self._keep_events:
            self.events.extend(transition.events)
        if self.state.done:
            self.stopped = now
            self._timers.clear()
            self._waiting.clear()

    # -- timers and task calls --------------------------------------------------------------

    def _fire_due(self, now: float) -> bool:
        """Fire every timer due at ``now``, earliest first; whether any fired."""
        fired = False
        while self._timers and not self.state.done:
            timer_id, at = min(self._timers.items(), key=lambda item: (item[1], item[0]))
            if at > now:
                break
            del self._timers[timer_id]
            self._apply(TimerFired(timer_id), now)
            fired = True
        return fired

    def _call_waiting(self) -> None:
        for effect in self._waiting:
            request = TaskRequest(
                self.flow_name,
                self.name,
                effect.step_name,
                effect.task_id,
                effect.token,
                effect.resource,
                effect.pattern,
                effect.input,
                effect.service_params,
                effect.timeout_seconds,
                effect.attempt,
            )
            self._calls[effect.task_id] = asyncio.ensure_future(self._invoke(request))
        self._waiting.clear()

    def _take_outcomes(self, now: float) -> bool:
        """Apply the outcome of every finished task call; whether there was one."""
        finished = [task_id for task_id, call in self._calls.items() if call.done()]
        for task_id in finished:
            call = self._calls.pop(task_id)
            if call.cancelled():
                continue
            error = call.exception()
            outcome = (
                call.result()
                if error is None
                else Failed(ERROR_RUNTIME, f"{type(error).__name__}: {first_line(error)}")
            )
            self._apply(outcome_command(task_id, outcome, self.interp.limits), now)
        return bool(finished)

    async def _wait(self, now: float, recheck_seconds: float) -> None:
        """Sleep until a task call ends, the next timer, the deadline or the recheck."""
        wake = min([self.deadline, *self._timers.values()])
        if not self._calls and not self._timers and not self._waiting:
            # Nothing could ever move the execution on: a bug; end it rather than hang.
            transition = self.interp.fail(
                self.state, now, ERROR_RUNTIME, "relayflow internal error: nothing to wait for"
            )
            self._carry_out(transition, now)
            return
        delay = max(0.0, min(wake - now, recheck_seconds))
        if self._calls:
            await asyncio.wait(
                list(self._calls.values()), timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        else:
            await asyncio.sleep(delay)
