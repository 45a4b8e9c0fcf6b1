"""Bulk actions: stop or redrive every execution of a flow that a filter matches.

The operations are a part of `Engine` (it inherits `BulkOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime

__all__ = ["BulkOperations"]


class BulkOperations:
    """StopExecutions, RedriveExecutions and CountExecutions, as `Engine` methods."""

    _runtime: Runtime
