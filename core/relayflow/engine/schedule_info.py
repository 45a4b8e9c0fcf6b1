"""What a schedule is to the engine: a flow object of kind `schedule`.

The store keeps a schedule's fields as JSON text in the row's `data` (`ScheduleData`) and its
next tick in `due_at` (None while it is disabled); the row's `created` and `modified` are its
CreatedTime and LastModifiedTime. `ScheduleData` and `ScheduleInfo` live in the leaf module
`relayflow.flow_objects`, so that the client returns the same `ScheduleInfo` as the engine.
"""

from __future__ import annotations

from relayflow.flow_objects import ScheduleData, ScheduleInfo

__all__ = ["KIND", "ScheduleData", "ScheduleInfo"]

#: The kind of flow object a schedule is.
KIND = "schedule"
