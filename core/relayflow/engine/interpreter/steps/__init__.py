"""The step kinds, one module each, and the table that picks a step's kind by its model class.

`kind_of(step)` answers for the built-in types from `KINDS`, and for a plugin's type from the
handler registered with it (`relayflow.fdl.register_step_type`).
"""

from __future__ import annotations

from typing import Any

from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.interpreter.steps.choice import CHOICE
from relayflow.engine.interpreter.steps.foreach import FOREACH
from relayflow.engine.interpreter.steps.parallel import PARALLEL
from relayflow.engine.interpreter.steps.plugin import plugin_kind
from relayflow.engine.interpreter.steps.simple import FAIL, PASS, SUCCEED
from relayflow.engine.interpreter.steps.task import TASK
from relayflow.engine.interpreter.steps.wait import WAIT
from relayflow.fdl import (
    ChoiceStep,
    FailStep,
    ForeachStep,
    ParallelStep,
    PassStep,
    StepBase,
    StepHandler,
    SucceedStep,
    TaskStep,
    WaitStep,
    step_handler,
)

__all__ = ["KINDS", "kind_of"]

#: The built-in step types' kinds, by model class.
KINDS: dict[type[StepBase], StepKind[Any]] = {
    PassStep: PASS,
    SucceedStep: SUCCEED,
    FailStep: FAIL,
    TaskStep: TASK,
    WaitStep: WAIT,
    ChoiceStep: CHOICE,
    ParallelStep: PARALLEL,
    ForeachStep: FOREACH,
}

_PLUGIN_KINDS: dict[type[StepBase], tuple[StepHandler, StepKind[Any]]] = {}


def kind_of(step: StepBase) -> StepKind[Any] | None:
    """How to run ``step``; None when nothing can (its type was unregistered since)."""
    kind = KINDS.get(type(step))
    if kind is not None:
        return kind
    handler = step_handler(step.type)
    if handler is None:
        return None
    model = type(step)
    known = _PLUGIN_KINDS.get(model)
    if known is None or known[0] is not handler:  # a kind per handler, made once
        known = _PLUGIN_KINDS[model] = (handler, plugin_kind(handler))
    return known[1]
