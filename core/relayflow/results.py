"""What relayflow's operations answer with, embedded or remote: flows, executions, history, pages.

`relayflow.engine.Engine`, `relayflow.engine.SyncEngine`, `relayflow.client.Client` and
`relayflow.client.AsyncClient` all return these frozen dataclasses, so code written against
one runs against the others:

    run = engine.start_execution("orders", {"id": 7}, name="order-7")   # SyncEngine or Client
    run.status, run.started_time, run.flow_definition                     # same fields
    page = engine.list_executions("orders", status="Running")
    page.items, page.next_token                                           # a Page[ExecutionInfo]

Field names are the Serverless Workflow API's answer keys in snake_case (`StartedTime` is
`started_time`, `FlowDefinition` is `flow_definition`); times are aware UTC datetimes.

Names kept for code written before the two vocabularies became one (they keep working, and
are not going away):

| old name | is now |
| --- | --- |
| `relayflow.client.Flow` | `FlowInfo` (a stored flow; `relayflow.fdl.Flow` is a definition) |
| `relayflow.client.Execution`, `relayflow.engine.ExecutionInfo` | `ExecutionInfo` |
| `ExecutionInfo.started`, `.stopped` (float seconds) | `started_time`, `stopped_time` |
| `ExecutionInfo.definition` | `flow_definition` |
| `FlowInfo.created`, `.modified` (float seconds) | `created_time`, `last_modified_time` |
| `HistoryPage.events` (the engine's event records, `time` in seconds) | `items` |

One thing did change for the client: `Page.items` was a tuple and is now a list, as the
engine's always was (see `Page` for why); indexing, iterating and `len` are as before.

This module holds the flows' and executions' results. `Page`, `HistoryPage` and `HistoryEvent`
live in `relayflow.result_pages`, the bulk actions' and purges' results in
`relayflow.bulk_results` (each kept small); both are re-exported here, the one place to import
all of these names from.

This module is a leaf: it imports only the standard library and those siblings (with
`relayflow.result_fields`, how the answers' fields are read and written), so that the client,
which returns these types too, stays light (`tests/test_client_imports.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from relayflow.bulk_results import BulkFailure, BulkPage, BulkSkip, PurgeResult
from relayflow.result_fields import (
    environment_field,
    epoch_seconds,
    int_field,
    invalid_answer,
    iso_time,
    object_list,
    parse_object,
    parse_time,
    text_field,
    utc_datetime,
    variables_of,
)
from relayflow.result_pages import HistoryEvent, HistoryPage, Page

if TYPE_CHECKING:  # only for annotations: the store and the engine are the server's side
    from relayflow.store.records import ExecutionRow, FlowRow

__all__ = [
    "FINAL_STATUSES",
    "BulkFailure",
    "BulkPage",
    "BulkSkip",
    "ExecutionInfo",
    "ExecutionRef",
    "FlowInfo",
    "HistoryEvent",
    "HistoryPage",
    "Page",
    "PurgeResult",
    "WaitingWork",
    "iso_time",
]

FINAL_STATUSES = frozenset({"Succeeded", "Failed", "TimedOut", "Stopped"})
"""The statuses an execution ends with; it never changes again after one of them."""


# -- the results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowInfo:
    """A flow, as CreateFlow, UpdateFlow, DescribeFlow and ListFlows answer.

    Not to be confused with `relayflow.fdl.Flow`, a parsed definition: this is the stored
    resource, with its name, id and times. `relayflow.client.Flow` is another name for it.

    Attributes:
        name: the flow's name.
        id: its id, which stays the same across updates.
        definition: the FDL text.
        description: free text.
        type: always `FDL`.
        role_arn: the RoleArn given at creation ("" when none).
        created_time: when it was created (UTC).
        last_modified_time: when it was last updated (UTC).
        execution_mode: `Standard` or `Express`.
        version: the engine's revision of the definition, 1 at creation, one more for each
            update that changes it. The API does not send it: 0 from the client.
        environment: the flow's `Environment`, `{"Variables": [{"Name", "Value",
            "Description"}, ...]}` (`{"Variables": []}` when it has none).
        raw: the API's fields as the server sent them (with `RequestId` when the flow is a
            whole answer); `{}` from the embedded engine, which sent nothing (`to_api()` gives
            the same fields the server would).
    """

    name: str
    id: str
    definition: str
    description: str
    type: str
    role_arn: str
    created_time: datetime | None
    last_modified_time: datetime | None
    execution_mode: str = "Standard"
    version: int = 0
    environment: dict[str, Any] = field(default_factory=lambda: {"Variables": []})
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def created(self) -> float:
        """`created_time` as seconds since the epoch (the embedded engine's former field)."""
        return epoch_seconds(self.created_time) or 0.0

    @property
    def modified(self) -> float:
        """`last_modified_time` as seconds since the epoch (the engine's former field)."""
        return epoch_seconds(self.last_modified_time) or 0.0

    @classmethod
    def of(cls, row: FlowRow) -> FlowInfo:
        """From the store's row (the embedded engine's side)."""
        return cls(
            row.name,
            row.id,
            row.definition,
            row.description,
            row.type,
            row.role_arn,
            utc_datetime(row.created),
            utc_datetime(row.modified),
            row.execution_mode,
            row.version,
            variables_of(row.environment),
        )

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> FlowInfo:
        """From the answer's fields (`Name`, `Id`, `Definition`, ...): the client's side.

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, a field cannot be read.
        """
        return cls(
            name=text_field(doc, "Name"),
            id=text_field(doc, "Id"),
            definition=text_field(doc, "Definition"),
            description=text_field(doc, "Description"),
            type=text_field(doc, "Type"),
            role_arn=text_field(doc, "RoleArn"),
            created_time=parse_time(doc.get("CreatedTime")),
            last_modified_time=parse_time(doc.get("LastModifiedTime")),
            execution_mode=text_field(doc, "ExecutionMode"),
            environment=environment_field(doc),
            raw=doc,
        )

    def to_api(self) -> dict[str, Any]:
        """The fields of Serverless Workflow's DescribeFlow answer."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Definition": self.definition,
            "Description": self.description,
            "Type": self.type,
            "RoleArn": self.role_arn,
            "CreatedTime": iso_time(self.created_time),
            "LastModifiedTime": iso_time(self.last_modified_time),
            "ExecutionMode": self.execution_mode,
            "Environment": self.environment,
        }


@dataclass(frozen=True)
class ExecutionRef:
    """Another execution an execution is linked to: its parent or one of its children.

    Attributes:
        flow_name: the flow it runs.
        name: its name.
        status: its status when the answer was made.
    """

    flow_name: str
    name: str
    status: str = ""

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ExecutionRef:
        """From `{"FlowName", "Name", "Status"}`."""
        return cls(text_field(doc, "FlowName"), text_field(doc, "Name"), text_field(doc, "Status"))

    def to_api(self) -> dict[str, Any]:
        """`{"FlowName", "Name", "Status"}`."""
        return {"FlowName": self.flow_name, "Name": self.name, "Status": self.status}


@dataclass(frozen=True)
class WaitingWork:
    """One thing a running execution waits on: a task's result, a wait step's or a retry's timer.

    Attributes:
        flow_name: the execution's flow.
        execution_name: the execution's name.
        step_name: the step that waits.
        kind: `task` (a task attempt's result), `wait` (a wait step) or `retry` (the pause
            before a task's next attempt).
        resource: what a task runs on: its `resourceArn` or `action` (for a retry, the task
            retried; "" for a wait step).
        pattern: a task's pattern (`requestResponse`, `sync`, `waitForCallback`; for a retry,
            the retried task's; "" for a wait step).
        attempt: a task's attempt, 1 for the first (for a retry, the attempt that comes next;
            0 for a wait step).
        since: when it began to wait.
        timeout_seconds: a task's timeout (None: it has none).
        due: when the wait ends by itself: the timer's time, or when the task times out.
    """

    flow_name: str
    execution_name: str
    step_name: str
    kind: str
    resource: str = ""
    pattern: str = ""
    attempt: int = 0
    since: datetime | None = None
    timeout_seconds: int | None = None
    due: datetime | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> WaitingWork:
        """From the fields `to_api` writes."""
        timeout = doc.get("TimeoutSeconds")
        return cls(
            text_field(doc, "FlowName"),
            text_field(doc, "ExecutionName"),
            text_field(doc, "StepName"),
            text_field(doc, "Kind"),
            text_field(doc, "Resource"),
            text_field(doc, "Pattern"),
            int_field(doc, "Attempt"),
            parse_time(doc.get("WaitingSince")),
            None if timeout is None else int_field(doc, "TimeoutSeconds"),
            parse_time(doc.get("Due")),
        )

    def to_api(self) -> dict[str, Any]:
        """`FlowName`, `ExecutionName`, `StepName`, `Kind`, `Resource`, `Pattern`, ..."""
        doc: dict[str, Any] = {
            "FlowName": self.flow_name,
            "ExecutionName": self.execution_name,
            "StepName": self.step_name,
            "Kind": self.kind,
            "Resource": self.resource,
            "Pattern": self.pattern,
            "Attempt": self.attempt,
            "WaitingSince": iso_time(self.since),
        }
        if self.timeout_seconds is not None:
            doc["TimeoutSeconds"] = self.timeout_seconds
        if self.due is not None:
            doc["Due"] = iso_time(self.due)
        return doc


@dataclass(frozen=True)
class ExecutionInfo:
    """An execution, as StartExecution, DescribeExecution, StopExecution and ListExecutions answer.

    `relayflow.client.Execution` is another name for it.

    Attributes:
        name: the execution's name, unique within its flow.
        flow_name: the flow it runs.
        status: `Running`, `Succeeded`, `Failed`, `TimedOut` or `Stopped`.
        input: the input object.
        output: the output object; None while it has none.
        error: why it failed or was stopped ("" otherwise).
        cause: the details of the error ("" otherwise).
        started_time: when it started (UTC).
        stopped_time: when it ended (UTC); None while it runs.
        flow_definition: the definition it runs, as it was when the execution started ("" in
            listings).
        flow_version: the published version it runs, as the API writes it (`"2"`); "" when it
            runs the flow's current definition (started without a Qualifier).
        environment: the Environment it runs with, `{"Variables": [{"Name", "Value"}, ...]}`:
            the published version's, or the flow's as it is now.
        redrive_count: how many times RedriveExecution made it go on after an end
            (`RedriveCount`, relayflow's own field; 0 is not sent).
        parent: the execution whose task started it (`ParentExecution`); None for none.
        children: the executions its tasks started, oldest first (`ChildExecutions`, at most
            100; DescribeExecution only).
        waiting: what it waits on now (`Waiting`); None unless asked for (DescribeExecution
            with `IncludeWaiting`).
        raw: the API's fields as the server sent them (`Input` and `Output` as JSON text);
            `{}` from the embedded engine (`to_api()` gives the same fields).
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
    flow_definition: str = ""
    flow_version: str = ""
    environment: dict[str, Any] = field(default_factory=lambda: {"Variables": []})
    redrive_count: int = 0
    parent: ExecutionRef | None = None
    children: tuple[ExecutionRef, ...] = ()
    waiting: tuple[WaitingWork, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the execution has ended (succeeded, failed, timed out or stopped)."""
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """Whether the execution ended with `Succeeded`."""
        return self.status == "Succeeded"

    @property
    def started(self) -> float:
        """`started_time` as seconds since the epoch (the embedded engine's former field)."""
        return epoch_seconds(self.started_time) or 0.0

    @property
    def stopped(self) -> float | None:
        """`stopped_time` as seconds since the epoch (the embedded engine's former field)."""
        return epoch_seconds(self.stopped_time)

    @property
    def definition(self) -> str:
        """`flow_definition` (the embedded engine's former field)."""
        return self.flow_definition

    @classmethod
    def of(cls, row: ExecutionRow, definition: str = "", environment: str = "") -> ExecutionInfo:
        """From the store's row, the definition it runs and its Environment (stored JSON text)."""
        return cls(
            row.name,
            row.flow_name,
            row.status,
            json.loads(row.input),
            json.loads(row.output) if row.output else None,
            row.error,
            row.cause,
            utc_datetime(row.started),
            utc_datetime(row.stopped),
            definition,
            str(row.published_version) if row.published_version else "",
            variables_of(environment, descriptions=False),
        )

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ExecutionInfo:
        """From the answer's fields (`Name`, `FlowName`, `Input`, `Status`, ...).

        Raises:
            relayflow.client.ClientError: `InvalidResponse`, a field cannot be read.
        """
        output = doc.get("Output")
        return cls(
            name=text_field(doc, "Name"),
            flow_name=text_field(doc, "FlowName"),
            status=text_field(doc, "Status"),
            input=parse_object(doc.get("Input"), "an execution Input"),
            output=None if output is None else parse_object(output, "an execution Output"),
            error=text_field(doc, "Error"),
            cause=text_field(doc, "Cause"),
            started_time=parse_time(doc.get("StartedTime")),
            stopped_time=parse_time(doc.get("StoppedTime")),
            flow_definition=text_field(doc, "FlowDefinition"),
            flow_version=text_field(doc, "FlowVersion"),
            environment=environment_field(doc),
            redrive_count=int_field(doc, "RedriveCount") if "RedriveCount" in doc else 0,
            parent=_ref(doc.get("ParentExecution")),
            children=tuple(_refs(doc.get("ChildExecutions"), "ChildExecutions")),
            waiting=_waiting(doc.get("Waiting")),
            raw=doc,
        )

    def to_api(self) -> dict[str, Any]:
        """The fields of Serverless Workflow's DescribeExecution answer."""
        doc: dict[str, Any] = {
            "Name": self.name,
            "FlowName": self.flow_name,
            "FlowDefinition": self.flow_definition,
            "Input": json.dumps(self.input),
            "Status": self.status,
            "StartedTime": iso_time(self.started_time),
            "StoppedTime": iso_time(self.stopped_time),
            "Environment": self.environment,
        }
        if self.output is not None:
            doc["Output"] = json.dumps(self.output)
        if self.error or self.cause:
            doc["Error"], doc["Cause"] = self.error, self.cause
        if self.flow_version:
            doc["FlowVersion"] = self.flow_version
        # relayflow's own fields, sent only when they say something.
        if self.redrive_count:
            doc["RedriveCount"] = self.redrive_count
        if self.parent is not None:
            doc["ParentExecution"] = self.parent.to_api()
        if self.children:
            doc["ChildExecutions"] = [c.to_api() for c in self.children]
        if self.waiting is not None:
            doc["Waiting"] = [w.to_api() for w in self.waiting]
        return doc


def _ref(value: Any) -> ExecutionRef | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        invalid_answer("the server sent ParentExecution that is not an object")
    return ExecutionRef.from_api(value)


def _refs(value: Any, key: str) -> list[ExecutionRef]:
    return [ExecutionRef.from_api(v) for v in object_list(value, key)]


def _waiting(value: Any) -> tuple[WaitingWork, ...] | None:
    if value is None:
        return None
    return tuple(WaitingWork.from_api(v) for v in object_list(value, "Waiting"))
