"""One execution as the console's execution page shows it, built from its history.

`execution_view(engine, flow, name)` reads through the engine's public operations only
(`describe_execution` with `include_waiting`, and pages of `get_execution_history`; the
definition is the one DescribeExecution says the execution runs) and answers the JSON of
`GET /console/view`. Times are ISO 8601 UTC texts as the API writes them
(`2026-12-02T11:00:00.123Z`), or null; `now` is the server's clock when it answered, for
drawing bars that have not ended. Inputs and outputs are JSON values; one whose JSON text is
longer than `MAX_VALUE_CHARS` comes as a string (the start of its text, ending in `…`, without
any `taskToken` entries) and `truncated` is true. Errors and causes are cut at
`MAX_TEXT_CHARS`::

    {
      "flow": "orders", "execution": "o-1", "status": "Running",  # Succeeded Failed ...
      "flowVersion": "", "redriveCount": 0,
      "startedTime": "2026-12-02T11:00:00.123Z", "stoppedTime": null, "now": "...",
      "input": {...}, "output": {...} | null, "truncated": false, "error": "", "cause": "",
      "parent": {"flow": "main", "execution": "m-1"} | null,
      "children": [{"flow": "audit", "execution": "c-1", "status": "Succeeded"}],
      "steps": {                               # by node id (relayflow.console.graph), only
        "fork/startSubflow": {                 # the steps that ran; the rest are not_run
          "name": "startSubflow", "type": "task",
          "state": "waiting",                  # below
          "runs": 3,                           # times entered (loops, iterations, branches)
          "attempts": 3, "retries": 0,         # task attempts in all, retries among them
                                               # (for a parallel or foreach: its re-runs)
          "outcomes": {"succeeded": 2, "waiting": 1},   # each run's state, counted
          "input": {...}, "output": {...} | null, "truncated": false,  # the latest run's
          "error": "", "cause": "",            # the latest failure's (a step's, else a
                                               # failed attempt's), if any
          "enteredTime": "...", "exitedTime": "..." | null  # the latest run's
        }
      },
      "timeline": [{                           # by start, at most MAX_TIMELINE items
        "kind": "step",                        # step, task (an attempt), retry (the pause
                                               # before the next attempt), wait (a wait step)
        "node": "fork/startSubflow", "name": "startSubflow",
        "indices": [2],                        # the branch or iteration indexes it ran in,
                                               # outermost first ([] at the top level)
        "start": "...", "end": "..." | null,   # null: still going
        "state": "succeeded",                  # a step's, for that run; a task attempt's:
                                               # running waiting succeeded failed cancelled;
                                               # a retry pause's: waiting, or retried once over
        "attempt": 1                           # tasks and retries: the attempt (or next), from 1
      }],
      "timelineTruncated": false,
      "waiting": [{                            # what it waits on now (IncludeWaiting)
        "node": "fork/startSubflow",           # null when the step cannot be told
        "name": "startSubflow", "kind": "task", # task, wait or retry
        "resource": "...", "pattern": "waitForCallback", "attempt": 1,
        "since": "...", "due": "..." | null, "timeoutSeconds": 60 | null,
        "taskToken": "...",                    # a task whose input carries its token under
                                               # `taskToken` (the console hides it from roles
                                               # that may not report)
        "correlationKey": "order-7"            # a task with a correlationKey: its value
      }],
      "events": {"read": 212, "limit": 10000, "truncated": false, "lastEventId": 212,
                 "unmatched": 0},              # StepEntered events no node was found for
      "definitionReadable": true,              # false: no steps or timeline can be shown
      "definitionHash": "9f86d081884c7d65",    # of the definition it runs: a page can tell
                                               # whether the graph it holds is that one's
      "graph": {...} | null,                   # with_graph only (relayflow.console.graph's
                                               # JSON of that definition; null: too large)
      "states": ["running", ...]               # every state name, most telling first
    }

**States.** `running`: entered and working (a task attempt in flight, a container with lanes
going); `waiting`: on a callback (`waitForCallback`), a wait step's timer or a retry's pause;
`succeeded`; `retried`: succeeded after at least one retry; `failed`: failed and nothing
caught it; `caught`: failed and a `catch` took it on; `cancelled`: entered, then left without
an outcome of its own (a sibling branch failed, the execution stopped or failed elsewhere);
`not_run`. A step that ran several times (a loop, a retry of a parallel or foreach holding it,
a redrive, iterations) shows its latest run's state in each branch or iteration, and of those
the most telling: running, waiting, failed, caught, retried, succeeded, cancelled, in that
order; `outcomes` counts the states of all its runs.

**Which node an event belongs to.** Every event but StepEntered names its step's StepEntered
(ScheduleEventId), and that one is matched to the lane it entered: the lanes open at that
moment (the flow's own list, each entered branch and iteration, a running choice's branch)
that are between steps and hold a step of that name. A choice's branch is the one whose
condition holds for the choice's recorded input (the others are tried only should none match,
as when a condition reads `$context` the view does not have). Step names are unique within a
list, so only two running lanes of one parallel or foreach can both match; the lane that has
waited longest is taken, as the engine runs ready lanes first come first served. Lanes of a
foreach share node ids, so its iterations need no telling apart.

**Limits.** At most `MAX_EVENTS` history events are read (`events.truncated` then says so,
and states after that point are unknown); `MAX_TIMELINE` timeline items; data cut as above.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol

from relayflow.console.graph import flow_graph
from relayflow.console.layout_tree import Tree, build
from relayflow.console.view_replay import Replay, Run, timeline_items
from relayflow.errors import EngineError
from relayflow.fdl import DefinitionError, Flow, TaskStep, load_flow
from relayflow.limits import DefinitionLimits
from relayflow.results import ExecutionInfo, HistoryPage, iso_time

__all__ = [
    "MAX_EVENTS",
    "MAX_TEXT_CHARS",
    "MAX_TIMELINE",
    "MAX_VALUE_CHARS",
    "STATES",
    "ViewSource",
    "execution_view",
]

#: The most history events one view reads.
MAX_EVENTS = 10_000
#: The most timeline items one view answers (the earliest are kept).
MAX_TIMELINE = 2_000
#: Inputs and outputs longer than this, as JSON text, are cut.
MAX_VALUE_CHARS = 8_192
#: Errors and causes longer than this are cut.
MAX_TEXT_CHARS = 2_048
#: Every state a step can be in, most telling first.
STATES = (
    "running",
    "waiting",
    "failed",
    "caught",
    "retried",
    "succeeded",
    "cancelled",
    "not_run",
)
_PAGE = 1000
# Stored definitions passed the budgets in force when they were made: read them generously.
_STORED_LIMITS = DefinitionLimits(
    max_bytes=1 << 30, max_depth=1024, max_alias_nodes=1 << 20, max_problems=1
)


class ViewSource(Protocol):
    """What the view reads: `relayflow.engine.Engine` (or the asyncio client) has it."""

    async def describe_execution(
        self, flow_name: str, name: str, wait_seconds: float = 0, *, include_waiting: bool = False
    ) -> ExecutionInfo:
        """DescribeExecution."""
        ...

    async def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str = ""
    ) -> HistoryPage:
        """GetExecutionHistory."""
        ...


def _time(value: datetime | None) -> str | None:
    return iso_time(value) if value is not None else None


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT_CHARS else value[: MAX_TEXT_CHARS - 1] + "…"


def _no_tokens(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_tokens(v) for k, v in value.items() if k != "taskToken"}
    if isinstance(value, list):
        return [_no_tokens(v) for v in value]
    return value


def _data(value: Any) -> tuple[Any, bool]:
    """``value`` as it is, or (too long) the start of its JSON text: (value, whether cut).

    A cut text leaves out `taskToken` entries: the console strips them from JSON values for
    roles that may not report tasks, and it could not find them in a text.
    """
    if value is None:
        return None, False
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= MAX_VALUE_CHARS:
        return value, False
    text = json.dumps(_no_tokens(value), ensure_ascii=False, indent=1)
    return text[: MAX_VALUE_CHARS - 1] + "…", True


async def execution_view(
    engine: ViewSource, flow_name: str, name: str, *, with_graph: bool = False
) -> dict[str, Any]:
    """The execution ``name`` of ``flow_name`` as the console's execution page shows it.

    The shape of the answer is in this module's docstring; ``with_graph`` adds `graph`, the
    drawing of the definition the execution runs (which may not be the flow's current one).

    Raises:
        EngineError: `FlowNotExists`, `ExecutionNotExists` (from DescribeExecution).
    """
    info = await engine.describe_execution(flow_name, name, include_waiting=True)
    events, truncated, last = await _history(engine, flow_name, name)
    tree = await _tree(info.flow_definition)
    ended = info.done
    replay = Replay(tree, _context(info)) if tree is not None else None
    if replay is not None:
        for event in events:
            replay.feed(event)
    doc = _header(info)
    doc["steps"] = _steps(replay, ended) if replay is not None else {}
    items = timeline_items(replay, ended) if replay is not None else []
    doc["timeline"] = [
        {**item, "start": _time(item["start"]), "end": _time(item["end"])}
        for item in items[:MAX_TIMELINE]
    ]
    doc["timelineTruncated"] = len(items) > MAX_TIMELINE
    doc["waiting"] = _waiting(info, replay)
    doc["events"] = {
        "read": len(events),
        "limit": MAX_EVENTS,
        "truncated": truncated,
        "lastEventId": last,
        "unmatched": replay.unmatched if replay is not None else 0,
    }
    doc["definitionReadable"] = tree is not None
    doc["definitionHash"] = hashlib.sha256(info.flow_definition.encode()).hexdigest()[:16]
    doc["states"] = list(STATES)
    if with_graph:
        doc["graph"] = await asyncio.to_thread(_graph, info.flow_definition)
    return doc


async def _history(engine: ViewSource, flow_name: str, name: str) -> tuple[list[Any], bool, int]:
    """Up to `MAX_EVENTS` events, oldest first; whether more were left; the last one's id."""
    events: list[Any] = []
    token = ""
    while True:
        limit = min(_PAGE, MAX_EVENTS - len(events))
        page = await engine.get_execution_history(flow_name, name, limit=limit, next_token=token)
        events.extend(page.items)
        token = page.next_token
        if not token or len(events) >= MAX_EVENTS:
            break
    last = events[-1].event_id if events else 0
    return events, bool(token), last


async def _tree(definition: str) -> Tree | None:
    """The drawing's structure of the definition the execution runs (None: unreadable)."""
    if not definition:
        return None
    return await asyncio.to_thread(_read_tree, definition)


@functools.lru_cache(maxsize=32)
def _read_flow(definition: str) -> Flow | None:
    """``definition`` read, kept for the next poll of a page (never changed once read)."""
    try:
        return load_flow(definition, limits=_STORED_LIMITS)
    except DefinitionError:
        return None


@functools.lru_cache(maxsize=32)
def _read_tree(definition: str) -> Tree | None:
    """The structure of ``definition``'s drawing (the replay only reads it)."""
    flow = _read_flow(definition)
    return build(flow) if flow is not None else None


def _graph(definition: str) -> dict[str, Any] | None:
    """The drawing of ``definition``; None when it cannot be read or is too large to draw."""
    flow = _read_flow(definition)
    if flow is None:
        return None
    try:
        return flow_graph(flow)
    except EngineError:
        return None


def _context(info: ExecutionInfo) -> dict[str, Any]:
    """What a choice's condition reads as `$context`, as the engine gives it."""
    variables = info.environment.get("Variables") or []
    environment = {str(v.get("Name")): v.get("Value") for v in variables if isinstance(v, dict)}
    return {
        "flow": {"name": info.flow_name, "environment": environment},
        "execution": {"name": info.name},
    }


def _header(info: ExecutionInfo) -> dict[str, Any]:
    data, data_cut = _data(info.input)
    output, output_cut = _data(info.output)
    parent = info.parent
    return {
        "flow": info.flow_name,
        "execution": info.name,
        "status": info.status,
        "flowVersion": info.flow_version,
        "redriveCount": info.redrive_count,
        "startedTime": _time(info.started_time),
        "stoppedTime": _time(info.stopped_time),
        "now": iso_time(datetime.now(UTC)),
        "input": data,
        "output": output,
        "truncated": data_cut or output_cut,
        "error": _text(info.error),
        "cause": _text(info.cause),
        "parent": {"flow": parent.flow_name, "execution": parent.name} if parent else None,
        "children": [
            {"flow": c.flow_name, "execution": c.name, "status": c.status} for c in info.children
        ],
    }


def _steps(replay: Replay, ended: bool) -> dict[str, dict[str, Any]]:
    """Each node that ran: its state over all its runs, and its latest run's data."""
    by_node: dict[str, list[Run]] = {}
    for run in replay.runs:
        by_node.setdefault(run.node, []).append(run)
    rank = {state: i for i, state in enumerate(STATES)}
    steps: dict[str, dict[str, Any]] = {}
    for node, runs in by_node.items():
        states = [replay.state(run, ended) for run in runs]
        outcomes: dict[str, int] = {}
        latest_in: dict[tuple[int, ...], str] = {}  # a loop, retry or redrive supersedes
        for run, state in zip(runs, states, strict=True):
            outcomes[state] = outcomes.get(state, 0) + 1
            latest_in[run.lane.indices] = state
        latest = runs[-1]
        failed = next((r for r in reversed(runs) if r.error), None)
        attempt_error = next(
            (a for r in reversed(runs) for a in reversed(r.attempts) if a.error), None
        )
        data, data_cut = _data(latest.input)
        output, output_cut = _data(latest.output)
        attempts = sum(len(r.attempts) for r in runs)
        retries = sum(max(r.retries, len(r.attempts) - 1) for r in runs)
        steps[node] = {
            "name": latest.box.node.name,
            "type": latest.box.node.type,
            "state": min(latest_in.values(), key=lambda s: rank[s]),
            "runs": len(runs),
            "attempts": attempts,
            "retries": retries,
            "outcomes": outcomes,
            "input": data,
            "output": output,
            "truncated": data_cut or output_cut,
            "error": _text(
                failed.error if failed else attempt_error.error if attempt_error else ""
            ),
            "cause": _text(
                failed.cause if failed else attempt_error.cause if attempt_error else ""
            ),
            "enteredTime": _time(latest.start),
            "exitedTime": _time(latest.end) if latest.exited else None,
        }
    return steps


def _reach(run: Run | None) -> dict[str, Any]:
    """How a person may report a waiting task: the token its input carries, its key."""
    if run is None or not run.attempts or run.attempts[-1].state:
        return {}
    data = run.attempts[-1].input
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        token = data.get("taskToken")
        if isinstance(token, str):
            found["taskToken"] = token
        step = run.box.step
        if isinstance(step, TaskStep) and step.correlation_key is not None:
            key = step.correlation_key.evaluate({"input": data})
            if isinstance(key, str | int) and not isinstance(key, bool):
                found["correlationKey"] = key
    return found


def _waiting(info: ExecutionInfo, replay: Replay | None) -> list[dict[str, Any]]:
    """What the execution waits on now, each with the node of an open run of its step."""
    open_runs: dict[str, Run] = {}
    if replay is not None:
        for run in replay.runs:
            if replay.state(run, info.done) in ("running", "waiting"):
                open_runs.setdefault(run.box.node.name, run)
    return [
        {
            "node": open_runs[w.step_name].node if w.step_name in open_runs else None,
            **_reach(open_runs.get(w.step_name) if w.kind == "task" else None),
            "name": w.step_name,
            "kind": w.kind,
            "resource": w.resource,
            "pattern": w.pattern,
            "attempt": w.attempt,
            "since": _time(w.since),
            "due": _time(w.due),
            "timeoutSeconds": w.timeout_seconds,
        }
        for w in info.waiting or ()
    ]
