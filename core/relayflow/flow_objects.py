"""What the operations answer about a flow's objects (schedules), embedded or remote.

A leaf like `relayflow.results`, whose helpers it uses: it imports the standard library and
`relayflow.results` only, so that the client returns these types without loading the engine
(`tests/test_client_imports.py`). The engine builds them from its stored rows (`of`), the
client from the API's answers (`from_api`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.result_fields import iso_time, parse_time

if TYPE_CHECKING:  # only for annotations: the store is the server's side
    from relayflow.store.records import FlowObjectRow

__all__ = ["ScheduleData", "ScheduleInfo"]


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


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _flag(value: Any) -> bool:
    # The API answers a JSON boolean; text is read as the service's SDKs send it, any case.
    return value.strip().lower() == "true" if isinstance(value, str) else bool(value)


def _seconds(value: Any) -> float:
    moment = parse_time(value)
    return 0.0 if moment is None else moment.timestamp()


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
        next_tick: when it fires next, epoch seconds; None while disabled, and from the
            client (the API does not send it).
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
        """The schedule a stored row holds (the engine's side)."""
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

    @classmethod
    def from_api(cls, doc: dict[str, Any], flow_name: str) -> ScheduleInfo:
        """From DescribeSchedule's fields (the client's side); `next_tick` is None.

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, a time is not ISO 8601.
        """
        return cls(
            flow_name,
            _text(doc, "ScheduleName"),
            _text(doc, "ScheduleId"),
            _text(doc, "CronExpression"),
            _text(doc, "Payload"),
            _flag(doc.get("Enable")),
            _text(doc, "Description"),
            _seconds(doc.get("CreatedTime")),
            _seconds(doc.get("LastModifiedTime")),
            None,
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
