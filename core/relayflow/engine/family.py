"""Parents and children: the executions a task started, linked both ways.

The operations are a part of `Engine` (it inherits `FamilyOperations`). `link_parent` records
a child's parent as the child starts; `stop_children` stops an ended parent's running
children in the transaction that ends it; `with_family` adds the links to an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.applier import Applier
    from relayflow.engine.batches import TxContext
    from relayflow.engine.model import ExecutionState
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["FamilyOperations", "link_parent", "stop_children", "with_family"]


def link_parent(tx: Transaction, child_id: int, parent: tuple[str, str] | None) -> None:
    """Record that the execution ``parent`` (flow, name) started ``child_id``."""


def stop_children(
    applier: Applier, tx: Transaction, ctx: TxContext, row: ExecutionRow, state: ExecutionState
) -> None:
    """An execution ended: stop its running children, in the same transaction."""


def with_family(tx: Transaction, row: ExecutionRow, info: ExecutionInfo) -> ExecutionInfo:
    """``info`` with its parent and children, as DescribeExecution answers."""
    return info


class FamilyOperations:
    """The family of an execution, as `Engine` methods."""

    _runtime: Runtime
