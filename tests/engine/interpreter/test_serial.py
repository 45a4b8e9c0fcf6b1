"""The pure interpreter, driven command by command with a fake clock.

Every test goes through `Driver`, which keeps the state as JSON between commands (so the state
must survive `dump_state`/`load_state` every time), collects all events and effects, and checks
after each command that EventIds run 1..n without gaps, that ScheduleEventIds point at the right
events, and that a finished execution holds nothing open.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from relayflow.engine.interpreter import Interpreter
from relayflow.engine.model import (
    CancelTimer,
    CloseTask,
    Command,
    Effect,
    ExecutionEnded,
    ExecutionState,
    HistoryEvent,
    InvokeTask,
    Limits,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskSubmitted,
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


def flow_yaml(steps: str, head: str = "") -> str:
    """A flow document from the YAML of its steps (and optional extra top-level keys)."""
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    return f"version: v1\ntype: flow\n{textwrap.dedent(head).strip()}\nsteps:\n{body}\n"


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


# ---------------------------------------------------------------------------------------------
# Serial lists, end, goto, succeed, fail


def test_serial_steps_record_linked_events_and_effects():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: fetch
              resourceArn: {FN}
            - type: pass
              name: tag
              outputMappings:
                - target: tagged
                  source: $input.price
        """)
    )
    t = d.start({"orderId": "o-1"})
    assert [(e.event_id, e.schedule_event_id, e.type, e.step_name) for e in t.events] == [
        (1, 0, "ExecutionStarted", ""),
        (2, 0, "StepEntered", "fetch"),
        (3, 2, "TaskScheduled", "fetch"),
        (4, 3, "TaskStarted", "fetch"),
    ]
    assert t.events[0].detail == {"input": {"orderId": "o-1"}}
    assert t.events[1].detail == {"input": {"orderId": "o-1"}}
    assert t.events[2].detail == {
        "resource": FN,
        "pattern": "requestResponse",
        "input": {"orderId": "o-1"},
        "attempt": 0,
    }
    assert t.effects == [
        InvokeTask(3, "token-3", "fetch", FN, "requestResponse", {"orderId": "o-1"}, None, None, 0)
    ]
    assert d.state.status == "Running"

    d.now = T0 + 5
    t = d.complete("fetch", {"price": 12})
    assert [(e.event_id, e.schedule_event_id, e.type, e.step_name, e.detail) for e in t.events] == [
        (5, 3, "TaskSucceeded", "fetch", {"output": {"price": 12}}),
        (6, 2, "StepSucceeded", "fetch", {"output": {"price": 12}}),
        (7, 2, "StepExited", "fetch", {}),
        (8, 0, "StepEntered", "tag", {"input": {"orderId": "o-1", "price": 12}}),
        (9, 8, "StepSucceeded", "tag", {"output": {"tagged": 12}}),
        (10, 8, "StepExited", "tag", {}),
        (11, 0, "ExecutionSucceeded", "", {"output": {"price": 12, "tagged": 12}}),
    ]
    assert all(e.time == T0 + 5 for e in t.events)
    assert t.effects == [
        CloseTask(3, "completed", "succeeded"),
        ExecutionEnded("Succeeded", {"price": 12, "tagged": 12}, "", ""),
    ]
    d.assert_succeeded({"price": 12, "tagged": 12})


def test_a_flow_of_pass_steps_finishes_in_the_start_transition():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: a
              outputMappings:
                - target: a
                  source: 1
            - type: pass
              name: b
              outputMappings:
                - target: b
                  source: $input.a
        """)
    )
    t = d.start({"a": 0, "keep": True})
    assert types(t)[0] == "ExecutionStarted" and types(t)[-1] == "ExecutionSucceeded"
    assert d.entered("b") == [{"a": 1, "keep": True}]
    d.assert_succeeded({"a": 1, "b": 1})


def test_end_true_finishes_the_list_after_its_step():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: first
              outputMappings:
                - target: a
                  source: 1
            - type: pass
              name: last
              end: true
              outputMappings:
                - target: b
                  source: 2
            - type: pass
              name: never
              outputMappings:
                - target: c
                  source: 3
        """)
    )
    d.start()
    assert d.steps_entered() == ["first", "last"]
    d.assert_succeeded({"a": 1, "b": 2})


def test_end_true_inside_a_branch_ends_only_that_branch():
    d = Driver(
        flow_yaml("""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: pass
                      name: one
                      end: true
                      outputMappings:
                        - target: x
                          source: 1
                    - type: pass
                      name: skipped
                      outputMappings:
                        - target: x
                          source: 99
              outputMappings:
                - target: xs
                  source: $local[*].x
            - type: pass
              name: after
              outputMappings:
                - target: after
                  source: true
        """)
    )
    d.start()
    assert "skipped" not in d.steps_entered()
    d.assert_succeeded({"xs": [1], "after": True})


@pytest.mark.parametrize(
    ("skip", "entered", "output"),
    [
        (True, ["route", "landing"], {"landed": True}),
        (False, ["route", "middle", "landing"], {"middle": "ran", "landed": True}),
    ],
)
def test_goto_forwards_skips_the_steps_between(skip, entered, output):
    d = Driver(
        flow_yaml("""
            - type: choice
              name: route
              choices:
                - condition: $.skip == true
                  goto: landing
            - type: pass
              name: middle
              outputMappings:
                - target: middle
                  source: ran
            - type: pass
              name: landing
              outputMappings:
                - target: landed
                  source: true
        """)
    )
    d.start({"skip": skip})
    assert d.steps_entered() == entered
    d.assert_succeeded(output)


def test_goto_backwards_polls_until_the_task_says_done():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: poll
              resourceArn: {FN}
              inputMappings:
                - target: count
                  source: $local.count
            - type: choice
              name: finished
              choices:
                - condition: $.count < 3
                  goto: poll
            - type: pass
              name: done
              outputMappings:
                - target: polls
                  source: $input.count
        """)
    )
    d.start()
    task_ids = []
    for count in (1, 2, 3):
        task_ids.append(d.task("poll").task_id)
        d.now += 10
        d.complete("poll", {"count": count})
    assert d.entered("poll") == [{"count": None}, {"count": 1}, {"count": 2}]
    assert len(set(task_ids)) == 3
    assert [e.event_id for e in d.find("TaskScheduled", "poll")] == task_ids
    assert len(d.find("StepEntered", "finished")) == 3
    assert d.steps_entered()[-1] == "done"
    d.assert_succeeded({"count": 3, "polls": 3})


def test_goto_inside_a_branch_loops_within_the_branch():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: step
                      resourceArn: {FN}
                    - type: choice
                      name: again
                      choices:
                        - condition: $.more == true
                          goto: step
                - steps:
                    - type: task
                      name: step
                      resourceArn: {FN}
              outputMappings:
                - target: branches
                  source: $local
        """)
    )
    d.start()
    first, second = d.open_tasks()
    d.apply(TaskSucceeded(first.task_id, {"more": True, "n": 1}))
    d.apply(TaskSucceeded(second.task_id, {"n": 10}))
    assert d.state.status == "Running"
    (again,) = d.open_tasks()
    assert again.input == {"more": True, "n": 1}
    d.apply(TaskSucceeded(again.task_id, {"more": False, "n": 2}))
    d.assert_succeeded({"branches": [{"more": False, "n": 2}, {"n": 10}]})


def test_succeed_ends_its_list_early_with_its_output():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: a
              outputMappings:
                - target: x
                  source: 1
            - type: succeed
              name: stop
              outputMappings:
                - target: status
                  source: done
            - type: pass
              name: never
              outputMappings:
                - target: never
                  source: true
        """)
    )
    d.start()
    assert d.steps_entered() == ["a", "stop"]
    d.assert_succeeded({"x": 1, "status": "done"})


def test_succeed_inside_a_nested_list_ends_only_that_list():
    d = Driver(
        flow_yaml("""
            - type: choice
              name: pick
              choices:
                - condition: true
                  steps:
                    - type: pass
                      name: before
                      outputMappings:
                        - target: before
                          source: 1
                    - type: succeed
                      name: early
                    - type: pass
                      name: skippedInChoice
                      outputMappings:
                        - target: skipped
                          source: 1
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: succeed
                      name: quick
                      outputMappings:
                        - target: q
                          source: 1
                    - type: pass
                      name: skippedInBranch
                      outputMappings:
                        - target: u
                          source: 1
                - steps:
                    - type: pass
                      name: other
                      outputMappings:
                        - target: o
                          source: 1
              outputMappings:
                - target: branches
                  source: $local
            - type: pass
              name: after
              outputMappings:
                - target: after
                  source: 1
        """)
    )
    d.start()
    entered = d.steps_entered()
    assert "skippedInChoice" not in entered and "skippedInBranch" not in entered
    assert "after" in entered
    d.assert_succeeded({"before": 1, "branches": [{"q": 1}, {"o": 1}], "after": 1})


def test_fail_step_fails_the_execution_with_its_error_and_cause():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: a
            - type: fail
              name: broken
              error: StatusIsNotReady
              cause: status is not ready
            - type: pass
              name: never
        """)
    )
    t = d.start()
    assert types(t)[-4:] == ["StepEntered", "StepFailed", "StepExited", "ExecutionFailed"]
    failed = d.one("StepFailed", "broken")
    assert failed.detail == {"error": "StatusIsNotReady", "cause": "status is not ready"}
    assert failed.schedule_event_id == d.one("StepEntered", "broken").event_id
    assert "never" not in d.steps_entered()
    d.assert_failed("StatusIsNotReady", "status is not ready")


def test_fail_in_a_parallel_branch_fails_the_step_and_cancels_the_other_branches():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: slow
                      resourceArn: {FN}
                      timeoutSeconds: 60
                - steps:
                    - type: wait
                      name: nap
                      duration: 100
                - steps:
                    - type: task
                      name: check
                      resourceArn: {FN}
                    - type: fail
                      name: reject
                      error: Rejected
                      cause: not allowed
            - type: pass
              name: never
        """)
    )
    t = d.start()
    assert types(t).count("BranchEntered") == 3
    slow, check = d.task("slow"), d.task("check")
    timeout, nap = d.timer("timeout"), d.timer("wait")
    assert (timeout.fire_at, nap.fire_at) == (T0 + 60, T0 + 100)

    d.now = T0 + 1
    t = d.complete("check")
    assert set(t.effects[:-1]) == {
        CloseTask(check.task_id, "completed", "succeeded"),
        CloseTask(slow.task_id, "expired", "cancelled"),
        CancelTimer(timeout.timer_id),
        CancelTimer(nap.timer_id),
    }
    assert len(t.effects) == 5
    assert d.one("StepFailed", "reject").detail == {"error": "Rejected", "cause": "not allowed"}
    assert d.one("StepFailed", "fan").detail == {"error": "Rejected", "cause": "not allowed"}
    assert "never" not in d.steps_entered()
    d.assert_failed("Rejected", "not allowed")
    ignored(d, TaskSucceeded(slow.task_id, {}))
    ignored(d, TimerFired(nap.timer_id))


# ---------------------------------------------------------------------------------------------
# choice

CHOICE_FLOW = flow_yaml("""
    - type: choice
      name: size
      choices:
        - condition: $.n > 5
          steps:
            - type: pass
              name: big
              outputMappings:
                - target: size
                  source: big
          goto: report
        - condition: $.n > 0
          steps:
            - type: pass
              name: small
              outputMappings:
                - target: size
                  source: small
        - condition: $.n > 1
          goto: report
      default:
        steps:
          - type: pass
            name: none
            outputMappings:
              - target: size
                source: none
        goto: report
    - type: pass
      name: between
      outputMappings:
        - target: between
          source: true
    - type: pass
      name: report
""")


@pytest.mark.parametrize(
    ("n", "entered", "output"),
    [
        (10, ["size", "big", "report"], {"size": "big"}),
        (3, ["size", "small", "between", "report"], {"size": "small", "between": True}),
        (-1, ["size", "none", "report"], {"size": "none"}),
    ],
)
def test_choice_runs_the_first_true_branch_then_its_goto(n, entered, output):
    d = Driver(CHOICE_FLOW)
    d.start({"n": n})
    assert d.steps_entered() == entered
    assert d.output_of("size") == {"size": output["size"]}
    d.assert_succeeded(output)


def test_choice_without_a_match_or_default_continues():
    d = Driver(
        flow_yaml("""
            - type: choice
              name: maybe
              choices:
                - condition: $.flag
                  steps:
                    - type: pass
                      name: inside
                      outputMappings:
                        - target: inside
                          source: true
                  goto: final
            - type: pass
              name: next
              outputMappings:
                - target: next
                  source: true
            - type: pass
              name: final
        """)
    )
    d.start({"flag": False})
    assert d.steps_entered() == ["maybe", "next", "final"]
    assert d.output_of("maybe") == {}
    d.assert_succeeded({"next": True})


def test_choice_local_is_the_branch_local_and_output_mappings_read_it():
    d = Driver(
        flow_yaml("""
            - type: choice
              name: compute
              inputMappings:
                - target: base
                  source: $input.base
              choices:
                - condition: $.base != null
                  steps:
                    - type: pass
                      name: one
                      outputMappings:
                        - target: a
                          source: $input.base
                    - type: pass
                      name: two
                      outputMappings:
                        - target: b
                          source: $input.a
              outputMappings:
                - target: total
                  source: $local
                - target: b
                  source: $local.b
            - type: choice
              name: plain
              choices:
                - condition: true
                  steps:
                    - type: pass
                      name: three
                      outputMappings:
                        - target: c
                          source: 3
        """)
    )
    d.start({"base": 7, "noise": 1})
    assert d.entered("compute") == [{"base": 7}]
    assert d.entered("two") == [{"base": 7, "a": 7}]
    assert d.output_of("compute") == {"total": {"a": 7, "b": 7}, "b": 7}
    assert d.output_of("plain") == {"c": 3}
    d.assert_succeeded({"total": {"a": 7, "b": 7}, "b": 7, "c": 3})


def test_choice_conditions_can_read_the_context():
    d = Driver(
        flow_yaml("""
            - type: choice
              name: who
              choices:
                - condition: $context.execution.name == "nightly"
                  goto: nightly
            - type: pass
              name: manual
              end: true
              outputMappings:
                - target: by
                  source: manual
            - type: pass
              name: nightly
              outputMappings:
                - target: by
                  source: $context.flow.name
        """),
        execution_name="nightly",
    )
    d.start()
    d.assert_succeeded({"by": "orders"})


# ---------------------------------------------------------------------------------------------
# parallel

PARALLEL_FLOW = flow_yaml(f"""
    - type: pass
      name: seed
      outputMappings:
        - target: shared
          source: s
    - type: parallel
      name: fan
      branches:
        - steps:
            - type: task
              name: left
              resourceArn: {FN}
            - type: pass
              name: leftAfter
              outputMappings:
                - target: seen
                  source: $input.x
        - steps:
            - type: task
              name: right
              resourceArn: {FN}
      outputMappings:
        - target: xs
          source: $local[*].x
        - target: all
          source: $local
    - type: parallel
      name: quiet
      branches:
        - steps:
            - type: pass
              name: p
              outputMappings:
                - target: q
                  source: 1
""")


def test_parallel_starts_every_branch_at_once_and_keeps_branch_order():
    d = Driver(PARALLEL_FLOW)
    t = d.start({"x": 0})
    fan = d.one("StepEntered", "fan")
    branch_events = [(e.type, e.detail, e.schedule_event_id) for e in d.find("BranchEntered")]
    assert branch_events == [
        ("BranchEntered", {"index": 0}, fan.event_id),
        ("BranchEntered", {"index": 1}, fan.event_id),
    ]
    invokes = [e for e in t.effects if isinstance(e, InvokeTask)]
    assert [i.step_name for i in invokes] == ["left", "right"]
    assert all(i.input == {"x": 0, "shared": "s"} for i in invokes)

    d.complete("right", {"x": 2})
    assert d.one("BranchExited", "fan").detail == {"index": 1}
    d.complete("left", {"x": 1})
    # a branch step sees the parallel's input and its own branch's local, never another's
    assert d.entered("leftAfter") == [{"x": 1, "shared": "s"}]
    assert [e.detail for e in d.find("BranchExited", "fan")] == [{"index": 1}, {"index": 0}]
    assert d.output_of("fan") == {"xs": [1, 2], "all": [{"x": 1, "seen": 1}, {"x": 2}]}
    assert d.output_of("quiet") == {}
    d.assert_succeeded({"shared": "s", "xs": [1, 2], "all": [{"x": 1, "seen": 1}, {"x": 2}]})


def test_parallel_catch_takes_a_branch_failure_with_error_mappings():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: a
                      resourceArn: {FN}
                      timeoutSeconds: 300
                - steps:
                    - type: task
                      name: b
                      resourceArn: {FN}
                - steps:
                    - type: wait
                      name: nap
                      duration: 100
              errorMappings:
                - target: why
                  source: $local.error
              catch:
                - errors: [Boom]
                  goto: recover
            - type: pass
              name: fine
              end: true
            - type: task
              name: recover
              resourceArn: {FN}
        """)
    )
    d.start()
    a, timeout, nap = d.task("a"), d.timer("timeout"), d.timer("wait")
    t = d.fail("b", "Boom", "b broke")
    assert CloseTask(a.task_id, "expired", "cancelled") in t.effects
    assert CancelTimer(timeout.timer_id) in t.effects
    assert CancelTimer(nap.timer_id) in t.effects
    assert d.pending_timers() == []
    assert [i.step_name for i in d.open_tasks()] == ["recover"]
    assert d.one("StepFailed", "fan").detail == {"error": "Boom", "cause": "b broke"}
    assert d.task("recover").input == {"why": "Boom"}
    ignored(d, TimerFired(nap.timer_id))
    ignored(d, TaskSucceeded(a.task_id, {}))
    d.complete("recover", {"recovered": True})
    assert "fine" not in d.steps_entered()
    d.assert_succeeded({"why": "Boom", "recovered": True})


def test_parallel_retry_runs_every_branch_again():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              retry:
                - errors: [FnF.ALL]
                  intervalSeconds: 5
                  maxAttempts: 1
              branches:
                - steps:
                    - type: task
                      name: a
                      resourceArn: {FN}
                - steps:
                    - type: task
                      name: b
                      resourceArn: {FN}
              outputMappings:
                - target: all
                  source: $local
        """)
    )
    d.start()
    first_a = d.task("a")
    t = d.fail("b", "Flaky")
    assert CloseTask(first_a.task_id, "expired", "cancelled") in t.effects
    assert [e.step_name for e in d.find("StepFailed")] == ["b"]
    assert d.timer("retry").fire_at == T0 + 5
    assert d.open_tasks() == []
    t = d.fire("retry")
    assert sorted(i.step_name for i in d.open_tasks()) == ["a", "b"]
    assert first_a.task_id not in {i.task_id for i in d.open_tasks()}
    assert types(t).count("BranchEntered") == 2
    d.complete("a", {"a": 1})
    d.complete("b", {"b": 2})
    d.assert_succeeded({"all": [{"a": 1}, {"b": 2}]})


# ---------------------------------------------------------------------------------------------
# foreach

FOREACH_FLOW = flow_yaml(f"""
    - type: foreach
      name: each
      iterationMapping:
        collection: $.files
        item: file
        index: i
      steps:
        - type: task
          name: size
          resourceArn: {FN}
          outputMappings:
            - target: size
              source: $local.size
            - target: file
              source: $input.file
      outputMappings:
        - target: sizes
          source: $local[*].size
        - target: files
          source: $local[*].file
    - type: foreach
      name: quiet
      iterationMapping:
        collection: $.files
        item: f
      steps:
        - type: pass
          name: nothing
""")


def test_foreach_iterations_get_item_and_index_and_results_keep_collection_order():
    d = Driver(FOREACH_FLOW)
    d.start({"bucket": "b", "files": ["a.txt", "b.txt", "c.txt"]})
    tasks = d.open_tasks()
    assert [t.input for t in tasks] == [
        {"bucket": "b", "files": ["a.txt", "b.txt", "c.txt"], "file": name, "i": i}
        for i, name in enumerate(["a.txt", "b.txt", "c.txt"])
    ]
    each = d.one("StepEntered", "each")
    assert [(e.detail, e.schedule_event_id) for e in d.find("IterationEntered", "each")] == [
        ({"index": i}, each.event_id) for i in range(3)
    ]
    for task, size in zip(reversed(tasks), (30, 20, 10), strict=True):
        d.apply(TaskSucceeded(task.task_id, {"size": size}))
    assert [e.detail for e in d.find("IterationExited", "each")] == [
        {"index": 2},
        {"index": 1},
        {"index": 0},
    ]
    assert d.output_of("each") == {"sizes": [10, 20, 30], "files": ["a.txt", "b.txt", "c.txt"]}
    assert d.output_of("quiet") == {}
    assert [e.detail for e in d.find("IterationEntered", "quiet")] == [
        {"index": i} for i in (0, 1, 2)
    ]
    d.assert_succeeded({"sizes": [10, 20, 30], "files": ["a.txt", "b.txt", "c.txt"]})


def test_foreach_concurrency_limit_launches_iterations_as_others_finish():
    d = Driver(FOREACH_FLOW, limits=Limits(foreach_concurrency=2))
    files = ["f0", "f1", "f2", "f3", "f4"]
    d.start({"files": files})
    assert [t.input["i"] for t in d.open_tasks()] == [0, 1]

    def open_indexes() -> list[int]:
        return sorted(t.input["i"] for t in d.open_tasks())

    def finish(index: int) -> Transition:
        (task,) = [t for t in d.open_tasks() if t.input["i"] == index]
        return d.apply(TaskSucceeded(task.task_id, {"size": index * 10}))

    t = finish(1)
    assert [e.detail for e in t.events if e.type == "IterationEntered"] == [{"index": 2}]
    assert open_indexes() == [0, 2]
    finish(0)
    assert open_indexes() == [2, 3]
    finish(3)
    assert open_indexes() == [2, 4]
    finish(4)
    assert open_indexes() == [2]
    finish(2)
    d.assert_succeeded({"sizes": [0, 10, 20, 30, 40], "files": files})


def test_foreach_over_an_empty_collection_finishes_at_once():
    d = Driver(FOREACH_FLOW)
    d.start({"files": []})
    assert d.find("IterationEntered") == []
    assert d.output_of("each") == {"sizes": [], "files": []}
    assert d.output_of("quiet") == {}
    d.assert_succeeded({"sizes": [], "files": []})


@pytest.mark.parametrize("files", ["abc", {"a": 1}, 5, None, "missing"])
def test_foreach_collection_that_is_not_a_list_is_a_runtime_error(files):
    d = Driver(FOREACH_FLOW)
    d.start({} if files == "missing" else {"files": files})
    assert d.find("IterationEntered") == []
    assert d.one("StepFailed", "each").detail["error"] == "FnF.RuntimeError"
    d.assert_failed("FnF.RuntimeError")


def test_foreach_iteration_failure_fails_the_step_and_cancels_the_rest():
    d = Driver(FOREACH_FLOW)
    d.start({"files": ["a", "b", "c"]})
    first, second, third = d.open_tasks()
    t = d.apply(TaskFailed(second.task_id, "Corrupt", "bad file"))
    assert set(t.effects[:-1]) == {
        CloseTask(second.task_id, "completed", "failed"),
        CloseTask(first.task_id, "expired", "cancelled"),
        CloseTask(third.task_id, "expired", "cancelled"),
    }
    assert d.one("StepFailed", "each").detail == {"error": "Corrupt", "cause": "bad file"}
    d.assert_failed("Corrupt", "bad file")


# ---------------------------------------------------------------------------------------------
# wait

WAIT_THEN_PASS = """
    - type: wait
      name: pause
      {spec}
    - type: pass
      name: after
      outputMappings:
        - target: after
          source: true
"""


@pytest.mark.parametrize(
    ("spec", "data", "seconds"),
    [
        ("duration: 10", {}, 10),
        ("duration: 2.5", {}, 2.5),
        ('duration: "30"', {}, 30),
        ("duration: $.delay", {"delay": 45}, 45),
        ("duration: $input.delay", {"delay": "12"}, 12),
        ("duration: 172800", {}, 172800),
    ],
)
def test_wait_duration_sets_a_timer_and_continues_when_it_fires(spec, data, seconds):
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec=spec)))
    t = d.start(data)
    timer = d.timer("wait")
    assert t.effects == [StartTimer(timer.timer_id, T0 + seconds, "wait")]
    assert d.find("StepSucceeded", "pause") == []
    t = d.fire("wait")
    assert types(t)[:2] == ["StepSucceeded", "StepExited"]
    assert d.output_of("pause") == {}
    d.assert_succeeded({"after": True})
    assert d.events[-1].time == T0 + seconds


def test_wait_until_a_timestamp_in_the_future():
    resume = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec="timestamp: 2030-01-01T08:00:00+08:00")))
    d.now = resume - 3600
    d.start()
    assert d.timer("wait").fire_at == resume
    d.fire("wait")
    d.assert_succeeded({"after": True})


def test_wait_until_a_timestamp_from_the_input():
    resume = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec="timestamp: $.resumeAt")), now=resume - 90)
    d.start({"resumeAt": "2030-01-01T00:00:30Z"})
    assert d.timer("wait").fire_at == resume


def test_wait_until_a_timestamp_in_the_past_ends_at_once():
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec="timestamp: 2019-05-02T15:04:05Z")))
    t = d.start()
    assert not any(isinstance(e, StartTimer) for e in t.effects)
    d.assert_succeeded({"after": True})


@pytest.mark.parametrize(
    ("spec", "data", "limits"),
    [
        ("duration: 172801", {}, None),
        ("duration: $.d", {"d": 61}, Limits(max_wait_seconds=60)),
        ("timestamp: $.t", {"t": "2030-01-03T00:00:01Z"}, None),
    ],
)
def test_wait_longer_than_the_maximum_is_a_runtime_error(spec, data, limits):
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec=spec)), limits=limits, now=now)
    d.start(data)
    assert d.started == {}
    assert d.one("StepFailed", "pause").detail["error"] == "FnF.RuntimeError"
    d.assert_failed("FnF.RuntimeError")


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        ("duration: $.d", {}),
        ("duration: $.d", {"d": -1}),
        ("duration: $.d", {"d": "soon"}),
        ("duration: $.d", {"d": True}),
        ("timestamp: $.t", {"t": "tomorrow"}),
        ("timestamp: $.t", {"t": "2030-01-01T00:00:00"}),
        ("timestamp: $.t", {}),
    ],
)
def test_wait_with_an_unusable_value_is_a_runtime_error(spec, data):
    d = Driver(flow_yaml(WAIT_THEN_PASS.format(spec=spec)))
    d.start(data)
    d.assert_failed("FnF.RuntimeError")


# ---------------------------------------------------------------------------------------------
# task


@pytest.mark.parametrize("pattern", ["requestResponse", "sync", "waitForCallback"])
def test_task_invocation_carries_pattern_mapped_input_params_and_token(pattern):
    d = Driver(
        flow_yaml(f"""
            - type: pass
              name: prep
              outputMappings:
                - target: job
                  source: {{"id": "j-1", "size": 3}}
            - type: task
              name: send
              resourceArn: {QUEUE}
              pattern: {pattern}
              timeoutSeconds: 90
              inputMappings:
                - target: job
                  source: $local.job
                - target: taskToken
                  source: $context.task.token
              serviceParams:
                MessageBody: $
                Priority: 1
                JobId: $.job.id
                Nested:
                  size: $.job.size
        """)
    )
    d.start({"ignored": True})
    scheduled = d.one("TaskScheduled", "send")
    invoke = d.task("send")
    token = mint(scheduled.event_id)
    mapped = {"job": {"id": "j-1", "size": 3}, "taskToken": token}
    params = {"MessageBody": mapped, "Priority": 1, "JobId": "j-1", "Nested": {"size": 3}}
    assert invoke == InvokeTask(
        scheduled.event_id, token, "send", QUEUE, pattern, mapped, params, 90, 0
    )
    assert d.entered("send") == [mapped]
    assert scheduled.detail == {
        "resource": QUEUE,
        "pattern": pattern,
        "input": mapped,
        "attempt": 0,
        "serviceParams": params,
    }
    started = d.one("TaskStarted", "send")
    assert started.schedule_event_id == scheduled.event_id
    d.complete("send", {"done": 1})
    d.assert_succeeded({"job": {"id": "j-1", "size": 3}, "done": 1})


def test_task_with_an_action_is_invoked_with_the_action_as_resource():
    d = Driver(
        flow_yaml("""
            - type: task
              name: startChild
              action: fnf:StartExecution
              serviceParams:
                FlowName: child
                Input: $
        """)
    )
    d.start({"a": 1})
    invoke = d.task("startChild")
    assert (invoke.resource, invoke.service_params) == (
        "fnf:StartExecution",
        {"FlowName": "child", "Input": {"a": 1}},
    )


def test_task_submitted_records_an_event_and_changes_nothing_else():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: send
              resourceArn: {QUEUE}
              pattern: waitForCallback
        """)
    )
    d.start()
    invoke = d.task("send")
    before = d.state
    d.now += 1
    t = d.apply(TaskSubmitted(invoke.task_id, {"messageId": "m-1"}))
    assert [(e.type, e.step_name, e.schedule_event_id, e.detail) for e in t.events] == [
        ("TaskSubmitted", "send", invoke.task_id, {"messageId": "m-1"})
    ]
    assert t.effects == []
    after = d.state
    after.next_event = before.next_event
    assert after == before
    d.complete("send", {"ok": True})
    d.assert_succeeded({"ok": True})
    ignored(d, TaskSubmitted(invoke.task_id, {}))


@pytest.mark.parametrize("result", [[1, 2], "text", 3, None, True])
def test_task_result_that_is_not_an_object_is_invalid_local(result):
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: call
              resourceArn: {FN}
        """)
    )
    d.start()
    task = d.task("call")
    t = d.apply(TaskSucceeded(task.task_id, result))
    assert d.find("TaskSucceeded") == []
    failed = d.one("TaskFailed", "call")
    assert failed.detail["error"] == "FnF.InvalidLocal"
    assert failed.schedule_event_id == task.task_id
    assert CloseTask(task.task_id, "completed", "failed") in t.effects
    d.assert_failed("FnF.InvalidLocal")


def test_invalid_local_can_be_caught():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: call
              resourceArn: {FN}
              catch:
                - errors: [FnF.InvalidLocal]
                  goto: fallback
            - type: pass
              name: ok
              end: true
            - type: pass
              name: fallback
              outputMappings:
                - target: fallback
                  source: true
        """)
    )
    d.start()
    d.complete("call", ["not", "an", "object"])
    d.assert_succeeded({"fallback": True})


# ---------------------------------------------------------------------------------------------
# retry


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        ("intervalSeconds: 10\n  maxIntervalSeconds: 30\n  maxAttempts: 4", [10, 20, 30, 30]),
        ("intervalSeconds: 10", [10, 20, 40]),
        ("intervalSeconds: 2\n  multiplier: 1.5\n  maxAttempts: 3", [2, 3, 4.5]),
        ("intervalSeconds: 5\n  multiplier: 1\n  maxAttempts: 2", [5, 5]),
        ("maxAttempts: 4", [1, 2, 4, 8]),
        ("maxAttempts: 0", []),
    ],
)
def test_retry_back_off_and_attempt_count(policy, delays):
    policy_yaml = textwrap.indent(f"- errors: [Throttled]\n  {policy}", " " * 4)
    d = Driver(
        flow_yaml(f"- type: task\n  name: call\n  resourceArn: {FN}\n  retry:\n{policy_yaml}")
    )
    d.start()
    for attempt, delay in enumerate(delays):
        invoke = d.task("call")
        assert invoke.attempt == attempt
        d.now += 3
        failed_at = d.now
        t = d.fail("call", "Throttled", f"attempt {attempt}")
        assert d.state.status == "Running"
        timer = d.timer("retry")
        assert timer.fire_at == failed_at + delay
        assert [e.type for e in t.events] == ["TaskFailed"]
        assert d.find("StepFailed") == []
        assert d.open_tasks() == []
        d.fire("retry")
    d.now += 3
    d.fail("call", "Throttled", "last")
    assert len(d.invoked) == len(delays) + 1
    assert [i.attempt for i in d.invoked.values()] == list(range(len(delays) + 1))
    assert [e.detail["attempt"] for e in d.find("TaskScheduled")] == list(range(len(delays) + 1))
    assert len(d.find("StepEntered", "call")) == 1
    d.assert_failed("Throttled", "last")


RETRY_ORDER_FLOW = flow_yaml(f"""
    - type: task
      name: call
      resourceArn: {FN}
      retry:
        - errors: [Fatal]
          maxAttempts: 0
        - errors: [Throttled, Busy]
          intervalSeconds: 5
          maxAttempts: 1
        - errors: [FnF.ALL]
          intervalSeconds: 7
          maxAttempts: 1
""")


def test_retry_policy_with_no_attempts_shadows_later_policies():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "Fatal")
    assert d.started == {}
    d.assert_failed("Fatal")


def test_retry_first_matching_policy_decides_even_when_exhausted():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "Throttled")
    assert d.timer("retry").fire_at == T0 + 5
    d.fire("retry")
    # the policy for Busy is the same one, and it has used its single retry; FnF.ALL is not asked
    d.fail("call", "Busy")
    assert len(d.invoked) == 2
    d.assert_failed("Busy")


def test_retry_fnf_all_matches_any_other_error():
    d = Driver(RETRY_ORDER_FLOW)
    d.start()
    d.fail("call", "SomethingElse")
    assert d.timer("retry").fire_at == T0 + 7
    d.fire("retry")
    d.complete("call", {"ok": 1})
    d.assert_succeeded({"ok": 1})


def test_retried_callback_task_gets_a_new_task_id_and_token():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: approve
              resourceArn: {QUEUE}
              pattern: waitForCallback
              timeoutSeconds: 60
              inputMappings:
                - target: taskToken
                  source: $context.task.token
              retry:
                - errors: [FnF.TaskTimeout, Lost]
                  intervalSeconds: 10
                  maxAttempts: 2
        """)
    )
    d.start()
    first = d.task("approve")
    assert first.input == {"taskToken": first.token}
    assert d.timer("timeout").fire_at == T0 + 60

    t = d.fire("timeout")
    assert [(e.type, e.schedule_event_id) for e in t.events] == [("TaskTimedOut", first.task_id)]
    assert t.events[0].detail["error"] == "FnF.TaskTimeout"
    assert CloseTask(first.task_id, "expired", "timed out") in t.effects
    assert d.timer("retry").fire_at == T0 + 70

    d.fire("retry")
    second = d.task("approve")
    assert second.task_id != first.task_id and second.token != first.token
    assert second.token == mint(second.task_id)
    assert second.input == {"taskToken": second.token}
    assert second.attempt == 1
    assert d.timer("timeout").fire_at == T0 + 130
    ignored(d, TaskSucceeded(first.task_id, {"late": True}))
    ignored(d, TaskFailed(first.task_id, "Lost"))

    d.now = T0 + 80
    t = d.fail("approve", "Lost", "message lost")
    second_timeout = [e for e in t.effects if isinstance(e, CancelTimer)]
    assert CloseTask(second.task_id, "completed", "failed") in t.effects
    assert len(second_timeout) == 1
    assert d.timer("retry").fire_at == T0 + 80 + 20
    d.fire("retry")
    third = d.task("approve")
    assert len({first.task_id, second.task_id, third.task_id}) == 3
    assert third.input == {"taskToken": third.token}
    d.complete("approve", {"approved": True})
    d.assert_succeeded({"approved": True})


def test_retry_comes_before_catch():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: charge
              resourceArn: {FN}
              retry:
                - errors: [FnF.ALL]
                  intervalSeconds: 3
                  maxAttempts: 1
              catch:
                - errors: [FnF.ALL]
                  goto: recover
            - type: pass
              name: charged
              end: true
            - type: pass
              name: recover
              outputMappings:
                - target: recovered
                  source: true
        """)
    )
    d.start()
    d.fail("charge", "Declined")
    assert d.find("StepFailed") == [] and "recover" not in d.steps_entered()
    d.fire("retry")
    d.fail("charge", "Declined")
    assert d.steps_entered() == ["charge", "recover"]
    d.assert_succeeded({"recovered": True})


def test_retry_count_starts_again_when_a_loop_reenters_the_step():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: call
              resourceArn: {FN}
              retry:
                - errors: [Flaky]
                  intervalSeconds: 1
                  maxAttempts: 1
            - type: choice
              name: loop
              choices:
                - condition: $.again == true
                  goto: call
        """)
    )
    d.start()
    d.fail("call", "Flaky")
    d.fire("retry")
    d.complete("call", {"again": True})
    d.fail("call", "Flaky")
    assert d.state.status == "Running"
    d.fire("retry")
    d.complete("call", {"again": False})
    d.assert_succeeded({"again": False})


# ---------------------------------------------------------------------------------------------
# catch

CATCH_FLOW = flow_yaml(f"""
    - type: pass
      name: seed
      outputMappings:
        - target: orderId
          source: o-1
    - type: task
      name: charge
      resourceArn: {FN}
      errorMappings:
        - target: failure.code
          source: $local.error
        - target: failure.message
          source: $local.cause
        - target: failure.orderId
          source: $input.orderId
      catch:
        - errors: [CardDeclined]
          goto: notify
        - errors: [FnF.ALL]
          goto: giveUp
    - type: pass
      name: charged
      end: true
    - type: task
      name: notify
      resourceArn: {FN}
      end: true
    - type: pass
      name: giveUp
      outputMappings:
        - target: gaveUp
          source: $input.failure.code
""")


def test_catch_goes_to_a_sibling_with_the_error_mappings_in_the_parent_local():
    d = Driver(CATCH_FLOW)
    d.start()
    task = d.task("charge")
    t = d.fail("charge", "CardDeclined", "card declined")
    assert [(e.type, e.step_name, e.schedule_event_id) for e in t.events[:3]] == [
        ("TaskFailed", "charge", task.task_id),
        ("StepFailed", "charge", d.one("StepEntered", "charge").event_id),
        ("StepExited", "charge", d.one("StepEntered", "charge").event_id),
    ]
    assert t.events[0].detail == {"error": "CardDeclined", "cause": "card declined"}
    failure = {"code": "CardDeclined", "message": "card declined", "orderId": "o-1"}
    assert d.entered("notify") == [{"orderId": "o-1", "failure": failure}]
    assert d.task("notify").input == {"orderId": "o-1", "failure": failure}
    d.complete("notify", {"sent": True})
    assert "charged" not in d.steps_entered()
    d.assert_succeeded({"orderId": "o-1", "failure": failure, "sent": True})


def test_catch_policies_are_matched_in_order():
    d = Driver(CATCH_FLOW)
    d.start()
    d.fail("charge", "Timeout", "slow")
    assert d.steps_entered() == ["seed", "charge", "giveUp"]
    failure = {"code": "Timeout", "message": "slow", "orderId": "o-1"}
    d.assert_succeeded({"orderId": "o-1", "failure": failure, "gaveUp": "Timeout"})


def test_caught_step_without_error_mappings_outputs_nothing():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: call
              resourceArn: {FN}
              catch:
                - errors: [FnF.ALL]
                  goto: after
            - type: pass
              name: after
        """)
    )
    d.start({"in": 1})
    d.fail("call", "E")
    d.assert_succeeded({})


def test_error_without_a_matching_catch_propagates_to_the_execution():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: outer
              branches:
                - steps:
                    - type: task
                      name: call
                      resourceArn: {FN}
                      catch:
                        - errors: [Other]
                          goto: handled
                    - type: pass
                      name: handled
              catch:
                - errors: [AlsoOther]
                  goto: recover
            - type: pass
              name: recover
        """)
    )
    d.start()
    d.fail("call", "Boom", "it broke")
    assert [e.step_name for e in d.find("StepFailed")] == ["call", "outer"]
    assert "handled" not in d.steps_entered() and "recover" not in d.steps_entered()
    d.assert_failed("Boom", "it broke")


# ---------------------------------------------------------------------------------------------
# timeouts and Stop


def test_task_timeout_fails_the_step_with_task_timeout():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: slow
              resourceArn: {FN}
              timeoutSeconds: 30
        """)
    )
    t = d.start()
    task = d.task("slow")
    timer = d.timer("timeout")
    assert timer == StartTimer(timer.timer_id, T0 + 30, "timeout")
    assert sorted(t.effects, key=repr) == sorted([task, timer], key=repr)
    assert task.timeout_seconds == 30
    t = d.fire("timeout")
    assert [(e.type, e.schedule_event_id) for e in t.events[:3]] == [
        ("TaskTimedOut", task.task_id),
        ("StepFailed", d.one("StepEntered", "slow").event_id),
        ("StepExited", d.one("StepEntered", "slow").event_id),
    ]
    assert t.events[0].detail["error"] == "FnF.TaskTimeout"
    assert CloseTask(task.task_id, "expired", "timed out") in t.effects
    d.assert_failed("FnF.TaskTimeout")
    ignored(d, TaskSucceeded(task.task_id, {}))


def test_task_that_finishes_in_time_cancels_its_timeout():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: slow
              resourceArn: {FN}
              timeoutSeconds: 30
        """)
    )
    d.start()
    timer = d.timer("timeout")
    d.now += 29
    t = d.complete("slow", {"ok": True})
    assert CancelTimer(timer.timer_id) in t.effects
    d.assert_succeeded({"ok": True})
    ignored(d, TimerFired(timer.timer_id))


def test_flow_timeout_times_the_execution_out_and_cancels_everything():
    d = Driver(
        flow_yaml(
            f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {FN}
                      timeoutSeconds: 7200
                - steps:
                    - type: wait
                      name: nap
                      duration: 600
                - steps:
                    - type: wait
                      name: longNap
                      duration: 5000
            """,
            head="timeoutSeconds: 3600",
        )
    )
    t = d.start()
    flow_timer = d.timer("flow")
    assert t.effects[0] == StartTimer(flow_timer.timer_id, T0 + 3600, "flow")
    (nap,) = [x for x in d.pending_timers() if x.kind == "wait" and x.fire_at == T0 + 600]
    d.now = T0 + 600
    d.apply(TimerFired(nap.timer_id))
    work = d.task("work")
    task_timeout = d.timer("timeout")
    long_nap = d.timer("wait")
    t = d.fire("flow")
    assert d.now == T0 + 3600
    assert set(t.effects[:-1]) == {
        CloseTask(work.task_id, "expired", "cancelled"),
        CancelTimer(task_timeout.timer_id),
        CancelTimer(long_nap.timer_id),
    }
    assert t.effects[-1].status == "TimedOut"
    assert [e.type for e in t.events] == ["ExecutionTimedOut"]
    state = d.state
    assert state.status == "TimedOut" and state.output is None
    assert state.error.startswith("FnF.") and state.cause
    assert t.events[0].detail == {"error": state.error, "cause": state.cause}
    ignored(d, TaskSucceeded(work.task_id, {}))
    ignored(d, TimerFired(task_timeout.timer_id))


def test_flow_that_finishes_in_time_cancels_its_timer():
    d = Driver(
        flow_yaml(
            f"""
            - type: task
              name: work
              resourceArn: {FN}
            """,
            head="timeoutSeconds: 100",
        )
    )
    d.start()
    flow_timer = d.timer("flow")
    t = d.complete("work", {"a": 1})
    assert CancelTimer(flow_timer.timer_id) in t.effects
    d.assert_succeeded({"a": 1})


def test_stop_ends_the_execution_and_ignores_later_commands():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {QUEUE}
                      pattern: waitForCallback
                      timeoutSeconds: 600
                - steps:
                    - type: wait
                      name: nap
                      duration: 60
        """)
    )
    d.start()
    work, nap, timeout = d.task("work"), d.timer("wait"), d.timer("timeout")
    d.now += 5
    t = d.apply(Stop("Cancelled", "stopped by the operator"))
    assert [(e.type, e.detail) for e in t.events] == [
        ("ExecutionStopped", {"error": "Cancelled", "cause": "stopped by the operator"})
    ]
    closes = [e for e in t.effects if isinstance(e, CloseTask)]
    assert [(c.task_id, c.state) for c in closes] == [(work.task_id, "expired")]
    assert {e for e in t.effects if isinstance(e, CancelTimer)} == {
        CancelTimer(nap.timer_id),
        CancelTimer(timeout.timer_id),
    }
    assert t.effects[-1] == ExecutionEnded("Stopped", None, "Cancelled", "stopped by the operator")
    state = d.state
    assert (state.status, state.error, state.cause) == (
        "Stopped",
        "Cancelled",
        "stopped by the operator",
    )
    for command in (
        TaskSucceeded(work.task_id, {}),
        TaskFailed(work.task_id, "E"),
        TaskSubmitted(work.task_id),
        TimerFired(nap.timer_id),
        TimerFired(timeout.timer_id),
        Stop(),
        Start({}),
    ):
        ignored(d, command)


# ---------------------------------------------------------------------------------------------
# limits


def test_step_input_over_the_data_limit_fails_the_step():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: big
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start({"blob": "x" * 200})
    assert d.one("StepFailed", "big").detail["error"] == "FnF.DataLimitExceeded"
    d.assert_failed("FnF.DataLimitExceeded")


def test_step_output_over_the_data_limit_fails_the_step():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: big
              resourceArn: {FN}
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start({"small": 1})
    d.complete("big", {"blob": "x" * 200})
    assert d.one("StepFailed", "big").detail["error"] == "FnF.DataLimitExceeded"
    d.assert_failed("FnF.DataLimitExceeded")


def test_step_output_under_the_data_limit_passes():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: big
              resourceArn: {FN}
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"blob": "x" * 50})
    d.assert_succeeded({"blob": "x" * 50})


def test_task_local_over_the_data_limit_fails_the_step_even_when_mapped_down():
    # Limits.max_step_data_bytes: "size of a step's input, output or local as JSON"
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: big
              resourceArn: {FN}
              outputMappings:
                - target: id
                  source: $local.id
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"id": 1, "blob": "x" * 200})
    d.assert_failed("FnF.DataLimitExceeded")


def test_data_limit_error_can_be_caught():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: big
              resourceArn: {FN}
              catch:
                - errors: [FnF.DataLimitExceeded]
                  goto: tooBig
            - type: pass
              name: fine
              end: true
            - type: pass
              name: tooBig
              outputMappings:
                - target: tooBig
                  source: true
        """),
        limits=Limits(max_step_data_bytes=100),
    )
    d.start()
    d.complete("big", {"blob": "x" * 200})
    d.assert_succeeded({"tooBig": True})


def test_event_limit_fails_an_endless_loop():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: tick
            - type: choice
              name: again
              choices:
                - condition: true
                  goto: tick
        """),
        limits=Limits(max_events=10),
    )
    d.start()
    assert all(e.event_id <= 10 for e in d.events[:-1])
    assert len(d.events) == 11
    d.assert_failed("FnF.EventLimitExceeded")


def test_event_limit_reached_mid_transition_ends_there():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: work
              resourceArn: {FN}
            - type: task
              name: next
              resourceArn: {FN}
        """),
        limits=Limits(max_events=6),
    )
    d.start()
    d.complete("work", {"n": 1})  # TaskSucceeded 5, StepSucceeded 6, then the limit
    assert [e.type for e in d.last.events] == ["TaskSucceeded", "StepSucceeded", "ExecutionFailed"]
    d.assert_failed("FnF.EventLimitExceeded")
    assert not any(isinstance(e, InvokeTask) for e in d.last.effects)


def test_event_limit_in_a_parallel_closes_the_other_branch():
    d = Driver(
        flow_yaml(f"""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: task
                      name: work
                      resourceArn: {FN}
                - steps:
                    - type: task
                      name: loop
                      resourceArn: {FN}
                    - type: choice
                      name: again
                      choices:
                        - condition: true
                          goto: loop
        """),
        limits=Limits(max_events=20),
    )
    d.start()
    work = d.task("work")
    while d.state.status == "Running":
        d.complete("loop", {})
    expired = [e for e in d.last.effects if isinstance(e, CloseTask) and e.state == "expired"]
    assert [c.task_id for c in expired] == [work.task_id]
    assert d.state.tasks == {}
    d.assert_failed("FnF.EventLimitExceeded")


def test_steps_per_transition_continue_with_a_timer_due_now():
    steps = "\n".join(
        f"- type: pass\n  name: p{i}\n  outputMappings:\n    - target: v{i}\n      source: {i}"
        for i in range(1, 8)
    )
    d = Driver(flow_yaml(steps), limits=Limits(steps_per_transition=3))
    t = d.start()
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p1", "p2", "p3"]
    timer = d.timer("continue")
    assert t.effects == [StartTimer(timer.timer_id, T0, "continue")]
    assert d.state.status == "Running"
    d.now += 0.25
    t = d.apply(TimerFired(timer.timer_id))
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p4", "p5", "p6"]
    assert d.timer("continue").fire_at == T0 + 0.25
    t = d.fire("continue")
    assert [e.step_name for e in t.events if e.type == "StepEntered"] == ["p7"]
    assert d.entered("p7") == [{f"v{i}": i for i in range(1, 7)}]
    d.assert_succeeded({f"v{i}": i for i in range(1, 8)})


def test_steps_per_transition_applies_to_parallel_branches():
    d = Driver(
        flow_yaml("""
            - type: parallel
              name: fan
              branches:
                - steps:
                    - type: pass
                      name: a1
                    - type: pass
                      name: a2
                - steps:
                    - type: pass
                      name: b1
                    - type: pass
                      name: b2
              outputMappings:
                - target: n
                  source: 2
        """),
        limits=Limits(steps_per_transition=2),
    )
    d.start()
    assert d.state.status == "Running"
    for _ in range(5):
        if d.state.status != "Running":
            break
        d.fire("continue")
    assert sorted(d.steps_entered()) == ["a1", "a2", "b1", "b2", "fan"]
    d.assert_succeeded({"n": 2})


# ---------------------------------------------------------------------------------------------
# commands that match nothing


def test_commands_for_unknown_tasks_and_timers_are_ignored():
    d = Driver(
        flow_yaml(f"""
            - type: task
              name: work
              resourceArn: {FN}
            - type: wait
              name: nap
              duration: 10
            - type: pass
              name: done
        """)
    )
    d.start()
    work = d.task("work")
    entered = d.one("StepEntered", "work").event_id
    for command in (
        TaskSucceeded(999, {}),
        TaskFailed(999, "E"),
        TaskSubmitted(999, {"x": 1}),
        TimerFired(999),
        TaskSucceeded(entered, {}),  # an EventId that is not a task
        TaskSucceeded(work.task_id + 1, {}),  # TaskStarted's EventId
    ):
        ignored(d, command)
    d.complete("work", {"a": 1})
    ignored(d, TaskSucceeded(work.task_id, {"again": True}))
    ignored(d, TaskFailed(work.task_id, "Late"))
    nap = d.timer("wait")
    d.fire("wait")
    d.assert_succeeded({"a": 1})
    ignored(d, TimerFired(nap.timer_id))


def test_a_fired_timer_fired_again_is_ignored_while_running():
    d = Driver(
        flow_yaml(f"""
            - type: wait
              name: nap
              duration: 10
            - type: task
              name: work
              resourceArn: {FN}
        """)
    )
    d.start()
    nap = d.timer("wait")
    d.fire("wait")
    assert d.state.status == "Running"
    ignored(d, TimerFired(nap.timer_id))
    assert len(d.find("StepSucceeded", "nap")) == 1


# ---------------------------------------------------------------------------------------------
# flow mappings and context


def test_flow_mappings_and_context_names():
    d = Driver(
        flow_yaml(
            """
            - type: pass
              name: note
              outputMappings:
                - target: flow
                  source: $context.flow.name
                - target: execution
                  source: $context.execution.name
            """,
            head="""
            inputMappings:
              - target: orderId
                source: $input.order.id
              - target: runBy
                source: $context.execution.name
            outputMappings:
              - target: orderId
                source: $input.orderId
              - target: runBy
                source: $input.runBy
              - target: note
                source: $local
            """,
        ),
        flow_name="orders",
        execution_name="run-42",
    )
    d.start({"order": {"id": "o-1"}, "debug": True})
    assert d.one("ExecutionStarted").detail == {"input": {"order": {"id": "o-1"}, "debug": True}}
    assert d.entered("note") == [{"orderId": "o-1", "runBy": "run-42"}]
    d.assert_succeeded(
        {
            "orderId": "o-1",
            "runBy": "run-42",
            "note": {"flow": "orders", "execution": "run-42"},
        }
    )


def test_flow_without_output_mappings_outputs_its_local():
    d = Driver(
        flow_yaml("""
            - type: pass
              name: a
              outputMappings:
                - target: x
                  source: 1
            - type: pass
              name: b
              outputMappings:
                - target: x
                  source: 2
                - target: y
                  source: $input.x
        """)
    )
    d.start({"input": "not in output"})
    d.assert_succeeded({"x": 2, "y": 1})


def test_mappings_do_not_change_the_recorded_input():
    # A dotted target written under an object copied from the input must not reach back into
    # the input: the history has already recorded it, and the flow's input is read again later.
    d = Driver(
        flow_yaml(
            """
            - type: pass
              name: enrich
              outputMappings:
                - target: customer
                  source: $input.customer
                - target: customer.tier
                  source: gold
            """,
            head="""
            outputMappings:
              - target: original
                source: $input.customer
              - target: enriched
                source: $local.customer
            """,
        ),
    )
    d.start({"customer": {"name": "Ann"}})
    assert d.output_of("enrich") == {"customer": {"name": "Ann", "tier": "gold"}}
    assert d.one("ExecutionStarted").detail == {"input": {"customer": {"name": "Ann"}}}
    assert d.entered("enrich") == [{"customer": {"name": "Ann"}}]
    d.assert_succeeded({"original": {"name": "Ann"}, "enriched": {"name": "Ann", "tier": "gold"}})
