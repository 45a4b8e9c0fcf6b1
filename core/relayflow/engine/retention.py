"""Retention: ended executions older than `[engine] retention_days` are deleted, in small batches.

The operations are a part of `Engine` (it inherits `RetentionOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime

__all__ = ["RetentionOperations"]


class RetentionOperations:
    """PurgeExecutions and the retention loop, as `Engine` methods."""

    _runtime: Runtime
    #: Days an ended execution is kept; None keeps it for ever (`Engine(retention_days=)`).
    _retention_days: float | None

    async def _start_retention(self) -> None:
        """Start the retention loop (when `retention_days` is set); `Engine.start` calls it."""

    async def _stop_retention(self) -> None:
        """Stop the retention loop; `Engine.close` calls it."""
