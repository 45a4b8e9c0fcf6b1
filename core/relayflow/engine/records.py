"""What the engine's operations return: flows, executions, history pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relayflow.engine.model import HistoryEvent
from relayflow.store import ExecutionRow, FlowRow

__all__ = ["ExecutionInfo", "FlowInfo", "HistoryPage", "Page", "iso_time"]


def iso_time(seconds: float | None) -> str:
    """Seconds since the epoch as ISO-8601 UTC with milliseconds: `2019-01-01T01:01:01.001Z`."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class FlowInfo:
    """A flow, as DescribeFlow shows it."""

    name: str
    id: str
    definition: str
    description: str
    type: str
    role_arn: str
    version: int
    created: float
    modified: float

    @classmethod
    def of(cls, row: FlowRow) -> FlowInfo:
        """From a store row."""
        return cls(
            row.name,
            row.id,
            row.definition,
            row.description,
            row.type,
            row.role_arn,
            row.version,
            row.created,
            row.modified,
        )

    def to_api(self) -> dict[str, Any]:
        """The fields of Serverless Workflow's DescribeFlow response."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Definition": self.definition,
            "Description": self.description,
            "Type": self.type,
            "RoleArn": self.role_arn,
            "CreatedTime": iso_time(self.created),
            "LastModifiedTime": iso_time(self.modified),
            "ExecutionMode": "Standard",
        }


@dataclass(frozen=True)
class ExecutionInfo:
    """An execution, as DescribeExecution shows it."""

    flow_name: str
    name: str
    status: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str
    cause: str
    started: float
    stopped: float | None
    definition: str

    @classmethod
    def of(cls, row: ExecutionRow, definition: str = "") -> ExecutionInfo:
        """From a store row and the definition the execution runs."""
        return cls(
            row.flow_name,
            row.name,
            row.status,
            json.loads(row.input),
            json.loads(row.output) if row.output else None,
            row.error,
            row.cause,
            row.started,
            row.stopped,
            definition,
        )

    @property
    def done(self) -> bool:
        """Whether the execution has a final status."""
        return self.status in ("Succeeded", "Failed", "TimedOut", "Stopped")

    def to_api(self) -> dict[str, Any]:
        """The fields of Serverless Workflow's DescribeExecution response."""
        doc: dict[str, Any] = {
            "Name": self.name,
            "FlowName": self.flow_name,
            "FlowDefinition": self.definition,
            "Input": json.dumps(self.input),
            "Status": self.status,
            "StartedTime": iso_time(self.started),
            "StoppedTime": iso_time(self.stopped),
        }
        if self.output is not None:
            doc["Output"] = json.dumps(self.output)
        if self.error or self.cause:
            doc["Error"], doc["Cause"] = self.error, self.cause
        return doc


@dataclass(frozen=True)
class Page:
    """One page of a listing and the token of the next (empty at the end)."""

    items: list[Any]
    next_token: str


@dataclass(frozen=True)
class HistoryPage:
    """One page of an execution's history."""

    events: list[HistoryEvent]
    next_token: str

    def to_api(self) -> dict[str, Any]:
        """The fields of GetExecutionHistory's response."""
        return {
            "Events": [
                {
                    "EventId": e.event_id,
                    "ScheduleEventId": e.schedule_event_id,
                    "StepName": e.step_name,
                    "Type": e.type,
                    "Time": iso_time(e.time),
                    "EventDetail": json.dumps(e.detail),
                }
                for e in self.events
            ],
            "NextToken": self.next_token,
        }
