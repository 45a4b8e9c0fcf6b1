"""The step loop: commands in, steps entered, finished or failed, lists and the execution ended.

`Machine` adds to the bookkeeping of `Run` what every step has in common: entering it (input
mapping and limits), finishing it (output mapping, then the next step, a goto or the end of its
list), failing it (retry, catch, or the enclosing list fails), and the commands a transition
starts from. What differs between step types lives in `steps/`, one module per kind, picked
by `steps.kind_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relayflow.dataflow import evaluate_mappings, step_input, step_output
from relayflow.engine.flowindex import ROOT
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.interpreter._redrive import redrive
from relayflow.engine.interpreter._run import EventLimit, Run, StepFault
from relayflow.engine.interpreter.steps import KINDS, kind_of
from relayflow.engine.model import (
    ERROR_EVENT_LIMIT,
    ERROR_INVALID_LOCAL,
    ERROR_RUNTIME,
    ERROR_TASK_TIMEOUT,
    Command,
    Redrive,
    Scope,
    Start,
    StepRun,
    Stop,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
)
from relayflow.fdl import StepBase

__all__ = ["ALL_ERRORS", "Machine", "error_matches"]

ALL_ERRORS = "FnF.ALL"


def error_matches(names: list[str], error: str) -> bool:
    """Whether a retry or catch policy's error names match ``error``."""
    return ALL_ERRORS in names or error in names


def _kind(step: StepBase) -> StepKind[Any]:
    kind = KINDS.get(type(step)) or kind_of(step)
    if kind is None:  # registration needs a handler; the type was unregistered since
        raise StepFault(ERROR_RUNTIME, f"relayflow has no runtime for step type '{step.type}'")
    return kind


class Machine(Run):
    """One transition of one execution, from its command to as far as the flow allows."""

    # -- commands -----------------------------------------------------------------------------

    def handle(self, command: Command) -> None:
        """Apply ``command``, then run every step that became ready."""
        state = self.state
        if state.done and not isinstance(command, Redrive):
            return
        try:
            if isinstance(command, Redrive):
                if not state.done or not state.resume:  # the runtime checked; nothing to do
                    return
                redrive(self, command)
            elif isinstance(command, Start):
                self.start(command)
            elif isinstance(command, TaskSucceeded):
                self.task_succeeded(command)
            elif isinstance(command, TaskFailed):
                self.task_failed(command.task_id, command.error, command.cause, "TaskFailed")
            elif isinstance(command, TaskSubmitted):
                if command.task_id in state.tasks:
                    scope = state.scopes[state.tasks[command.task_id]]
                    self.emit(
                        "TaskSubmitted",
                        self.step_of(scope).name,
                        dict(command.detail),
                        command.task_id,
                    )
            elif isinstance(command, TimerFired):
                self.timer_fired(command.timer_id)
            elif isinstance(command, Stop):
                self.end("Stopped", "ExecutionStopped", error=command.error, cause=command.cause)
            self.drain()
        except EventLimit:
            # The limit can strike halfway through a step's bookkeeping: unless a failure kept
            # the scopes before (consistent), nothing is kept for a redrive to go on from.
            if self.resume is None:
                self.resume = {}
            self.end(
                "Failed",
                "ExecutionFailed",
                error=ERROR_EVENT_LIMIT,
                cause=f"the execution reached {self.limits.max_events} history events "
                "(engine.max_events); split the work into child flows",
            )

    def start(self, command: Start) -> None:
        """Start the execution: its flow timer, its input mappings, and the root list."""
        flow = self.flow
        state = self.state
        state.input = dict(command.input)
        self.emit("ExecutionStarted", detail={"input": state.input, **command.context})
        if flow.timeout_seconds:
            state.flow_timer = self.start_timer("flow", 0, self.now + flow.timeout_seconds)
        flow_input = (
            evaluate_mappings(
                flow.input_mappings, input=state.input, local={}, context=self.context()
            )
            if flow.input_mappings is not None
            else dict(state.input)
        )
        root = Scope(self.new_id(), None, 0, ROOT, flow_input, {})
        state.scopes[root.id] = root
        self.work.append(root.id)

    def task_succeeded(self, command: TaskSucceeded) -> None:
        """A task attempt succeeded: its output (a JSON object) is the step's `$local`."""
        scope_id = self.state.tasks.get(command.task_id)
        if scope_id is None:
            return
        if not isinstance(command.output, dict):
            kind = type(command.output).__name__
            self.task_failed(
                command.task_id,
                ERROR_INVALID_LOCAL,
                f"the task's result must be a JSON object, not a {kind}",
                "TaskFailed",
            )
            return
        scope = self.state.scopes[scope_id]
        run = scope.run
        assert run is not None
        step = self.step_of(scope)
        self.emit("TaskSucceeded", step.name, {"output": command.output}, command.task_id)
        self.close_task(command.task_id, "completed", "succeeded")
        self.cancel_timer(run.timeout_timer)
        run.task = run.timeout_timer = None
        self.finish_step(scope, command.output)

    def task_failed(self, task_id: int, error: str, cause: str, kind: str) -> None:
        """A task attempt failed or timed out (``kind``); its step fails."""
        scope_id = self.state.tasks.get(task_id)
        if scope_id is None:
            return
        scope = self.state.scopes[scope_id]
        run = scope.run
        assert run is not None
        step = self.step_of(scope)
        self.emit(kind, step.name, {"error": error, "cause": cause}, task_id)
        if kind == "TaskTimedOut":
            self.close_task(task_id, "expired", "timed out")
        else:
            self.close_task(task_id, "completed", "failed")
            self.cancel_timer(run.timeout_timer)
        run.task = run.timeout_timer = None
        self.fail_step(scope, error, cause)

    def timer_fired(self, timer_id: int) -> None:
        """A timer came due: the flow's timeout, a continuation, a task timeout, a wait, a retry."""
        timer = self.state.timers.pop(timer_id, None)
        if timer is None:
            return
        kind, scope_id = timer
        if kind == "flow":
            self.end(
                "TimedOut",
                "ExecutionTimedOut",
                error="FnF.Timeout",
                cause=f"the execution ran longer than {self.flow.timeout_seconds} seconds",
            )
            return
        if kind == "continue":
            self.work.extend(self.state.ready)
            self.state.ready.clear()
            return
        scope = self.state.scopes.get(scope_id)
        if scope is None or scope.run is None:
            return
        run = scope.run
        if kind == "timeout" and run.timeout_timer == timer_id and run.task is not None:
            run.timeout_timer = None
            seconds = getattr(self.step_of(scope), "timeout_seconds", None)
            self.task_failed(
                run.task,
                ERROR_TASK_TIMEOUT,
                f"the task did not finish within {seconds} seconds",
                "TaskTimedOut",
            )
        elif kind == "wait" and run.timer == timer_id:
            run.timer = None
            self.finish_step(scope, {})
        elif kind == "retry" and run.timer == timer_id:
            run.timer = None
            self.guard(scope, self.begin_attempt)

    # -- the loop -----------------------------------------------------------------------------

    def drain(self) -> None:
        """Enter the current step of every scope that is ready, up to the per-transition limit."""
        work = self.work
        while work and not self.state.done:
            scope = self.state.scopes.get(work.popleft())
            if scope is None or scope.run is not None:
                continue
            if self.steps_run >= self.limits.steps_per_transition:
                self.defer(scope.id)
                continue
            self.steps_run += 1
            self.enter(scope)

    def guard(self, scope: Scope, action: Callable[[Scope], None]) -> None:
        """Run ``action``; a fault fails the scope's step."""
        try:
            action(scope)
        except StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)

    # -- entering steps -----------------------------------------------------------------------

    def enter(self, scope: Scope) -> None:
        """Enter the scope's current step: map its input, record StepEntered, and begin it."""
        step = self.step_of(scope)
        token = None
        kind = KINDS.get(type(step)) or kind_of(step)
        if kind is not None and kind.mints_token:
            # The first attempt's TaskScheduled comes right after StepEntered.
            token = self.mint_token(self.state.next_event + 1)
        data = step_input(
            step.input_mappings,
            parent_input=scope.input,
            parent_local=scope.local,
            context=self.context(token),
        )
        try:
            self.check_size(data, "input", step.name)
        except StepFault as fault:  # recorded without the input: mappings can amplify it
            scope.run = StepRun(scope.pc, {}, self.emit("StepEntered", step.name, {}))
            self.fail_step(scope, fault.error, fault.cause)
            return
        entered = self.emit("StepEntered", step.name, {"input": data})
        scope.run = StepRun(scope.pc, data, entered)
        try:
            (kind or _kind(step)).begin(self, scope, step, token)
        except StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)

    def begin_attempt(self, scope: Scope) -> None:
        """Run the current step again after a retry back-off."""
        step = self.step_of(scope)
        run = scope.run
        assert run is not None
        run.attempt += 1
        _kind(step).begin(self, scope, step, None)

    # -- leaving steps ------------------------------------------------------------------------

    def finish_step(self, scope: Scope, local: Any) -> None:
        """The current step succeeded with ``local``: map its output and move on."""
        run = scope.run
        assert run is not None
        step = self.step_of(scope)
        try:
            self.check_size(local, "local", step.name)
            output = step_output(
                step.output_mappings,
                input=run.input,
                local=local,
                context=self.context(),
                empty_by_default=step.empty_default_output,
            )
            self.check_size(output, "output", step.name)
        except StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)
            return
        self.emit("StepSucceeded", step.name, {"output": output}, run.entered)
        self.emit("StepExited", step.name, {}, run.entered)
        kind = KINDS.get(type(step)) or kind_of(step)
        end = getattr(step, "end", False) or (kind is not None and kind.ends_list)
        self.leave(scope, output, run.goto, end=end)  # only a choice sets a goto

    def leave(self, scope: Scope, output: dict[str, Any], goto: str | None, *, end: bool) -> None:
        """Leave the current step with ``output``: go to ``goto``, end the list, or go on."""
        scope.run = None
        scope.local.update(output)
        if goto is not None:
            scope.pc = self.index.positions[scope.key][goto]
        elif end:
            self.finish_scope(scope)
            return
        else:
            scope.pc += 1
        if scope.pc >= len(self.index.lists[scope.key]):
            self.finish_scope(scope)
        else:
            self.work.append(scope.id)

    def fail_step(self, scope: Scope, error: str, cause: str) -> None:
        """The current step failed: retry it, catch the error, or fail the enclosing list."""
        run = scope.run
        assert run is not None
        step = self.step_of(scope)
        for p, policy in enumerate(getattr(step, "retry", None) or []):
            if error_matches(policy.errors, error):
                used = run.retries.get(str(p), 0)
                if used < policy.max_attempts:
                    run.retries[str(p)] = used + 1
                    self.abandon_children(run)
                    run.since = self.now
                    run.timer = self.start_timer(
                        "retry", scope.id, self.now + policy.delay(used + 1)
                    )
                    return
                break
        if self.resume is None and self.unwinds_to_end(scope, error):
            # Kept before the failure unwinds the scopes, for a redrive to go on from.
            self.resume = self.keep_scopes()
        self.emit("StepFailed", step.name, {"error": error, "cause": cause}, run.entered)
        self.emit("StepExited", step.name, {}, run.entered)
        self.abandon_children(run)
        for policy in getattr(step, "catch", None) or []:
            if error_matches(policy.errors, error):
                mappings = getattr(step, "error_mappings", None)
                output = (
                    evaluate_mappings(
                        mappings,
                        input=run.input,
                        local={"error": error, "cause": cause},
                        context=self.context(),
                    )
                    if mappings
                    else {}
                )
                self.leave(scope, output, policy.goto, end=False)
                return
        scope.run = None
        self.fail_scope(scope, error, cause)

    def unwinds_to_end(self, scope: Scope, error: str) -> bool:
        """Whether ``error`` failing the scope's step ends the execution.

        It does unless a step on the way up (this one or one that holds its list) retries it
        or catches it, by the same rules as `fail_step`.
        """
        state = self.state
        current: Scope | None = scope
        while current is not None:
            run = current.run
            step = self.step_of(current)
            for p, policy in enumerate(getattr(step, "retry", None) or []):
                if error_matches(policy.errors, error):
                    if run is not None and run.retries.get(str(p), 0) < policy.max_attempts:
                        return False
                    break
            if any(error_matches(c.errors, error) for c in getattr(step, "catch", None) or []):
                return False
            current = None if current.parent is None else state.scopes.get(current.parent)
        return True

    def finish_scope(self, scope: Scope) -> None:
        """A serial list ran to its end: the execution succeeds, or the parent step hears."""
        state = self.state
        if scope.parent is None:
            flow = self.flow
            output = (
                evaluate_mappings(
                    flow.output_mappings,
                    input=scope.input,
                    local=scope.local,
                    context=self.context(),
                )
                if flow.output_mappings is not None
                else dict(scope.local)
            )
            del state.scopes[scope.id]
            self.end("Succeeded", "ExecutionSucceeded", output=output)
            return
        parent = state.scopes[scope.parent]
        run = parent.run
        assert run is not None
        del state.scopes[scope.id]
        run.children[scope.slot] = None
        run.results[scope.slot] = scope.local
        run.pending -= 1
        done = _kind(self.step_of(parent)).child_done
        assert done is not None, "only steps that hold lists have child lists"
        done(self, parent, scope)

    def fail_scope(self, scope: Scope, error: str, cause: str) -> None:
        """A serial list failed: its parent step fails, or the execution does."""
        state = self.state
        state.scopes.pop(scope.id, None)
        if scope.parent is None:
            self.end("Failed", "ExecutionFailed", error=error, cause=cause)
            return
        parent = state.scopes[scope.parent]
        run = parent.run
        assert run is not None
        run.children[scope.slot] = None
        self.fail_step(parent, error, cause)
