"""What running executions wait on, on what, and since when.

The operations are a part of `Engine` (it inherits `WaitingOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime
    from relayflow.results import WaitingWork
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["WaitingOperations", "waiting_of"]


def waiting_of(tx: Transaction, row: ExecutionRow) -> tuple[WaitingWork, ...]:
    """What one execution waits on now (nothing once it has ended)."""
    return ()


class WaitingOperations:
    """ListWaitingWork, as an `Engine` method."""

    _runtime: Runtime
