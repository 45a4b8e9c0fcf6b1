"""What goes into and out of the interpreter: commands, history events, effects, limits, state.

The interpreter is a function (state, command, now) → (history events, effects). Commands are
the things that happen to an execution; effects are what the runtime must do because of them;
history events are the durable record, with the Serverless Workflow type names.

`HistoryEvent` (`relayflow.store.records`), `Limits` (`relayflow.limits`) and the `ERROR_*`
names (`relayflow.errors`) live in leaf modules and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# Defined in leaf modules, so that the store, the configuration and the plugins need not load
# the engine; re-exported here, where the interpreter's users (and plugins) have found them.
from relayflow.errors import (
    ERROR_DATA_LIMIT,
    ERROR_EVENT_LIMIT,
    ERROR_INVALID_LOCAL,
    ERROR_RUNTIME,
    ERROR_TASK_TIMEOUT,
)
from relayflow.limits import Limits
from relayflow.store.records import HistoryEvent

__all__ = [
    "ERROR_DATA_LIMIT",
    "ERROR_EVENT_LIMIT",
    "ERROR_INVALID_LOCAL",
    "ERROR_RUNTIME",
    "ERROR_TASK_TIMEOUT",
    "TERMINAL_STATUSES",
    "CancelTimer",
    "CloseTask",
    "Command",
    "Effect",
    "ExecutionEnded",
    "ExecutionState",
    "HistoryEvent",
    "InvokeTask",
    "Limits",
    "Redrive",
    "Scope",
    "Start",
    "StartTimer",
    "StepRun",
    "Stop",
    "TaskFailed",
    "TaskSubmitted",
    "TaskSucceeded",
    "TimerFired",
    "Transition",
]

TERMINAL_STATUSES: Final = frozenset({"Succeeded", "Failed", "TimedOut", "Stopped"})


# ---------------------------------------------------------------------------------------------
# Commands: what happens to an execution.


@dataclass(frozen=True, slots=True)
class Start:
    """Start the execution with its input.

    `context` adds fields to the ExecutionStarted event's detail (a child's parent, say).
    """

    input: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    """A task attempt finished; `output` becomes the step's local (it must be an object)."""

    task_id: int
    output: Any


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """A task attempt failed with an error name and a cause."""

    task_id: int
    error: str
    cause: str = ""


@dataclass(frozen=True, slots=True)
class TaskSubmitted:
    """A callback or sync task was handed to its service; the step now waits for the result."""

    task_id: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set by a `StartTimer` effect is due."""

    timer_id: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the execution (StopExecution)."""

    error: str = ""
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Redrive:
    """Go on from where a Failed, TimedOut or Stopped execution ended (RedriveExecution).

    The steps that succeeded are kept; the step that failed starts over with a fresh attempt
    count (`relayflow.engine.redrive`). The runtime checks that the execution can go on and,
    for ``definition`` "current", moves it (and `ExecutionState.resume`) to the flow's current
    definition before the interpreter sees the command.

    Attributes:
        definition: "original" (the definition it ran) or "current" (the flow's current one).
        version: the flow's definition revision the execution runs from now on.
    """

    definition: str = "original"
    version: int = 0


Command = Start | TaskSucceeded | TaskFailed | TaskSubmitted | TimerFired | Stop | Redrive


# ---------------------------------------------------------------------------------------------
# Effects: what the runtime must do.


@dataclass(frozen=True, slots=True)
class InvokeTask:
    """Hand a task attempt to the integration that claims its resource or action.

    `task_id` is the EventId of the attempt's TaskScheduled event and the key of its token.
    """

    task_id: int
    token: str
    step_name: str
    resource: str
    pattern: str
    input: dict[str, Any]
    service_params: dict[str, Any] | None
    timeout_seconds: int | None
    attempt: int
    correlation_key: str | None = None  # a waitForCallback task's (relayflow.engine.correlation)


@dataclass(frozen=True, slots=True)
class CloseTask:
    """A task attempt is over: `completed` by its result, or `expired` (timed out, cancelled)."""

    task_id: int
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Fire `TimerFired(timer_id)` at `fire_at` (seconds since the epoch)."""

    timer_id: int
    fire_at: float
    kind: str


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget a timer; firing it now would be ignored anyway."""

    timer_id: int


@dataclass(frozen=True, slots=True)
class ExecutionEnded:
    """The execution reached a final status."""

    status: str
    output: dict[str, Any] | None
    error: str
    cause: str


Effect = InvokeTask | CloseTask | StartTimer | CancelTimer | ExecutionEnded


@dataclass(slots=True)
class Transition:
    """The result of one command: events to append and effects to carry out."""

    events: list[HistoryEvent] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# State: everything needed to continue an execution, kept as JSON by the store.


@dataclass(slots=True)
class StepRun:
    """The step a scope is running now."""

    index: int
    input: dict[str, Any]
    entered: int  # EventId of StepEntered
    attempt: int = 0
    retries: dict[str, int] = field(default_factory=dict)  # policy index → retries used
    task: int | None = None  # open task attempt
    timer: int | None = None  # wait or retry timer
    timeout_timer: int | None = None
    children: list[int | None] = field(default_factory=list)  # child scope ids by slot
    results: list[Any] = field(default_factory=list)  # child locals by slot
    pending: int = 0  # children still running
    items: list[Any] | None = None  # foreach collection
    next_item: int = 0
    goto: str | None = None  # choice: where to go once the branch is done
    since: float = 0.0  # when the step began to wait on what it waits on now (task, timer)


@dataclass(slots=True)
class Scope:
    """A serial list of steps being run: the flow's, a branch's, an iteration's, a choice's."""

    id: int
    parent: int | None
    slot: int  # which child of the parent's step this is
    key: str  # the step list, as a key of the flow index
    input: dict[str, Any]
    local: dict[str, Any]
    pc: int = 0
    run: StepRun | None = None


@dataclass(slots=True)
class ExecutionState:
    """The whole state of one execution."""

    # How many times RedriveExecution made it go on after its end. First, so that the stored
    # text begins with it and listings read it without decoding the rest (`redrives_in`).
    redrives: int = 0
    status: str = "Running"
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    error: str = ""
    cause: str = ""
    scopes: dict[int, Scope] = field(default_factory=dict)
    next_scope: int = 1
    next_event: int = 1
    timers: dict[int, list[Any]] = field(default_factory=dict)  # id → [kind, scope id]
    tasks: dict[int, int] = field(default_factory=dict)  # open task id → scope id
    expired: dict[int, str] = field(default_factory=dict)  # expired task id → why
    flow_timer: int | None = None
    ready: list[int] = field(default_factory=list)  # scopes deferred to the next transition
    # The flow's Environment variables (Name -> Value) as they were at Start: an UpdateFlow
    # does not change a running execution's, as it does not change its definition.
    environment: dict[str, str] = field(default_factory=dict)
    # Where a redrive goes on from: the scopes as they were when the execution's end began
    # (before a failure unwound them). Kept only by a Failed, TimedOut or Stopped execution;
    # None in states written before relayflow kept it, and {} when nothing can go on.
    resume: dict[int, Scope] | None = None

    @property
    def done(self) -> bool:
        """Whether the execution reached a final status."""
        return self.status in TERMINAL_STATUSES
