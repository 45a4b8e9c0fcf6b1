"""Schedules (CreateSchedule ... DeleteSchedule): a flow started at every tick of a cron expression.

The operations are a part of `Engine` (it inherits `ScheduleOperations`); the loop that fires
due schedules runs in the engine's runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime

__all__ = ["ScheduleOperations"]


class ScheduleOperations:
    """The schedule actions of the API, as `Engine` methods."""

    _runtime: Runtime
