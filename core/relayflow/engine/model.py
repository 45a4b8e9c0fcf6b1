"""What goes into and out of the interpreter: commands, history events, effects, limits, state.

The interpreter is a function (state, command, now) → (history events, effects). Commands are
the things that happen to an execution; effects are what the runtime must do because of them;
history events are the durable record, with the Serverless Workflow type names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

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

#: A task exceeded its `timeoutSeconds`.
ERROR_TASK_TIMEOUT: Final = "FnF.TaskTimeout"
#: A fault while running a step: a mapping, collection, duration or timestamp that cannot be used.
ERROR_RUNTIME: Final = "FnF.RuntimeError"
#: A task's result is not a JSON object.
ERROR_INVALID_LOCAL: Final = "FnF.InvalidLocal"
#: A step's input, output or local is larger than `Limits.max_step_data_bytes` (relayflow's name).
ERROR_DATA_LIMIT: Final = "FnF.DataLimitExceeded"
#: The execution would record more than `Limits.max_events` events (relayflow's name).
ERROR_EVENT_LIMIT: Final = "FnF.EventLimitExceeded"

TERMINAL_STATUSES: Final = frozenset({"Succeeded", "Failed", "TimedOut", "Stopped"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Engine limits, with the defaults of Serverless Workflow.

    Attributes:
        max_events: history events one execution may record (5,000).
        max_step_data_bytes: size of a step's input, output, local or resolved serviceParams
            as JSON (32 KiB).
        max_json_depth: how deeply objects and arrays may nest in any JSON value that enters
            the engine or that a step produces (64; relayflow's own limit).
        max_wait_seconds: the longest a wait step may wait (2 days).
        foreach_concurrency: iterations of one foreach running at once (100).
        steps_per_transition: steps run in one transition before the runtime commits and
            comes back for more, so that a long run of pass steps cannot hold the store.
    """

    max_events: int = 5000
    max_step_data_bytes: int = 32 * 1024
    max_json_depth: int = 64
    max_wait_seconds: float = 2 * 24 * 3600
    foreach_concurrency: int = 100
    steps_per_transition: int = 2000


# ---------------------------------------------------------------------------------------------
# Commands: what happens to an execution.


@dataclass(frozen=True, slots=True)
class Start:
    """Start the execution with its input."""

    input: dict[str, Any]


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


Command = Start | TaskSucceeded | TaskFailed | TaskSubmitted | TimerFired | Stop


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


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One history event, as GetExecutionHistory returns it."""

    event_id: int
    schedule_event_id: int
    type: str
    step_name: str
    time: float
    detail: dict[str, Any]


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

    @property
    def done(self) -> bool:
        """Whether the execution reached a final status."""
        return self.status in TERMINAL_STATUSES
