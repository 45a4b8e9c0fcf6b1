"""`StepKind`: what the interpreter needs to know to run one step type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from relayflow.engine.model import Scope
from relayflow.fdl import StepBase

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["StepKind"]

S = TypeVar("S", bound=StepBase)


@dataclass(frozen=True, slots=True)
class StepKind(Generic[S]):
    """How the interpreter runs the steps of one type.

    Attributes:
        begin: starts the step once it is entered (and again for each retry), given the
            machine, the scope at the step, the step, and the task token minted for it (None
            unless `mints_token`). It finishes or fails the step, or leaves it waiting for a
            task, a timer or child lists.
        child_done: a child list of the step ran to its end (steps that hold lists only); the
            list's scope is already removed and its result stored in the step's run.
        mints_token: the first attempt's token is made before the input is mapped, so that
            inputMappings can read `$context.task.token` (task steps).
        ends_list: leaving the step successfully ends its list (succeed steps).
    """

    begin: Callable[[Machine, Scope, S, str | None], None]
    child_done: Callable[[Machine, Scope, Scope], None] | None = None
    mints_token: bool = False
    ends_list: bool = False
