"""Reports by correlation key: reaching a waiting task without its token.

The operations are a part of `Engine` (it inherits `CorrelationOperations`). `note_effects`
registers and forgets the keys of callback tasks as their attempts open and close, in the
transaction that records them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.model import Transition
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["CorrelationOperations", "note_effects"]


def note_effects(
    tx: Transaction, ctx: TxContext, row: ExecutionRow, transition: Transition
) -> None:
    """Register or forget correlation keys for the task attempts ``transition`` opens or closes."""


class CorrelationOperations:
    """Task reports by correlation key, as `Engine` methods."""

    _runtime: Runtime
