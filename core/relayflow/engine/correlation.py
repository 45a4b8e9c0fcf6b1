"""Reports by correlation key: reaching a waiting task without its token.

The operations are a part of `Engine` (it inherits `CorrelationOperations`). `note_effects`
registers and forgets the keys of callback tasks as their attempts open and close, in the
transaction that records them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.model import Transition
    from relayflow.engine.runtime import Runtime
    from relayflow.fdl import TaskStep
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["CorrelationOperations", "key_of", "note_effects"]


def key_of(step: TaskStep, task_input: dict[str, Any]) -> str | None:
    """The correlation key of a task attempt with this input; None when the step declares none.

    Pure: the interpreter calls it as it schedules each attempt (`InvokeTask.correlation_key`).
    """
    return None


def note_effects(
    tx: Transaction, ctx: TxContext, row: ExecutionRow, transition: Transition
) -> None:
    """Register or forget correlation keys for the task attempts ``transition`` opens or closes."""


class CorrelationOperations:
    """Task reports by correlation key, as `Engine` methods."""

    _runtime: Runtime
