"""What the store keeps, as plain records: flows, executions, history events, timers, outbox rows.

A leaf module: the store drivers, the engine, the configuration and the plugins all use these
records, and importing them loads nothing else of relayflow. The interpreter produces
`HistoryEvent`s; `relayflow.engine.model` re-exports it under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ExecutionRow", "FlowObjectRow", "FlowRow", "HistoryEvent", "OutboxRow", "TimerRow"]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One history event, as GetExecutionHistory returns it."""

    event_id: int
    schedule_event_id: int
    type: str
    step_name: str
    time: float
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowRow:
    """A flow and its current definition."""

    name: str
    id: str
    definition: str
    description: str
    type: str
    role_arn: str
    version: int
    created: float
    modified: float
    execution_mode: str = "Standard"
    environment: str = ""
    """The flow's `Environment` as JSON text ("" when it has none)."""


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """An execution: identity, status, data and the interpreter state."""

    id: int
    uid: str
    flow_name: str
    name: str
    flow_id: str
    flow_version: int
    status: str
    input: str
    output: str | None
    error: str
    cause: str
    started: float
    stopped: float | None
    state: str
    callback_token: str
    published_version: int = 0
    """The published flow version the execution runs (0: the flow's current definition)."""

    def insert_values(self) -> tuple[Any, ...]:
        """Every column but `id`, in the order the drivers' INSERT statements name them."""
        return (
            self.uid,
            self.flow_name,
            self.name,
            self.flow_id,
            self.flow_version,
            self.status,
            self.input,
            self.output,
            self.error,
            self.cause,
            self.started,
            self.stopped,
            self.state,
            self.callback_token,
            self.published_version,
        )


@dataclass(frozen=True, slots=True)
class TimerRow:
    """A timer of an execution, due at `fire_at`."""

    execution_id: int
    timer_id: int
    fire_at: float
    kind: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An effect to carry out after commit (today: invoking a task).

    A row whose stored payload cannot be parsed comes back from `Transaction.claim_outbox`
    with an empty payload, the stored text in `raw` and the reason in `unreadable`, so that
    the engine can set it aside instead of failing every claim.
    """

    id: int
    execution_id: int
    payload: dict[str, Any]
    unreadable: str = ""
    raw: str = ""


@dataclass(frozen=True, slots=True)
class FlowObjectRow:
    """A named resource that belongs to a flow: a schedule, an alias, a published version.

    The store keeps the feature's fields as JSON text in `data` and does not read them; it
    orders a flow's objects of one kind by `name`, deletes them with their flow, and hands out
    objects of a kind whose `due_at` has come (`Transaction.claim_due_objects`) to one owner
    at a time.
    """

    flow_name: str
    kind: str
    name: str
    data: str
    created: float
    modified: float
    due_at: float | None = None
