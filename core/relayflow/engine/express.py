"""Express flows: short executions run in memory and started synchronously (StartSyncExecution).

The operations are a part of `Engine` (it inherits `ExpressOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime

__all__ = ["EXECUTION_MODES", "ExpressOperations"]

EXECUTION_MODES = ("Standard", "Express")


class ExpressOperations:
    """The Express actions of the API, as `Engine` methods."""

    _runtime: Runtime
