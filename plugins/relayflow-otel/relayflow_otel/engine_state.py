"""What the engine's tracer keeps per execution, and the pure helpers it reads histories with.

`relayflow_otel.engine_spans.EngineTracer` holds one `ExecutionTrace` per running execution,
its open spans as `OpenSpan` tuples keyed by the EventId that opened them; history pages are
read as `HistoryRecord`s. Nothing here calls the engine or exports anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from relayflow_otel.ids import micros, span_hasher

if TYPE_CHECKING:
    from relayflow.engine.integration import TaskRequest

__all__ = [
    "COMPLETIONS",
    "ENDS",
    "MAX_EXECUTIONS",
    "OPEN_FIELDS",
    "TRACED",
    "ExecutionTrace",
    "HistoryRecord",
    "OpenSpan",
    "cause_text",
    "child_flow",
    "child_task",
    "enclosing_steps",
    "open_step",
    "with_error",
    "with_parent",
    "with_submitted",
]

#: Running executions whose open spans are kept; the least recently active is forgotten first
#: (its later events start a replay of its history).
MAX_EXECUTIONS = 10_000
#: Open steps, or open task attempts, kept per execution; more are not traced.
MAX_OPEN = 5_000
#: History events read to catch up with an execution (pages of 1,000); later ones are skipped.
MAX_HISTORY_EVENTS = 10_000
#: Events held per execution while its history is read.
MAX_PENDING = 10_000
#: History reads running at once.
MAX_READS = 4
#: Characters of a cause kept in an attribute or a status.
MAX_CAUSE = 1_000
#: Child starts remembered (attempts of child flow tasks whose child has not started yet).
MAX_SPAWNS = 10_000
PAGE = 1_000
CHILD_ARN = re.compile(r"acs:fnf:[^:]*:[^:]*:flow/(?P<name>.+)")
CHILD_ACTION = "fnf:StartExecution"
CHILD_PREFIX = "acs:fnf:"
ENDS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"})
COMPLETIONS = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut"})
#: The events that open or end spans (those with a lifecycle hook).
TRACED = frozenset(
    {"ExecutionStarted", "StepEntered", "StepExited", "TaskScheduled", "TaskSubmitted"}
    | ENDS
    | COMPLETIONS
)


@dataclass(slots=True)
class HistoryRecord:
    """An event of a history page, with the fields of the hook's `store.records.HistoryEvent`.

    The hook's records are used as they come; a page's events (`relayflow.results`, whose times
    are datetimes) are made these, so that the same code replays both.
    """

    event_id: int
    schedule_event_id: int
    type: str
    step_name: str
    time: float  # seconds, to the microsecond
    detail: dict[str, Any]
    micros: int  # the event's time, as `ids.micros` gives it

    @classmethod
    def of(cls, event: Any) -> HistoryRecord:
        """From a `relayflow.results.HistoryEvent` (or a store record)."""
        when = event.time
        exact = micros(when) if when is not None else 0
        detail = event.detail if isinstance(event.detail, dict) else {}
        return cls(
            int(event.event_id),
            int(event.schedule_event_id),
            str(event.type),
            str(event.step_name or ""),
            exact / 1_000_000,
            detail,
            exact,
        )


#: A span that has started and not ended, keyed by the EventId that opened it.
#:
#: A plain tuple of plain values, made anew rather than changed: thousands are open at once,
#: for seconds, and the garbage collector stops following an exact tuple of plain values at
#: the first collection it survives (an instance of a tuple's subclass, a NamedTuple, it
#: follows for as long as it lives). Spans are named by EventIds here; the exporter derives
#: their span ids. Its items, in order (`OPEN_FIELDS`):
#:
#: - step: the step's name;
#: - start: when it started, in seconds;
#: - parent: the EventId that opened the parent span; None for a step nested among open
#:   steps, whose parent is found as it ends (`EngineTracer._step_parent`);
#: - around: for a step, (step name, EventId) of the steps open when it was entered, latest
#:   first; () otherwise;
#: - error: for a step, the error of its last failed task attempt (cleared by a success);
#: - submitted: for a task attempt, when it was handed over (TaskSubmitted), if it was;
#: - entered: for a task attempt, the EventId of its step's StepEntered (0 for a step);
#: - resource, pattern, attempt: for a task attempt, as its TaskScheduled's detail has them
#:   (None for a step).
OpenSpan: TypeAlias = tuple[
    str,
    float,
    int | None,
    tuple[tuple[str, int], ...],
    tuple[str, str] | None,
    tuple[float, ...],
    int,
    Any,
    Any,
    Any,
]
#: The names of an `OpenSpan`'s items, in order.
OPEN_FIELDS = (
    "step",
    "start",
    "parent",
    "around",
    "error",
    "submitted",
    "entered",
    "resource",
    "pattern",
    "attempt",
)


def open_step(
    step: str, start: float, parent: int | None, around: tuple[tuple[str, int], ...] = ()
) -> OpenSpan:
    """The `OpenSpan` of a step that has been entered."""
    return (step, start, parent, around, None, (), 0, None, None, None)


def with_error(opened: OpenSpan, error: tuple[str, str] | None) -> OpenSpan:
    """``opened`` with another error (a step's last failed attempt's)."""
    step, start, parent, around, _, submitted, entered, resource, pattern, attempt = opened
    return (step, start, parent, around, error, submitted, entered, resource, pattern, attempt)


def with_parent(opened: OpenSpan, parent: int | None) -> OpenSpan:
    """``opened`` with its parent found (a nested step's, once the definition is read)."""
    step, start, _, around, error, submitted, entered, resource, pattern, attempt = opened
    return (step, start, parent, around, error, submitted, entered, resource, pattern, attempt)


def with_submitted(opened: OpenSpan, when: float) -> OpenSpan:
    """``opened`` handed over once more (a task attempt's TaskSubmitted) at ``when``."""
    step, start, parent, around, error, submitted, entered, resource, pattern, attempt = opened
    submitted = (*submitted, when)
    return (step, start, parent, around, error, submitted, entered, resource, pattern, attempt)


@dataclass(slots=True)
class ExecutionTrace:
    """What this process knows of one running execution.

    The fields every hook call reads come first, so that they share the object's first cache
    lines: the engine's own work between two calls leaves little of the tracer in the caches.
    """

    flow: str
    name: str
    trace: int = 0  # 0 while the history is being read
    sampled: bool = False
    #: Events held while the history is read (None when not reading).
    pending: list[Any] | None = None
    steps: dict[int, OpenSpan] = field(default_factory=dict)
    tasks: dict[int, OpenSpan] = field(default_factory=dict)
    root: int = 0  # the EventId of its ExecutionStarted
    #: The hash of the trace id that span ids start from (`ids.span_hasher`), and what a
    #: `traceparent` holds before and after the span id.
    hasher: Any = None
    before: str = ""
    after: str = ""
    #: An execution of another flow with the same name, also followed here (a chain).
    same_name: ExecutionTrace | None = None
    start: float = 0.0
    parent: tuple[str, str] | None = None
    #: (trace id, span id) of the parent's task attempt that started this child, when known.
    link: tuple[int, int] | None = None
    #: Step name -> names of the steps that may enclose it ("" for the top level).
    enclosing: dict[str, frozenset[str]] | None = None
    reading_definition: bool = False
    #: Ended steps whose parent waits for the definition: (EventId, span, end, flags). None
    #: until one waits: a list for every execution would be one more object for the garbage
    #: collector to walk.
    waiting: list[tuple[int, OpenSpan, float, int]] | None = None
    #: The EventId before which the history was last replayed (0: never).
    replayed: int = 0
    unknown: bool = False  # the history could not say how it started: no spans

    def named(self, trace: int, sampled: bool) -> None:
        """Take the trace id and the sampling decision."""
        self.trace = trace
        self.sampled = sampled
        self.hasher = span_hasher(trace)
        self.before = f"00-{trace:032x}-"
        self.after = "-01" if sampled else "-00"

    def ended(self) -> tuple[Any, ...]:
        """What names its trace, should it go on after its end (a redrive), as plain values."""
        return (self.trace, self.sampled, self.start, self.root, self.parent, self.link)

    @classmethod
    def resumed(cls, flow: str, name: str, ended: tuple[Any, ...]) -> ExecutionTrace:
        """An execution that goes on after its end, from what `ended` kept."""
        trace, sampled, start, root, parent, link = ended
        state = cls(flow, name, start=start, root=root, parent=parent, link=link)
        state.named(trace, sampled)
        return state


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def enclosing_steps(definition: str) -> dict[str, frozenset[str]]:
    """For each step name of an FDL definition, the names of the steps that may enclose it.

    The top level is "". A name used in several places gets each place's encloser. A
    definition that cannot be read gives an empty map (every step is then a child of the root).
    """
    try:
        document = yaml.load(definition, Loader=LOADER)  # a safe loader (C if built)
    except yaml.YAMLError:
        return {}
    found: dict[str, set[str]] = {}

    def walk(steps: Any, encloser: str, depth: int) -> None:
        if not isinstance(steps, list) or depth > 64:
            return
        for step in steps:
            if not isinstance(step, dict):
                continue
            name = step.get("name")
            if not isinstance(name, str):
                continue
            found.setdefault(name, set()).add(encloser)
            walk(step.get("steps"), name, depth + 1)  # foreach
            for branch in step.get("branches") or []:  # parallel
                if isinstance(branch, dict):
                    walk(branch.get("steps"), name, depth + 1)
            for choice in step.get("choices") or []:  # choice
                if isinstance(choice, dict):
                    walk(choice.get("steps"), name, depth + 1)
            default = step.get("default")
            if isinstance(default, dict):
                walk(default.get("steps"), name, depth + 1)

    if isinstance(document, dict):
        walk(document.get("steps"), "", 0)
    return {name: frozenset(where) for name, where in found.items()}


def cause_text(text: Any) -> str:
    """An error's cause as an attribute keeps it: text, at most `MAX_CAUSE` characters."""
    return str(text or "")[:MAX_CAUSE]


def child_flow(request: TaskRequest) -> tuple[str, str] | None:
    """(child flow, its ExecutionName or "") when the request starts a child execution."""
    params = request.service_params or {}
    if request.resource == CHILD_ACTION:
        flow = params.get("FlowName")
    else:
        match = CHILD_ARN.fullmatch(request.resource)
        flow = match.group("name") if match else None
    if not isinstance(flow, str):
        return None
    name = params.get("ExecutionName")
    return flow, name if isinstance(name, str) else ""


def child_task(events: Iterable[HistoryRecord], flow: str, name: str) -> int:
    """The TaskScheduled EventId of the parent's attempt that started the child, or 0."""
    for event in events:
        if event.type in ("TaskSubmitted", "TaskSucceeded"):
            output = event.detail.get("output")
            for detail in (event.detail, output if isinstance(output, dict) else {}):
                if detail.get("Name") == name and detail.get("FlowName") == flow:
                    return event.schedule_event_id
    return 0
