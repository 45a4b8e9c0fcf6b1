"""The pages listings answer with, and an execution's history: `Page`, `HistoryPage`.

`Page` is one page of any listing (`Page[FlowInfo]`, `Page[ExecutionInfo]`, ...); `HistoryPage`
is one page of GetExecutionHistory, the `HistoryEvent`s it holds made from the engine's stored
records or from the server's answer. They live apart from `relayflow.results` (which re-exports
them, so `from relayflow.results import Page` keeps working) to keep each module small: the
flows' and executions' own results stay there, the paging and the history here.

A leaf like `relayflow.results`: it imports only the standard library and
`relayflow.result_fields`, so that the client stays light (`tests/test_client_imports.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from relayflow.result_fields import (
    epoch_seconds,
    int_field,
    invalid_answer,
    iso_time,
    parse_object,
    parse_time,
    text_field,
)

if TYPE_CHECKING:  # only for annotations: the store is the server's side
    from relayflow.store.records import HistoryEvent as HistoryRecord

__all__ = ["HistoryEvent", "HistoryPage", "Page"]

T = TypeVar("T")


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an execution's history, as GetExecutionHistory answers.

    Attributes:
        event_id: its id, increasing within the execution.
        schedule_event_id: the id of the event that scheduled it (0 when none).
        step_name: the step it belongs to ("" for execution events).
        type: such as `ExecutionStarted`, `StepEntered`, `TaskSubmitted`, `TaskSucceeded`.
        time: when it happened (UTC).
        detail: `EventDetail`, as a dict.
        raw: the API's fields as the server sent them (`EventDetail` as JSON text); `{}` from
            the embedded engine.
    """

    event_id: int
    schedule_event_id: int
    step_name: str
    type: str
    time: datetime | None
    detail: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, record: HistoryRecord) -> HistoryEvent:
        """From the engine's stored event record (whose `time` is seconds since the epoch)."""
        # Filled in directly, not through the frozen __init__ (one object.__setattr__ a field):
        # a history page makes up to 999 of these, and this takes half the time (0.8 us, not 1.4).
        event = object.__new__(cls)
        event.__dict__.update(
            event_id=record.event_id,
            schedule_event_id=record.schedule_event_id,
            step_name=record.step_name,
            type=record.type,
            time=datetime.fromtimestamp(record.time, UTC),
            detail=record.detail,
            raw={},
        )
        return event

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> HistoryEvent:
        """From the answer's fields (`EventId`, `Type`, `EventDetail`, ...).

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, a field cannot be read.
        """
        return cls(
            event_id=int_field(doc, "EventId"),
            schedule_event_id=int_field(doc, "ScheduleEventId"),
            step_name=text_field(doc, "StepName"),
            type=text_field(doc, "Type"),
            time=parse_time(doc.get("Time")),
            detail=parse_object(doc.get("EventDetail"), "an EventDetail"),
            raw=doc,
        )

    def to_record(self) -> HistoryRecord:
        """The engine's stored shape of this event (`time` in seconds since the epoch)."""
        from relayflow.store.records import HistoryEvent as Record  # the store's side, on use

        when = epoch_seconds(self.time) or 0.0
        return Record(
            self.event_id, self.schedule_event_id, self.type, self.step_name, when, self.detail
        )

    def to_api(self) -> dict[str, Any]:
        """The fields of one event in GetExecutionHistory's answer."""
        return {
            "EventId": self.event_id,
            "ScheduleEventId": self.schedule_event_id,
            "StepName": self.step_name,
            "Type": self.type,
            "Time": iso_time(self.time),
            "EventDetail": json.dumps(self.detail),
        }


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: `Page[FlowInfo]`, `Page[ExecutionInfo]`, `HistoryPage`.

    `items` is a list: a page is made fresh for each call, its items hold dicts (so a tuple
    would not make it hashable), and a list compares equal to the lists code compares it with
    (`page.items == []`). Any iterable given is copied into a list.

    Attributes:
        items: what this page holds, in the server's order.
        next_token: pass it as `next_token` to get the next page; "" on the last page.
        request_id: the server's `RequestId` for this page ("" from the embedded engine).
    """

    items: list[T]
    next_token: str = ""
    request_id: str = ""

    def __post_init__(self) -> None:
        if type(self.items) is not list:
            object.__setattr__(self, "items", list(self.items))

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return not self.next_token

    @classmethod
    def from_api(cls, doc: dict[str, Any], key: str, item: Callable[[dict[str, Any]], T]) -> Self:
        """From a listing answer whose items are under ``key``.

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, ``key`` is not a list of objects.
        """
        rows = doc.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            invalid_answer(
                f"the server sent {key} that is not a list of objects", text_field(doc, "RequestId")
            )
        return cls(
            [item(row) for row in rows], text_field(doc, "NextToken"), text_field(doc, "RequestId")
        )


@dataclass(frozen=True)
class HistoryPage(Page[HistoryEvent]):
    """One page of an execution's history, oldest first: a `Page[HistoryEvent]`.

    The embedded engine builds it from its stored event records; they become `HistoryEvent`s
    in `items`, and `events` still gives the records themselves.
    """

    def __post_init__(self) -> None:
        items: Iterable[Any] = self.items
        records = [e for e in items if not isinstance(e, HistoryEvent)]
        if records:  # the engine's records: keep them for `events`, convert them for `items`
            object.__setattr__(self, "_records", records)
            items = [e if isinstance(e, HistoryEvent) else HistoryEvent.of(e) for e in items]
        object.__setattr__(self, "items", list(items))

    @property
    def events(self) -> list[HistoryRecord]:
        """The events as the engine stores them, `time` in seconds (the engine's former field).

        New code reads `items`, which holds the same events as `HistoryEvent`s.
        """
        records: list[HistoryRecord] | None = self.__dict__.get("_records")
        if records is None or len(records) != len(self.items):
            records = [e.to_record() for e in self.items]
        return records

    def to_api(self) -> dict[str, Any]:
        """The fields of GetExecutionHistory's answer."""
        # Written out rather than calling each event's to_api(): a page holds up to 999 events.
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
                for e in self.items
            ],
            "NextToken": self.next_token,
        }
