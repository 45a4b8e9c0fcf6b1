"""What the client returns: flows, executions, history events, pages, and `ClientError`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "FINAL_STATUSES",
    "ClientError",
    "Execution",
    "ExecutionPage",
    "Flow",
    "FlowPage",
    "HistoryEvent",
    "HistoryPage",
    "Page",
]

T = TypeVar("T")

FINAL_STATUSES = frozenset({"Succeeded", "Failed", "TimedOut", "Stopped"})
"""The statuses an execution ends with; it never changes again after one of them."""


class ClientError(Exception):
    """A call that did not succeed: the server refused it, or it never got an answer.

    Attributes:
        code: a stable name. The server's `Code` (such as `ExecutionNotExists`,
            `TaskAlreadyCompleted`, `SignatureDoesNotMatch`), or one of the client's own:
            `ConnectionFailed` (the server cannot be reached), `RequestTimeout` (no answer in
            time), `InvalidResponse` (an answer that is not the API's JSON).
        message: one sentence for a person.
        status: the HTTP status of the answer; 0 when there was none.
        request_id: the server's `RequestId`, to find the request in its log; "" when unknown.
    """

    def __init__(self, code: str, message: str, status: int = 0, request_id: str = "") -> None:
        super().__init__(code, message, status, request_id)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse_time(value: Any) -> datetime | None:
    """An API time (`2019-01-01T01:01:01.001Z`) as an aware datetime; None when empty."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ClientError(
            "InvalidResponse", f"the server sent a time that is not ISO 8601: {value!r}"
        ) from None


def parse_object(value: Any, what: str) -> dict[str, Any]:
    """JSON object text from the API as a dict; "" and a missing field are `{}`."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(value) if isinstance(value, str | bytes) else value
    except ValueError:
        raise ClientError(
            "InvalidResponse", f"the server sent {what} that is not JSON: {str(value)[:80]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ClientError(
            "InvalidResponse",
            f"the server sent {what} that is not a JSON object: {str(value)[:80]!r}",
        )
    return data


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return "" if value is None else str(value)


def _int(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ClientError(
            "InvalidResponse", f"the server sent {key} that is not a whole number: {value!r}"
        ) from None


@dataclass(frozen=True)
class Flow:
    """A flow, as CreateFlow, UpdateFlow, DescribeFlow and ListFlows return it.

    Attributes:
        name: the flow's name.
        id: its id, which stays the same across updates.
        definition: the FDL text.
        description: free text.
        type: always `FDL`.
        role_arn: the RoleArn given at creation ("" when none).
        created_time, last_modified_time: when it was created and last updated (UTC).
        execution_mode: `Standard`.
        raw: the API's fields as sent (with `RequestId` when the flow is a whole response).
    """

    name: str
    id: str
    definition: str
    description: str
    type: str
    role_arn: str
    created_time: datetime | None
    last_modified_time: datetime | None
    execution_mode: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Flow:
        """From the response fields (`Name`, `Id`, `Definition`, ...)."""
        return cls(
            name=_str(doc, "Name"),
            id=_str(doc, "Id"),
            definition=_str(doc, "Definition"),
            description=_str(doc, "Description"),
            type=_str(doc, "Type"),
            role_arn=_str(doc, "RoleArn"),
            created_time=parse_time(doc.get("CreatedTime")),
            last_modified_time=parse_time(doc.get("LastModifiedTime")),
            execution_mode=_str(doc, "ExecutionMode"),
            raw=doc,
        )


@dataclass(frozen=True)
class Execution:
    """An execution, as the Start, Describe, Stop and List Execution(s) actions return it.

    Attributes:
        name: the execution's name, unique within its flow.
        flow_name: the flow it runs.
        status: `Starting`, `Running`, `Succeeded`, `Failed`, `TimedOut` or `Stopped`.
        input: the input object, parsed.
        output: the output object, parsed; None while it has none.
        error, cause: why it failed or was stopped ("" otherwise).
        started_time, stopped_time: when it started and ended (UTC); `stopped_time` is None
            while it runs.
        flow_definition: the definition it runs, as it was when the execution started.
        raw: the API's fields as sent (`Input` and `Output` as JSON text).
    """

    name: str
    flow_name: str
    status: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str
    cause: str
    started_time: datetime | None
    stopped_time: datetime | None
    flow_definition: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the execution has ended (succeeded, failed, timed out or stopped)."""
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """Whether the execution ended with `Succeeded`."""
        return self.status == "Succeeded"

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Execution:
        """From the response fields (`Name`, `FlowName`, `Input`, `Status`, ...)."""
        output = doc.get("Output")
        return cls(
            name=_str(doc, "Name"),
            flow_name=_str(doc, "FlowName"),
            status=_str(doc, "Status"),
            input=parse_object(doc.get("Input"), "an execution Input"),
            output=None if output is None else parse_object(output, "an execution Output"),
            error=_str(doc, "Error"),
            cause=_str(doc, "Cause"),
            started_time=parse_time(doc.get("StartedTime")),
            stopped_time=parse_time(doc.get("StoppedTime")),
            flow_definition=_str(doc, "FlowDefinition"),
            raw=doc,
        )


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an execution's history, as GetExecutionHistory returns it.

    Attributes:
        event_id: its id, increasing within the execution.
        schedule_event_id: the id of the event that scheduled it (0 when none).
        step_name: the step it belongs to ("" for execution events).
        type: such as `ExecutionStarted`, `StepEntered`, `TaskSubmitted`, `TaskSucceeded`.
        time: when it happened (UTC).
        detail: `EventDetail`, parsed.
        raw: the API's fields as sent (`EventDetail` as JSON text).
    """

    event_id: int
    schedule_event_id: int
    step_name: str
    type: str
    time: datetime | None
    detail: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> HistoryEvent:
        """From the response fields (`EventId`, `Type`, `EventDetail`, ...)."""
        return cls(
            event_id=_int(doc, "EventId"),
            schedule_event_id=_int(doc, "ScheduleEventId"),
            step_name=_str(doc, "StepName"),
            type=_str(doc, "Type"),
            time=parse_time(doc.get("Time")),
            detail=parse_object(doc.get("EventDetail"), "an EventDetail"),
            raw=doc,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing.

    Attributes:
        items: what this page holds, in the server's order.
        next_token: pass it as `next_token` to get the next page; "" on the last page.
        request_id: the server's `RequestId` for this page.
    """

    items: tuple[T, ...]
    next_token: str
    request_id: str = ""

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return not self.next_token

    @classmethod
    def from_api(
        cls, doc: dict[str, Any], key: str, item: Callable[[dict[str, Any]], T]
    ) -> Page[T]:
        """From a listing response whose items are under ``key``."""
        rows = doc.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ClientError(
                "InvalidResponse",
                f"the server sent {key} that is not a list of objects",
                request_id=_str(doc, "RequestId"),
            )
        return cls(tuple(item(row) for row in rows), _str(doc, "NextToken"), _str(doc, "RequestId"))


FlowPage = Page[Flow]
ExecutionPage = Page[Execution]
HistoryPage = Page[HistoryEvent]
