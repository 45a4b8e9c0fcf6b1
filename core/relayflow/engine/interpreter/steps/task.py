"""Task steps: schedule an attempt, with its token, input, serviceParams and timeout timer.

The attempt's outcome comes back as a command (`TaskSucceeded`, `TaskFailed`, a timeout timer),
which `_machine.py` handles; a retry schedules a new attempt through `begin` again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.dataflow import step_input
from relayflow.engine.correlation import key_of
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.model import InvokeTask, Scope
from relayflow.fdl import TaskStep

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["TASK"]


def schedule(m: Machine, scope: Scope, step: TaskStep, token: str | None) -> None:
    """Schedule a task attempt: TaskScheduled, TaskStarted, and an `InvokeTask` effect.

    ``token`` is the first attempt's, minted before its input was mapped; a retry passes None,
    and its input is mapped again with the new attempt's token.
    """
    run = scope.run
    assert run is not None
    task_id = m.state.next_event
    if token is None:  # a retry: the input is mapped again, with the new attempt's token
        token = m.mint_token(task_id)
        run.input = step_input(
            step.input_mappings,
            parent_input=scope.input,
            parent_local=scope.local,
            context=m.context(token),
        )
        m.check_size(run.input, "input", step.name)
    params = step.service_params.resolve(run.input) if step.service_params else None
    if params is not None:  # a few bytes of definition can repeat a large input many times
        m.check_size(params, "serviceParams", step.name)
    resource = str(step.resource_arn) if step.resource_arn is not None else step.action or ""
    detail = {
        "resource": resource,
        "pattern": step.pattern,
        "input": run.input,
        "attempt": run.attempt,
    }
    if params is not None:
        detail["serviceParams"] = params
    scheduled = m.emit("TaskScheduled", step.name, detail, run.entered)
    assert scheduled == task_id
    m.emit("TaskStarted", step.name, {}, task_id)
    run.task = task_id
    m.state.tasks[task_id] = scope.id
    run.since = m.now
    timeout = step.timeout_seconds
    if not timeout and step.pattern == "waitForCallback":
        # A token that is lost must not hold the execution for as long as it may run.
        timeout = m.limits.default_callback_timeout_seconds or None
    if timeout:
        run.timeout_timer = m.start_timer("timeout", scope.id, m.now + timeout)
    m.out.effects.append(
        InvokeTask(
            task_id,
            token,
            step.name,
            resource,
            step.pattern,
            run.input,
            params,
            timeout,
            run.attempt,
            key_of(step, run.input),
        )
    )


TASK = StepKind(schedule, mints_token=True)
