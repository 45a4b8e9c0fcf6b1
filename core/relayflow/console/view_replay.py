"""Replays an execution's history onto its flow's drawing: which node each event belongs to.

`Replay` takes history events oldest first and keeps, for every step run (one StepEntered), its
node, its outcome, its task attempts and its timeline items. The rules (how a StepEntered finds
its lane, what each state means) are in `relayflow.console.view`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relayflow.console.layout_tree import LaneBox, StepBox, Tree
from relayflow.engine.interpreter import error_matches
from relayflow.fdl import ChoiceStep, TaskStep, WaitStep
from relayflow.results import HistoryEvent

__all__ = ["Attempt", "Replay", "Run", "timeline_items"]


@dataclass(eq=False)
class Attempt:
    """One task attempt (a TaskScheduled and what followed it)."""

    number: int
    start: datetime | None
    pattern: str
    end: datetime | None = None
    state: str = ""  # "" while it runs: succeeded, failed, timed_out
    error: str = ""
    cause: str = ""
    input: Any = None


@dataclass(eq=False)
class _Lane:
    """A list running now: the flow's own, one branch, one iteration, or a choice's branch.

    A choice's lane may be one of several lists until its first step says which (`options`).
    """

    options: list[LaneBox]
    parent: Run | None
    indices: tuple[int, ...]
    order: int
    idle_since: int = 0
    active: Run | None = None
    closed: bool = False
    dormant: bool = False  # its step failed: back only if a redrive resumes it

    fallback: list[LaneBox] = field(default_factory=list)


@dataclass(eq=False)
class Run:
    """One run of one step: from its StepEntered to its StepExited."""

    box: StepBox
    lane: _Lane
    entered: int
    start: datetime | None
    input: Any = None
    output: Any = None
    error: str = ""
    cause: str = ""
    end: datetime | None = None
    outcome: str = ""  # succeeded, failed, caught; "" while open
    exited: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    retries: int = 0  # for a step holding lists: its lanes entered again
    pause_since: datetime | None = None  # a task's retry pause
    lanes: dict[int, _Lane] = field(default_factory=dict)
    failed_at: int = 0  # the event id of its StepFailed
    last_seen: datetime | None = None  # its latest event's time, or one below it

    @property
    def node(self) -> str:
        """The node id."""
        return self.box.node.id


class Replay:
    """The history of one execution, folded event by event onto ``tree``'s nodes."""

    def __init__(self, tree: Tree, context: dict[str, Any] | None = None) -> None:
        self.tree = tree
        self.context = context or {}  # what `$context` reads in choice conditions
        self.runs: list[Run] = []
        self.by_entered: dict[int, Run] = {}
        self.tasks: dict[int, tuple[Run, Attempt]] = {}
        self.lanes: list[_Lane] = []
        self.live: dict[_Lane, None] = {}  # lanes neither closed nor dormant, oldest first
        self._by_name: dict[LaneBox, dict[str, StepBox]] = {}
        self.retry_items: list[dict[str, Any]] = []
        self.unmatched = 0  # StepEntered events no open lane holds (a definition changed)
        self.last_start: int = 0  # the latest ExecutionStarted or ExecutionRedriven
        self.ended_at: datetime | None = None  # when the execution ended, if it has
        self.root = self._open([tree.root], None, (), 0)

    def _names(self, lane: LaneBox) -> dict[str, StepBox]:
        found = self._by_name.get(lane)
        if found is None:
            found = self._by_name[lane] = {box.node.name: box for box in lane.items}
        return found

    def _node_of(self, lane: _Lane, name: str) -> tuple[LaneBox, StepBox] | None:
        """The list of ``lane``'s options (else of its fallback) holding step ``name``, and it."""
        for option in (*lane.options, *lane.fallback):
            box = self._names(option).get(name)
            if box is not None:
                return option, box
        return None

    def _close(self, lane: _Lane) -> None:
        lane.closed = True
        self.live.pop(lane, None)

    def _sleep(self, lane: _Lane) -> None:
        lane.dormant = True
        self.live.pop(lane, None)

    def _open(
        self, options: list[LaneBox], parent: Run | None, idx: tuple[int, ...], at: int
    ) -> _Lane:
        lane = _Lane(options, parent, idx, len(self.lanes), idle_since=at)
        self.lanes.append(lane)
        self.live[lane] = None
        return lane

    def feed(self, event: HistoryEvent) -> None:
        """Fold one event in."""
        kind = event.type
        if kind == "StepEntered":
            self._entered(event)
        elif kind == "ExecutionStarted":
            self.last_start = event.event_id
        elif kind == "ExecutionRedriven":
            self._redriven(event)
            self.ended_at = None
        elif kind.startswith("Execution"):  # Succeeded, Failed, Stopped, TimedOut
            self.ended_at = event.time
        elif kind == "TaskScheduled":
            run = self.by_entered.get(event.schedule_event_id)
            if run is not None:
                number = event.detail.get("attempt")  # the engine counts from 0
                attempt = Attempt(
                    number + 1 if isinstance(number, int) else len(run.attempts) + 1,
                    event.time,
                    str(event.detail.get("pattern", "")),
                    input=event.detail.get("input"),
                )
                if run.pause_since is not None:
                    self.retry_items.append(
                        _item("retry", run, run.pause_since, event.time, "retried", attempt.number)
                    )
                    run.pause_since = None
                run.attempts.append(attempt)
                self.tasks[event.event_id] = (run, attempt)
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            found = self.tasks.get(event.schedule_event_id)
            if found is not None:
                run, attempt = found
                attempt.end = event.time
                attempt.state = {"TaskSucceeded": "succeeded", "TaskFailed": "failed"}.get(
                    kind, "timed_out"
                )
                if kind != "TaskSucceeded":
                    attempt.error = str(event.detail.get("error", ""))
                    attempt.cause = str(event.detail.get("cause", ""))
                    run.pause_since = event.time  # a retry pause, unless the step fails now
        elif kind in ("BranchEntered", "IterationEntered"):
            self._lane_entered(event)
        elif kind in ("BranchExited", "IterationExited"):
            run = self.by_entered.get(event.schedule_event_id)
            index = event.detail.get("index")
            if run is not None and isinstance(index, int) and index in run.lanes:
                self._close(run.lanes[index])
        elif kind in ("StepSucceeded", "StepFailed", "StepExited"):
            self._left(event)
        self._touch(event)

    def _touch(self, event: HistoryEvent) -> None:
        """Note the event's time on its run and every run holding it (for retry pauses)."""
        if event.type == "StepEntered":
            run = self.by_entered.get(event.event_id)
        elif event.type.startswith("Task") and event.type != "TaskScheduled":
            found = self.tasks.get(event.schedule_event_id)
            run = found[0] if found is not None else None
        else:
            run = self.by_entered.get(event.schedule_event_id)
        while run is not None:
            run.last_seen = event.time
            run = run.lane.parent

    # -- steps ----------------------------------------------------------------------------------

    def _entered(self, event: HistoryEvent) -> None:
        found = None
        candidates = [lane for lane in self.live if lane.active is None]
        candidates.sort(key=lambda lane: (lane.idle_since, lane.order))
        for lane in candidates:
            match = self._node_of(lane, event.step_name)
            if match is not None:
                found = lane, match
                break
        if found is None:
            self.unmatched += 1
            return
        lane, (option, box) = found
        lane.options, lane.fallback = [option], []  # a choice's lane is now known
        run = Run(box, lane, event.event_id, event.time, input=event.detail.get("input"))
        lane.active = run
        self.runs.append(run)
        self.by_entered[event.event_id] = run
        step = box.step
        if isinstance(step, ChoiceStep) and box.lanes:
            # The branch is the one whose condition holds for the recorded input, as the engine
            # chose it; the others stay in reserve should `$context` have made it differ.
            with_steps = [sub for sub in box.lanes if sub.items]
            if with_steps:
                chosen = self._choose(step, box, run.input)
                inner = self._open(with_steps, run, lane.indices, event.event_id)
                if chosen is not None:
                    inner.options = [chosen] if chosen.items else []
                    inner.fallback = [sub for sub in with_steps if sub is not chosen]
                run.lanes[0] = inner

    def _choose(self, step: ChoiceStep, box: StepBox, data: Any) -> LaneBox | None:
        """The lane of the branch a choice takes on ``data`` (None: it cannot be told)."""
        key = "default"
        try:
            for c, branch in enumerate(step.choices):
                if branch.condition.evaluate(data, self.context):
                    key = f"choices.{c}"
                    break
        except Exception:  # a condition that reads what the view lacks (or bad data)
            return None
        lanes = {sub.id.rsplit("/", 1)[-1]: sub for sub in box.lanes}
        return lanes.get(key, LaneBox("", "none", "", None))

    def _lane_entered(self, event: HistoryEvent) -> None:
        run = self.by_entered.get(event.schedule_event_id)
        index = event.detail.get("index")
        if run is None or not isinstance(index, int) or not run.box.lanes:
            return
        if index in run.lanes and index == min(run.lanes):  # entered again: a retry
            run.retries += 1
            pause = run.last_seen or run.start  # the last sign of the failed attempt
            self.retry_items.append(
                _item("retry", run, pause, event.time, "retried", run.retries + 1)
            )
            for old in run.lanes.values():
                self._close(old)
                self._cancel_below(old)
            run.lanes = {}
        options = run.box.lanes
        option = options[0] if len(options) == 1 else options[min(index, len(options) - 1)]
        run.lanes[index] = self._open([option], run, (*run.lane.indices, index), event.event_id)

    def _left(self, event: HistoryEvent) -> None:
        run = self.by_entered.get(event.schedule_event_id)
        if run is None:
            return
        kind = event.type
        if kind == "StepSucceeded":
            run.output = event.detail.get("output")
            run.outcome = "succeeded"
            run.pause_since = None
            for sub in run.lanes.values():
                self._close(sub)
        elif kind == "StepFailed":
            run.error = str(event.detail.get("error", ""))
            run.cause = str(event.detail.get("cause", ""))
            run.failed_at = event.event_id
            run.pause_since = None
            policies = getattr(run.box.step, "catch", None) or []
            caught = any(error_matches(p.errors, run.error) for p in policies)
            run.outcome = "caught" if caught else "failed"
            for sub in run.lanes.values():
                if not sub.closed:
                    self._sleep(sub)
        else:  # StepExited
            run.exited = True
            run.end = event.time
            if run.lane.active is run:
                run.lane.active = None
                run.lane.idle_since = event.event_id

    def _cancel_below(self, lane: _Lane) -> None:
        """A lane given up (its step is retried): what ran in it has ended without outcome."""
        if lane.active is not None and not lane.active.exited:
            lane.active.exited = True
        lane.active = None

    def _redriven(self, event: HistoryEvent) -> None:
        """Open again what the failure or stop left: the lanes under failed steps, idle."""
        for run in self.runs:
            if run.failed_at > self.last_start and run.outcome == "failed":
                for sub in run.lanes.values():
                    if sub.dormant:
                        sub.dormant = False
                        self.live[sub] = None
                if run.box.lanes and any(not s.closed for s in run.lanes.values()):
                    run.outcome, run.exited, run.end = "", False, None  # it goes on
                    run.lane.active = run
        for lane in self.lanes:
            active = lane.active
            if active is not None and not active.exited and not active.box.lanes:
                active.exited = True  # cancelled by the end: entered again now
                active.end = self.ended_at or event.time
                lane.active = None
                lane.idle_since = event.event_id
            elif active is not None and active.exited:
                lane.active = None
        self.last_start = event.event_id

    # -- results --------------------------------------------------------------------------------

    def state(self, run: Run, ended: bool) -> str:
        """The run's state (the names are in `relayflow.console.view`)."""
        if run.outcome == "succeeded":
            return "retried" if run.retries or len(run.attempts) > 1 else "succeeded"
        if run.outcome:
            return run.outcome
        if run.exited or ended or self._abandoned(run):
            return "cancelled"
        step = run.box.step
        if isinstance(step, WaitStep) or run.pause_since is not None:
            return "waiting"
        if isinstance(step, TaskStep) and run.attempts and not run.attempts[-1].state:
            return "waiting" if run.attempts[-1].pattern == "waitForCallback" else "running"
        return "running"

    def _abandoned(self, run: Run) -> bool:
        """Whether a step holding its lane has ended (or given the lane up) under it."""
        lane: _Lane | None = run.lane
        while lane is not None:
            if lane.closed or lane.dormant:
                return True
            parent = lane.parent
            if parent is None:
                return False
            if parent.exited and parent.outcome != "":
                return True
            lane = parent.lane
        return False

    def cancelled_at(self, run: Run) -> datetime | None:
        """When a run that ended without an outcome ended.

        Its own exit, else when the step holding its lane ended, else when the execution did.
        """
        if run.end is not None:
            return run.end
        parent = run.lane.parent
        while parent is not None:
            if parent.end is not None:
                return parent.end
            parent = parent.lane.parent
        return self.ended_at

    def attempt_state(self, run: Run, attempt: Attempt, run_state: str) -> str:
        """A task attempt's state for the timeline."""
        if attempt.state == "succeeded":
            return "succeeded"
        if attempt.state:
            return "failed"
        if run_state in ("running", "waiting"):
            return "waiting" if attempt.pattern == "waitForCallback" else "running"
        return "cancelled"


def _item(
    kind: str,
    run: Run,
    start: datetime | None,
    end: datetime | None,
    state: str,
    attempt: int = 0,
) -> dict[str, Any]:
    """A timeline item before its times are written out."""
    return {
        "kind": kind,
        "node": run.node,
        "name": run.box.node.name,
        "indices": list(run.lane.indices),
        "start": start,
        "end": end,
        "state": state,
        "attempt": attempt,
    }


def timeline_items(replay: Replay, ended: bool) -> list[dict[str, Any]]:
    """Steps, task attempts, retry pauses and waits, by start time (then document order)."""
    items: list[dict[str, Any]] = []
    for run in replay.runs:
        state = replay.state(run, ended)
        end = None
        if state == "cancelled":
            end = replay.cancelled_at(run)
        elif state not in ("running", "waiting"):
            end = run.end
        items.append(_item("step", run, run.start, end, state))
        if isinstance(run.box.step, WaitStep):
            items.append(_item("wait", run, run.start, end, state))
        for attempt in run.attempts:
            a_state = replay.attempt_state(run, attempt, state)
            a_end = attempt.end or (end if a_state == "cancelled" else None)
            items.append(_item("task", run, attempt.start, a_end, a_state, attempt.number))
        if run.pause_since is not None and state == "waiting":
            nxt = len(run.attempts) + 1
            items.append(_item("retry", run, run.pause_since, None, "waiting", nxt))
    items.extend(replay.retry_items)
    order = {"step": 0, "wait": 1, "task": 2, "retry": 3}
    items.sort(
        key=lambda i: (
            i["start"] is None,
            i["start"].timestamp() if i["start"] else 0.0,
            order[i["kind"]],
        )
    )
    return items
