"""RedriveExecution: a Failed, TimedOut or Stopped execution goes on from where it ended.

The operations are a part of `Engine` (it inherits `RedriveOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.errors import EngineError

if TYPE_CHECKING:
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime

__all__ = ["RedriveOperations"]


class RedriveOperations:
    """RedriveExecution, as an `Engine` method."""

    _runtime: Runtime

    async def redrive_execution(
        self, flow_name: str, name: str, *, use_current_definition: bool = False
    ) -> ExecutionInfo:
        """Make an execution that ended without success go on from the step that failed."""
        raise EngineError.of("InternalError", "RedriveExecution is not built yet")
