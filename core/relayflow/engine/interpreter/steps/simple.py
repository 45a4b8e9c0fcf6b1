"""Pass, succeed and fail steps: they end as soon as they begin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.model import Scope
from relayflow.fdl import FailStep, StepBase

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["FAIL", "PASS", "SUCCEED"]


def succeed(m: Machine, scope: Scope, step: StepBase, token: str | None) -> None:
    """Succeed with an empty `$local`; outputMappings shape the output."""
    m.finish_step(scope, {})


def fail(m: Machine, scope: Scope, step: FailStep, token: str | None) -> None:
    """Fail with the step's error and cause."""
    m.fail_step(scope, step.error or "", step.cause or "")


PASS: StepKind[StepBase] = StepKind(succeed)
SUCCEED: StepKind[StepBase] = StepKind(succeed, ends_list=True)
FAIL = StepKind(fail)
