"""The interpreter: (execution state, one command, the time) → (history events, effects).

It does no I/O and reads no clock: the runtime passes the time in and carries the effects out,
so the same state and command always give the same result. It mutates the state it is given;
the runtime loads a fresh copy from the store for every command.

Within one command the interpreter runs as far as the flow allows without waiting: a chain of
pass, choice and succeed steps runs in one transition, up to `Limits.steps_per_transition`
steps, after which it sets a timer due at once and continues on the next transition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC
from typing import Any

from relayflow import jsontext
from relayflow.dataflow import (
    compile_source,
    evaluate_mappings,
    iteration_input,
    step_input,
    step_output,
)
from relayflow.engine.flowindex import ROOT, FlowIndex
from relayflow.engine.model import (
    ERROR_DATA_LIMIT,
    ERROR_EVENT_LIMIT,
    ERROR_INVALID_LOCAL,
    ERROR_RUNTIME,
    ERROR_TASK_TIMEOUT,
    CancelTimer,
    CloseTask,
    Command,
    ExecutionEnded,
    ExecutionState,
    HistoryEvent,
    InvokeTask,
    Limits,
    Scope,
    Start,
    StartTimer,
    StepRun,
    Stop,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
    Transition,
)
from relayflow.fdl import (
    ChoiceStep,
    FailStep,
    Flow,
    ForeachStep,
    ParallelStep,
    PassStep,
    StepBase,
    SucceedStep,
    TaskStep,
    WaitStep,
)
from relayflow.fdl.timestamps import parse_rfc3339

__all__ = ["Interpreter", "TokenMinter", "error_matches"]

#: Makes the token of a task attempt from its task id (the EventId of TaskScheduled).
TokenMinter = Callable[[int], str]

ALL_ERRORS = "FnF.ALL"


def error_matches(names: list[str], error: str) -> bool:
    """Whether a retry or catch policy's error names match ``error``."""
    return ALL_ERRORS in names or error in names


class _EventLimit(Exception):
    pass


class _StepFault(Exception):
    """A step cannot go on; it fails with `error` and `cause` (and may be retried or caught)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


class Interpreter:
    """Runs the executions of one flow version. Build one per version and reuse it.

    Args:
        flow: the validated flow.
        limits: engine limits.
    """

    def __init__(self, flow: Flow, limits: Limits | None = None) -> None:
        self.index = FlowIndex.build(flow)
        self.flow = flow
        self.limits = limits or Limits()

    def apply(
        self,
        state: ExecutionState,
        command: Command,
        now: float,
        *,
        flow_name: str,
        execution_name: str,
        mint_token: TokenMinter,
    ) -> Transition:
        """Apply ``command`` at time ``now`` (seconds since the epoch) to ``state``.

        ``flow_name`` and ``execution_name`` are what `$context.flow.name` and
        `$context.execution.name` read; ``mint_token`` makes a task attempt's token from its
        task id, for `$context.task.token`.
        """
        run = _Run(self, state, now, flow_name, execution_name, mint_token)
        run.handle(command)
        return run.out

    def fail(self, state: ExecutionState, now: float, error: str, cause: str) -> Transition:
        """End a running execution as Failed, cancelling whatever it was waiting for."""
        run = _Run(self, state, now, "", "", lambda task_id: "")
        if not state.done:
            run.end("Failed", "ExecutionFailed", error=error, cause=cause)
        return run.out


class _Run:
    """One transition: the state, the time, and what the transition produced so far."""

    def __init__(
        self,
        interp: Interpreter,
        state: ExecutionState,
        now: float,
        flow_name: str,
        execution_name: str,
        mint_token: TokenMinter,
    ) -> None:
        self.i = interp
        self.limits = interp.limits
        self.state = state
        self.now = now
        self.flow_name = flow_name
        self.execution_name = execution_name
        self.mint_token = mint_token
        self.out = Transition()
        self.work: deque[int] = deque()  # scopes whose current step must be entered
        self.steps_run = 0

    # -- bookkeeping --------------------------------------------------------------------------

    def emit(
        self, kind: str, step: str = "", detail: dict[str, Any] | None = None, schedule: int = 0
    ) -> int:
        state = self.state
        event_id = state.next_event
        if event_id > self.limits.max_events and not kind.startswith("Execution"):
            raise _EventLimit
        state.next_event = event_id + 1
        self.out.events.append(HistoryEvent(event_id, schedule, kind, step, self.now, detail or {}))
        return event_id

    def new_id(self) -> int:
        value = self.state.next_scope
        self.state.next_scope = value + 1
        return value

    def start_timer(self, kind: str, scope: int, fire_at: float) -> int:
        timer_id = self.new_id()
        self.state.timers[timer_id] = [kind, scope]
        self.out.effects.append(StartTimer(timer_id, fire_at, kind))
        return timer_id

    def cancel_timer(self, timer_id: int | None) -> None:
        if timer_id is not None and self.state.timers.pop(timer_id, None) is not None:
            self.out.effects.append(CancelTimer(timer_id))

    def close_task(self, task_id: int | None, state: str, reason: str) -> None:
        if task_id is not None and self.state.tasks.pop(task_id, None) is not None:
            if state == "expired":  # remembered, so that a late report is told why
                self.state.expired[task_id] = reason
            self.out.effects.append(CloseTask(task_id, state, reason))

    def context(self, token: str | None = None) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "flow": {"name": self.flow_name},
            "execution": {"name": self.execution_name},
        }
        if token is not None:
            ctx["task"] = {"token": token}
        return ctx

    def step_of(self, scope: Scope) -> StepBase:
        return self.i.index.lists[scope.key][scope.pc]

    def check_size(self, data: Any, what: str, step: str) -> None:
        size = jsontext.size(data)
        depth = self.limits.max_json_depth
        # Each level takes two bytes of JSON at least, so small data need not be walked.
        if size > 2 * depth and jsontext.too_deep(data, depth):
            raise _StepFault(
                ERROR_DATA_LIMIT,
                f"the {what} of step '{step}' nests objects and arrays more than {depth} levels "
                "deep (engine.max_json_depth)",
            )
        limit = self.limits.max_step_data_bytes
        if size > limit:
            raise _StepFault(
                ERROR_DATA_LIMIT,
                f"the {what} of step '{step}' is {size} bytes as JSON; the limit is {limit} "
                "(engine.max_step_data_bytes)",
            )

    # -- commands -----------------------------------------------------------------------------

    def handle(self, command: Command) -> None:
        state = self.state
        if state.done:
            return
        try:
            if isinstance(command, Start):
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
        except _EventLimit:
            self.end(
                "Failed",
                "ExecutionFailed",
                error=ERROR_EVENT_LIMIT,
                cause=f"the execution reached {self.limits.max_events} history events "
                "(engine.max_events); split the work into child flows",
            )

    def start(self, command: Start) -> None:
        flow = self.i.flow
        state = self.state
        state.input = dict(command.input)
        self.emit("ExecutionStarted", detail={"input": state.input})
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
        timer = self.state.timers.pop(timer_id, None)
        if timer is None:
            return
        kind, scope_id = timer
        if kind == "flow":
            self.end(
                "TimedOut",
                "ExecutionTimedOut",
                error="FnF.Timeout",
                cause=f"the execution ran longer than {self.i.flow.timeout_seconds} seconds",
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

    def defer(self, scope_id: int) -> None:
        ready = self.state.ready
        if not ready:
            self.start_timer("continue", 0, self.now)
        ready.append(scope_id)

    def guard(self, scope: Scope, action: Callable[[Scope], None]) -> None:
        try:
            action(scope)
        except _StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)

    # -- entering steps -----------------------------------------------------------------------

    def enter(self, scope: Scope) -> None:
        step = self.step_of(scope)
        token = None
        if isinstance(step, TaskStep):
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
        except _StepFault as fault:  # recorded without the input: mappings can amplify it
            scope.run = StepRun(scope.pc, {}, self.emit("StepEntered", step.name, {}))
            self.fail_step(scope, fault.error, fault.cause)
            return
        entered = self.emit("StepEntered", step.name, {"input": data})
        scope.run = StepRun(scope.pc, data, entered)
        try:
            self.begin(scope, step, token)
        except _StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)

    def begin(self, scope: Scope, step: StepBase, token: str | None = None) -> None:
        run = scope.run
        assert run is not None
        if isinstance(step, PassStep | SucceedStep):
            self.finish_step(scope, {})
        elif isinstance(step, FailStep):
            self.fail_step(scope, step.error or "", step.cause or "")
        elif isinstance(step, TaskStep):
            self.schedule_task(scope, step, token)
        elif isinstance(step, WaitStep):
            self.begin_wait(scope, step)
        elif isinstance(step, ChoiceStep):
            self.begin_choice(scope, step)
        elif isinstance(step, ParallelStep):
            run.children = []
            run.results = [None] * len(step.branches)
            run.pending = len(step.branches)
            for b in range(len(step.branches)):
                key = FlowIndex.child_key(scope.key, run.index, "branches", b, "steps")
                self.emit("BranchEntered", step.name, {"index": b}, run.entered)
                run.children.append(self.child(scope, b, key, dict(run.input)))
        elif isinstance(step, ForeachStep):
            self.begin_foreach(scope, step)
        else:
            raise _StepFault(ERROR_RUNTIME, f"relayflow has no runtime for step type '{step.type}'")

    def begin_attempt(self, scope: Scope) -> None:
        """Run the current step again after a retry back-off."""
        step = self.step_of(scope)
        run = scope.run
        assert run is not None
        run.attempt += 1
        if isinstance(step, TaskStep):
            self.schedule_task(scope, step, None)
        else:
            self.begin(scope, step)

    def child(self, scope: Scope, slot: int, key: str, data: dict[str, Any]) -> int:
        child = Scope(self.new_id(), scope.id, slot, key, data, {})
        self.state.scopes[child.id] = child
        self.work.append(child.id)
        return child.id

    def schedule_task(self, scope: Scope, step: TaskStep, token: str | None) -> None:
        run = scope.run
        assert run is not None
        task_id = self.state.next_event
        if token is None:  # a retry: the input is mapped again, with the new attempt's token
            token = self.mint_token(task_id)
            run.input = step_input(
                step.input_mappings,
                parent_input=scope.input,
                parent_local=scope.local,
                context=self.context(token),
            )
            self.check_size(run.input, "input", step.name)
        params = step.service_params.resolve(run.input) if step.service_params else None
        if params is not None:  # a few bytes of definition can repeat a large input many times
            self.check_size(params, "serviceParams", step.name)
        resource = str(step.resource_arn) if step.resource_arn is not None else step.action or ""
        detail = {
            "resource": resource,
            "pattern": step.pattern,
            "input": run.input,
            "attempt": run.attempt,
        }
        if params is not None:
            detail["serviceParams"] = params
        scheduled = self.emit("TaskScheduled", step.name, detail, run.entered)
        assert scheduled == task_id
        self.emit("TaskStarted", step.name, {}, task_id)
        run.task = task_id
        self.state.tasks[task_id] = scope.id
        if step.timeout_seconds:
            run.timeout_timer = self.start_timer(
                "timeout", scope.id, self.now + step.timeout_seconds
            )
        self.out.effects.append(
            InvokeTask(
                task_id,
                token,
                step.name,
                resource,
                step.pattern,
                run.input,
                params,
                step.timeout_seconds,
                run.attempt,
            )
        )

    def begin_wait(self, scope: Scope, step: WaitStep) -> None:
        run = scope.run
        assert run is not None
        if step.duration is not None:
            seconds = self.resolve(step.duration, run.input)
            if isinstance(seconds, str):
                try:
                    seconds = float(seconds)
                except ValueError:
                    seconds = None
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise _StepFault(
                    ERROR_RUNTIME,
                    f"wait step '{step.name}': duration "
                    f"{step.duration} gave {seconds!r}, not a number of seconds",
                )
            fire_at = self.now + float(seconds)
        else:
            stamp = self.resolve(step.timestamp, run.input)
            try:
                fire_at = parse_rfc3339(str(stamp)).astimezone(UTC).timestamp()
            except ValueError as exc:
                raise _StepFault(ERROR_RUNTIME, f"wait step '{step.name}': {exc}") from None
        if fire_at - self.now > self.limits.max_wait_seconds:
            raise _StepFault(
                ERROR_RUNTIME,
                f"wait step '{step.name}' would wait "
                f"{fire_at - self.now:.0f} seconds; the limit is "
                f"{self.limits.max_wait_seconds:.0f} (engine.max_wait_seconds)",
            )
        if fire_at <= self.now:
            self.finish_step(scope, {})
        else:
            run.timer = self.start_timer("wait", scope.id, fire_at)

    @staticmethod
    def resolve(value: Any, data: dict[str, Any]) -> Any:
        """A wait's duration or timestamp: a constant, or a path of the step's input."""
        if isinstance(value, str) and value.startswith("$"):
            return compile_source(value).evaluate({"input": data})
        return value

    def begin_choice(self, scope: Scope, step: ChoiceStep) -> None:
        run = scope.run
        assert run is not None
        ctx = self.context()
        sub: tuple[str | int, ...]
        for c, branch in enumerate(step.choices):
            if branch.condition.evaluate(run.input, ctx):
                steps, goto, sub = branch.steps, branch.goto, ("choices", c, "steps")
                break
        else:
            default = step.default
            steps = default.steps if default else None
            goto = default.goto if default else None
            sub = ("default", "steps")
        run.goto = goto
        if steps:
            key = FlowIndex.child_key(scope.key, run.index, *sub)
            run.children = [self.child(scope, 0, key, dict(run.input))]
            run.results = [None]
            run.pending = 1
        else:
            self.finish_step(scope, {})

    def begin_foreach(self, scope: Scope, step: ForeachStep) -> None:
        run = scope.run
        assert run is not None
        items = step.iteration_mapping.collection.evaluate({"input": run.input})
        if not isinstance(items, list):
            raise _StepFault(
                ERROR_RUNTIME,
                f"foreach step '{step.name}': collection "
                f"{step.iteration_mapping.collection.raw} is "
                f"{type(items).__name__ if items is not None else 'missing'}, not a list",
            )
        run.items = items
        run.results = [None] * len(items)
        run.children = [None] * len(items)
        run.next_item = 0
        run.pending = 0
        if not items:
            self.finish_step(scope, [])
            return
        self.launch_iterations(scope, step)

    def launch_iterations(self, scope: Scope, step: ForeachStep) -> None:
        run = scope.run
        assert run is not None and run.items is not None
        mapping = step.iteration_mapping
        key = FlowIndex.child_key(scope.key, run.index, "steps")
        while run.pending < self.limits.foreach_concurrency and run.next_item < len(run.items):
            i = run.next_item
            run.next_item += 1
            run.pending += 1
            self.emit("IterationEntered", step.name, {"index": i}, run.entered)
            data = iteration_input(run.input, mapping.item, run.items[i], mapping.index, i)
            run.children[i] = self.child(scope, i, key, data)

    # -- leaving steps ------------------------------------------------------------------------

    def finish_step(self, scope: Scope, local: Any, goto: str | None = None) -> None:
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
        except _StepFault as fault:
            self.fail_step(scope, fault.error, fault.cause)
            return
        self.emit("StepSucceeded", step.name, {"output": output}, run.entered)
        self.emit("StepExited", step.name, {}, run.entered)
        if isinstance(step, ChoiceStep):
            goto = run.goto
        self.leave(
            scope, output, goto, end=getattr(step, "end", False) or isinstance(step, SucceedStep)
        )

    def leave(self, scope: Scope, output: dict[str, Any], goto: str | None, *, end: bool) -> None:
        scope.run = None
        scope.local.update(output)
        if goto is not None:
            scope.pc = self.i.index.positions[scope.key][goto]
        elif end:
            self.finish_scope(scope)
            return
        else:
            scope.pc += 1
        if scope.pc >= len(self.i.index.lists[scope.key]):
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
                    run.timer = self.start_timer(
                        "retry", scope.id, self.now + policy.delay(used + 1)
                    )
                    return
                break
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

    def finish_scope(self, scope: Scope) -> None:
        """A serial list ran to its end."""
        state = self.state
        if scope.parent is None:
            flow = self.i.flow
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
        step = self.step_of(parent)
        if isinstance(step, ChoiceStep):
            self.finish_step(parent, scope.local)
            return
        kind = "BranchExited" if isinstance(step, ParallelStep) else "IterationExited"
        self.emit(kind, step.name, {"index": scope.slot}, run.entered)
        if isinstance(step, ForeachStep):
            self.launch_iterations(parent, step)
        if run.pending == 0:
            self.finish_step(parent, list(run.results))

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
        scope = self.state.scopes.pop(scope_id, None)
        if scope is not None and scope.run is not None:
            self.abandon_children(scope.run)

    def end(
        self,
        status: str,
        kind: str,
        *,
        output: dict[str, Any] | None = None,
        error: str = "",
        cause: str = "",
    ) -> None:
        state = self.state
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
