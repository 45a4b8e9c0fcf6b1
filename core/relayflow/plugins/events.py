"""What lifecycle hooks receive: the history event and the execution it belongs to."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from relayflow.store.records import HistoryEvent

__all__ = [
    "ApiRequestEvent",
    "CommitEvent",
    "CommittedHistory",
    "ExecutionEvent",
    "LifecycleEvent",
    "StepEvent",
    "TaskEvent",
]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A committed history event of one execution.

    Attributes:
        flow_name, execution_name: the execution.
        event: the history event (`type`, `event_id`, `step_name`, `detail`, ...).
    """

    flow_name: str
    execution_name: str
    event: HistoryEvent

    @property
    def type(self) -> str:
        """The event type, such as `StepEntered`."""
        return self.event.type

    @property
    def detail(self) -> dict[str, Any]:
        """The event's detail."""
        return self.event.detail


@dataclass(frozen=True, slots=True)
class ExecutionEvent(LifecycleEvent):
    """An execution started or ended."""

    @property
    def name(self) -> str:
        """The execution's name."""
        return self.execution_name

    @property
    def status(self) -> str:
        """`Running` after ExecutionStarted, else the final status."""
        return _STATUS.get(self.event.type, "Running")


@dataclass(frozen=True, slots=True)
class StepEvent(LifecycleEvent):
    """A step was entered or exited."""

    @property
    def step_name(self) -> str:
        """The step's name."""
        return self.event.step_name


@dataclass(frozen=True, slots=True)
class TaskEvent(LifecycleEvent):
    """Something happened to a task attempt; `task_id` is its TaskScheduled EventId."""

    @property
    def step_name(self) -> str:
        """The task step's name."""
        return self.event.step_name

    @property
    def task_id(self) -> int:
        """The attempt's id."""
        return (
            self.event.event_id
            if self.event.type == "TaskScheduled"
            else (self.event.schedule_event_id)
        )


@dataclass(frozen=True, slots=True)
class CommittedHistory:
    """Every history event one store transaction committed, for `relayflow_history_committed`.

    One object a transaction rather than one call an event: a plugin that watches most events
    (traces, metrics) loops over them itself, which costs far less on the engine's loop.

    Attributes:
        executions: ``(flow_name, execution_name, events)`` for each execution the transaction
            wrote history to, in the order written; ``events`` are `HistoryEvent` records in
            EventId order, every type included (not only those with a lifecycle hook). Treat
            all of it as read-only: the engine hands the same objects to every plugin.
    """

    executions: Sequence[tuple[str, str, Sequence[HistoryEvent]]]

    def events(self) -> Iterator[tuple[str, str, HistoryEvent]]:
        """Each event with its execution, ``(flow_name, execution_name, event)``, in order."""
        for flow_name, execution_name, events in self.executions:
            for event in events:
                yield flow_name, execution_name, event


@dataclass(frozen=True, slots=True)
class ApiRequestEvent:
    """One answered request to the RPC API (`POST /` or `GET /`).

    Attributes:
        action: the action's name when relayflow knows it, else `Unknown` (so that a label
            made of it stays bounded whatever callers send).
        status: the HTTP status of the answer.
        code: the error code of a refusal (`ExecutionDoesNotExist`, ...), "" on success.
        seconds: from the request's arrival to its answer being handed to the server.
    """

    action: str
    status: int
    code: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """One store transaction of the engine's writer (a group commit) that committed.

    Attributes:
        jobs: how many jobs (reports, starts, outcomes, timers...) the transaction carried.
        seconds: from the transaction's start to its COMMIT answered, on the writer thread.
        store: the store's kind: `sqlite`, `postgresql` or `memory`.
    """

    jobs: int
    seconds: float
    store: str


_STATUS = {
    "ExecutionSucceeded": "Succeeded",
    "ExecutionFailed": "Failed",
    "ExecutionTimedOut": "TimedOut",
    "ExecutionStopped": "Stopped",
}

#: Which hook each history event type goes to, and the class it is wrapped in.
HOOK_FOR_EVENT: dict[str, tuple[str, type[LifecycleEvent]]] = {
    "ExecutionStarted": ("relayflow_execution_started", ExecutionEvent),
    **{t: ("relayflow_execution_finished", ExecutionEvent) for t in _STATUS},
    "StepEntered": ("relayflow_step_entered", StepEvent),
    "StepExited": ("relayflow_step_exited", StepEvent),
    "TaskScheduled": ("relayflow_task_scheduled", TaskEvent),
    "TaskSubmitted": ("relayflow_task_submitted", TaskEvent),
    "TaskSucceeded": ("relayflow_task_completed", TaskEvent),
    "TaskFailed": ("relayflow_task_completed", TaskEvent),
    "TaskTimedOut": ("relayflow_task_completed", TaskEvent),
}
