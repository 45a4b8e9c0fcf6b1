"""`Driver`: the pure interpreter, driven command by command with a fake clock.

The tests in this folder go through `Driver`, which keeps the state as JSON between commands (so the
state must survive `dump_state`/`load_state` every time), collects all events and effects, and
checks after each command that EventIds run 1..n without gaps, that ScheduleEventIds point at the
right events, and that a finished execution holds nothing open.
"""

from __future__ import annotations

from typing import Any

from relayflow.engine.interpreter import Interpreter
from relayflow.engine.model import (
    Command,
    Effect,
    ExecutionEnded,
    ExecutionState,
    HistoryEvent,
    InvokeTask,
    Limits,
    Start,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    Transition,
)
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.fdl import load_flow

T0 = 1_700_000_000.0
FN = "acs:fc:::services/shop/functions/work"
QUEUE = "acs:mns:::/queues/jobs/messages"

#: Events whose ScheduleEventId is the StepEntered of the same step.
STEP_LINKED = {
    "StepSucceeded",
    "StepFailed",
    "StepExited",
    "TaskScheduled",
    "BranchEntered",
    "BranchExited",
    "IterationEntered",
    "IterationExited",
}
#: Events whose ScheduleEventId is the TaskScheduled of the task attempt.
TASK_LINKED = {"TaskStarted", "TaskSubmitted", "TaskSucceeded", "TaskFailed", "TaskTimedOut"}
EXECUTION_ENDS = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"}


def mint(task_id: int) -> str:
    return f"token-{task_id}"


def types(transition: Transition) -> list[str]:
    return [e.type for e in transition.events]


class Driver:
    """Holds one execution's state as JSON and applies commands to it at a fake time."""

    def __init__(
        self,
        text: str,
        *,
        limits: Limits | None = None,
        now: float = T0,
        flow_name: str = "orders",
        execution_name: str = "run-1",
    ) -> None:
        self.interp = Interpreter(load_flow(text), limits)
        self.text = dump_state(ExecutionState())
        self.now = now
        self.flow_name = flow_name
        self.execution_name = execution_name
        self.events: list[HistoryEvent] = []
        self.effects: list[Effect] = []
        self.invoked: dict[int, InvokeTask] = {}
        self.started: dict[int, StartTimer] = {}
        self.last = Transition()

    # -- applying commands ----------------------------------------------------------------

    @property
    def state(self) -> ExecutionState:
        return load_state(self.text)

    def apply(self, command: Command) -> Transition:
        state = load_state(self.text)
        transition = self.interp.apply(
            state,
            command,
            self.now,
            flow_name=self.flow_name,
            execution_name=self.execution_name,
            mint_token=mint,
        )
        self.text = dump_state(state)
        assert load_state(self.text) == state, "the state changed through dump_state/load_state"
        assert all(e.time == self.now for e in transition.events)
        self.events.extend(transition.events)
        self.effects.extend(transition.effects)
        for effect in transition.effects:
            if isinstance(effect, InvokeTask):
                assert effect.task_id not in self.invoked, "a task id was used twice"
                self.invoked[effect.task_id] = effect
            elif isinstance(effect, StartTimer):
                assert effect.timer_id not in self.started, "a timer id was used twice"
                self.started[effect.timer_id] = effect
        self.last = transition
        self.check(state)
        return transition

    def check(self, state: ExecutionState) -> None:
        ids = [e.event_id for e in self.events]
        assert ids == list(range(1, len(ids) + 1)), f"EventIds are not 1..n: {ids}"
        assert state.next_event == len(ids) + 1
        by_id = {e.event_id: e for e in self.events}
        for event in self.events:
            if event.type in STEP_LINKED:
                entered = by_id[event.schedule_event_id]
                assert (entered.type, entered.step_name) == ("StepEntered", event.step_name), event
            elif event.type in TASK_LINKED:
                scheduled = by_id[event.schedule_event_id]
                assert (scheduled.type, scheduled.step_name) == (
                    "TaskScheduled",
                    event.step_name,
                ), event
            else:
                assert event.schedule_event_id == 0, event
        for task_id, invoke in self.invoked.items():
            scheduled = by_id[task_id]
            assert scheduled.type == "TaskScheduled" and scheduled.step_name == invoke.step_name
            assert invoke.token == mint(task_id)
        endings = [e for e in self.effects if isinstance(e, ExecutionEnded)]
        finals = [e for e in self.events if e.type in EXECUTION_ENDS]
        if state.done:
            assert len(endings) == 1 and len(finals) == 1
            assert self.events[-1] is finals[0]
            assert state.tasks == {} and state.timers == {} and state.scopes == {}
            assert endings[0] == ExecutionEnded(
                state.status, state.output, state.error, state.cause
            )
        else:
            assert endings == [] and finals == []

    def start(self, data: dict[str, Any] | None = None) -> Transition:
        return self.apply(Start({} if data is None else data))

    # -- tasks --------------------------------------------------------------------------------

    def open_tasks(self) -> list[InvokeTask]:
        return [self.invoked[task_id] for task_id in sorted(self.state.tasks)]

    def task(self, step: str) -> InvokeTask:
        found = [t for t in self.open_tasks() if t.step_name == step]
        assert len(found) == 1, f"open tasks of {step!r}: {found}"
        return found[0]

    def complete(self, step: str, output: Any = None) -> Transition:
        return self.apply(TaskSucceeded(self.task(step).task_id, {} if output is None else output))

    def fail(self, step: str, error: str, cause: str = "") -> Transition:
        return self.apply(TaskFailed(self.task(step).task_id, error, cause))

    # -- timers -------------------------------------------------------------------------------

    def pending_timers(self) -> list[StartTimer]:
        return [self.started[timer_id] for timer_id in sorted(self.state.timers)]

    def timer(self, kind: str) -> StartTimer:
        found = [t for t in self.pending_timers() if t.kind == kind]
        assert len(found) == 1, f"pending {kind} timers: {found}"
        return found[0]

    def fire(self, kind: str) -> Transition:
        timer = self.timer(kind)
        self.now = max(self.now, timer.fire_at)
        return self.apply(TimerFired(timer.timer_id))

    # -- reading the history ------------------------------------------------------------------

    def find(self, kind: str, step: str | None = None) -> list[HistoryEvent]:
        return [e for e in self.events if e.type == kind and (step is None or e.step_name == step)]

    def one(self, kind: str, step: str | None = None) -> HistoryEvent:
        found = self.find(kind, step)
        assert len(found) == 1, f"{kind} {step}: {found}"
        return found[0]

    def entered(self, step: str) -> list[dict[str, Any]]:
        """The inputs with which ``step`` was entered, in order."""
        return [e.detail["input"] for e in self.find("StepEntered", step)]

    def output_of(self, step: str) -> dict[str, Any]:
        return self.one("StepSucceeded", step).detail["output"]

    def steps_entered(self) -> list[str]:
        return [e.step_name for e in self.find("StepEntered")]

    def ended(self) -> ExecutionEnded:
        found = [e for e in self.effects if isinstance(e, ExecutionEnded)]
        assert len(found) == 1
        return found[0]

    def assert_succeeded(self, output: dict[str, Any]) -> None:
        state = self.state
        assert (state.status, state.error, state.cause) == ("Succeeded", "", ""), state
        assert state.output == output
        assert self.events[-1].type == "ExecutionSucceeded"
        assert self.events[-1].detail == {"output": output}
        assert self.ended() == ExecutionEnded("Succeeded", output, "", "")

    def assert_failed(self, error: str, cause: str | None = None) -> None:
        state = self.state
        assert (state.status, state.error) == ("Failed", error), (state.status, state.error)
        if cause is not None:
            assert state.cause == cause
        assert state.output is None
        assert self.events[-1].type == "ExecutionFailed"
        assert self.events[-1].detail == {"error": error, "cause": state.cause}
        assert self.ended() == ExecutionEnded("Failed", None, error, state.cause)


def ignored(driver: Driver, command: Command) -> None:
    """Assert that ``command`` changes nothing: no events, no effects, the same state."""
    before = driver.text
    transition = driver.apply(command)
    assert transition.events == [] and transition.effects == []
    assert driver.text == before
