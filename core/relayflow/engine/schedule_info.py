"""What a schedule is: its stored fields (`ScheduleData`) and what the API answers (`ScheduleInfo`).

A schedule is a flow object (`relayflow.store.FlowObjectRow`, kind `schedule`): the store keeps
its fields as JSON text in the row's `data` and its next tick in `due_at` (None while it is
disabled); the row's `created` and `modified` are its CreatedTime and LastModifiedTime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relayflow.results import iso_time
from relayflow.store import FlowObjectRow

__all__ = ["KIND", "ScheduleData", "ScheduleInfo"]

#: The kind of flow object a schedule is.
KIND = "schedule"


@dataclass(frozen=True)
class ScheduleData:
    """The fields of a schedule kept in its row's `data`.

    Attributes:
        schedule_id: its ScheduleId (a UUID).
        cron_expression: the CronExpression as given.
        payload: the Payload as given: JSON object text, or "" for none.
        enable: whether it fires.
        description: free text.
    """

    schedule_id: str
    cron_expression: str
    payload: str
    enable: bool
    description: str

    def dumps(self) -> str:
        """The JSON text for the row's `data`."""
        return json.dumps(
            {
                "ScheduleId": self.schedule_id,
                "CronExpression": self.cron_expression,
                "Payload": self.payload,
                "Enable": self.enable,
                "Description": self.description,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> ScheduleData:
        """Read a row's `data` (written by `dumps`)."""
        doc = json.loads(text)
        return cls(
            str(doc["ScheduleId"]),
            str(doc["CronExpression"]),
            str(doc.get("Payload") or ""),
            bool(doc.get("Enable", True)),
            str(doc.get("Description") or ""),
        )


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as DescribeSchedule answers it.

    Attributes:
        flow_name: the flow it starts.
        schedule_name: its name, unique within the flow.
        schedule_id: its ScheduleId.
        cron_expression: when it fires (`relayflow.engine.cron`).
        payload: the input of each execution it starts, JSON object text ("" for `{}`).
        enable: whether it fires.
        description: free text.
        created: when it was created, epoch seconds.
        modified: when it was last changed by UpdateSchedule (firing does not change it).
        next_tick: when it fires next, epoch seconds; None while disabled.
    """

    flow_name: str
    schedule_name: str
    schedule_id: str
    cron_expression: str
    payload: str
    enable: bool
    description: str
    created: float
    modified: float
    next_tick: float | None

    @classmethod
    def of(cls, row: FlowObjectRow) -> ScheduleInfo:
        """The schedule a stored row holds."""
        data = ScheduleData.loads(row.data)
        return cls(
            row.flow_name,
            row.name,
            data.schedule_id,
            data.cron_expression,
            data.payload,
            data.enable,
            data.description,
            row.created,
            row.modified,
            row.due_at,
        )

    def to_api(self) -> dict[str, Any]:
        """The API's fields (DescribeSchedule's answer without its RequestId)."""
        return {
            "ScheduleName": self.schedule_name,
            "ScheduleId": self.schedule_id,
            "CronExpression": self.cron_expression,
            "Payload": self.payload,
            "Enable": self.enable,
            "Description": self.description,
            "CreatedTime": iso_time(self.created),
            "LastModifiedTime": iso_time(self.modified),
        }
