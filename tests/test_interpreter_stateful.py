"""The interpreter under random command orders: a hypothesis state machine.

A run picks one of a few hand-written flows, starts it, and then sends commands in whatever
order hypothesis likes: task results (sometimes not objects), task failures, timers firing,
TaskSubmitted, commands for tasks and timers that are gone or never existed, and Stop. After
every command the bookkeeping must agree with the state, and the state must survive the JSON
round trip and give the same transition when the command is applied to a copy.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from relayflow.engine.interpreter import Interpreter
from relayflow.engine.model import (
    CancelTimer,
    CloseTask,
    Command,
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
)
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.fdl import load_flow

T0 = 1_700_000_000.0
FN = "acs:fc:::services/svc/functions/work"
QUEUE = "acs:mns:::/queues/jobs/messages"
END_EVENTS = {
    "Succeeded": "ExecutionSucceeded",
    "Failed": "ExecutionFailed",
    "TimedOut": "ExecutionTimedOut",
    "Stopped": "ExecutionStopped",
}
ERRORS = ["Transient", "Fatal", "Busy", "Other", "FnF.TaskTimeout", "FnF.RuntimeError"]
UNKNOWN_ID = 10**9

PARALLEL = f"""
version: v1
type: flow
timeoutSeconds: 900
steps:
  - type: parallel
    name: fan
    retry:
      - errors: [Transient]
        intervalSeconds: 2
        maxAttempts: 1
    catch:
      - errors: [FnF.ALL]
        goto: recover
    branches:
      - steps:
          - type: task
            name: a
            resourceArn: {FN}
            timeoutSeconds: 30
            retry:
              - errors: [FnF.TaskTimeout]
                intervalSeconds: 5
                maxAttempts: 2
          - type: pass
            name: a2
      - steps:
          - type: wait
            name: w
            duration: 5
          - type: task
            name: b
            resourceArn: {QUEUE}
            pattern: waitForCallback
            inputMappings:
              - target: token
                source: $context.task.token
      - steps:
          - type: choice
            name: c
            choices:
              - condition: $.skip == true
                goto: cEnd
          - type: task
            name: c1
            resourceArn: {FN}
          - type: pass
            name: cEnd
    outputMappings:
      - target: all
        source: $local
  - type: pass
    name: ok
    end: true
  - type: pass
    name: recover
"""

FOREACH = f"""
version: v1
type: flow
steps:
  - type: task
    name: list
    resourceArn: {FN}
    retry:
      - errors: [FnF.InvalidLocal]
        maxAttempts: 1
  - type: foreach
    name: each
    iterationMapping:
      collection: $.items
      item: item
      index: i
    retry:
      - errors: [Transient]
        maxAttempts: 1
    catch:
      - errors: [Fatal, FnF.RuntimeError]
        goto: handle
    steps:
      - type: task
        name: work
        resourceArn: {FN}
        timeoutSeconds: 20
      - type: choice
        name: slow
        choices:
          - condition: $.slow == true
            steps:
              - type: wait
                name: w
                duration: 3
    outputMappings:
      - target: results
        source: $local
  - type: succeed
    name: done
  - type: pass
    name: handle
"""

LOOP = f"""
version: v1
type: flow
steps:
  - type: task
    name: poll
    resourceArn: {FN}
    timeoutSeconds: 50
    retry:
      - errors: [Busy, FnF.TaskTimeout]
        intervalSeconds: 1
        multiplier: 3
        maxAttempts: 2
    catch:
      - errors: [Fatal]
        goto: failed
  - type: choice
    name: check
    choices:
      - condition: $.again == true
        goto: pause
      - condition: $.n > 5
        steps:
          - type: fail
            name: tooMany
            error: TooMany
            cause: n is too big
    default:
      goto: done
  - type: pass
    name: done
    end: true
  - type: wait
    name: pause
    duration: 4
  - type: choice
    name: back
    choices:
      - condition: true
        goto: poll
  - type: fail
    name: failed
    error: GaveUp
"""

CALLBACK = f"""
version: v1
type: flow
timeoutSeconds: 500
steps:
  - type: task
    name: approve
    resourceArn: {QUEUE}
    pattern: waitForCallback
    timeoutSeconds: 60
    inputMappings:
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
    retry:
      - errors: [FnF.TaskTimeout]
        intervalSeconds: 10
        maxAttempts: 2
    catch:
      - errors: [FnF.ALL]
        goto: rejected
  - type: task
    name: notify
    resourceArn: acs:fnf:::flow/notify
    pattern: sync
    end: true
  - type: pass
    name: rejected
"""

NESTED = f"""
version: v1
type: flow
steps:
  - type: pass
    name: seed
    outputMappings:
      - target: items
        source: [1, 2, 3]
  - type: parallel
    name: outer
    catch:
      - errors: [FnF.ALL]
        goto: after
    branches:
      - steps:
          - type: foreach
            name: inner
            iterationMapping:
              collection: $.items
              item: x
            steps:
              - type: pass
                name: p1
              - type: task
                name: t
                resourceArn: {FN}
                retry:
                  - errors: [FnF.ALL]
                    maxAttempts: 1
      - steps:
          - type: choice
            name: ch
            choices:
              - condition: true
                steps:
                  - type: pass
                    name: q1
                  - type: pass
                    name: q2
                  - type: task
                    name: u
                    resourceArn: {FN}
  - type: pass
    name: after
"""

CHAIN = f"""
version: v1
type: flow
steps:
  - type: pass
    name: p1
  - type: pass
    name: p2
  - type: pass
    name: p3
  - type: task
    name: t1
    resourceArn: {FN}
  - type: choice
    name: again
    choices:
      - condition: $.again == true
        goto: p1
"""

FLOWS: dict[str, tuple[str, Limits]] = {
    "parallel": (PARALLEL, Limits()),
    "foreach": (FOREACH, Limits(foreach_concurrency=2)),
    "loop": (LOOP, Limits()),
    "callback": (CALLBACK, Limits()),
    "nested": (NESTED, Limits(steps_per_transition=3)),
    "chain": (CHAIN, Limits(steps_per_transition=2, max_events=45)),
}
INTERPRETERS = {
    name: Interpreter(load_flow(text), limits) for name, (text, limits) in FLOWS.items()
}

FIELDS = {
    "items": st.one_of(st.lists(st.integers(0, 9), max_size=4), st.just("not a list")),
    "again": st.booleans(),
    "skip": st.booleans(),
    "slow": st.booleans(),
    "n": st.integers(0, 8),
}
OBJECTS = st.fixed_dictionaries({}, optional=FIELDS)
NON_OBJECTS = st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=3), st.none())
# hypothesis favours small numbers, so the rare choices below are the largest ones
OUTPUTS = st.integers(0, 9).flatmap(lambda roll: NON_OBJECTS if roll == 9 else OBJECTS)


def mint(task_id: int) -> str:
    return f"token-{task_id}"


class InterpreterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.name = ""
        self.interp: Interpreter | None = None
        self.text = dump_state(ExecutionState())
        self.now = T0
        self.events: list[HistoryEvent] = []
        self.invoked: dict[int, InvokeTask] = {}
        self.closed: set[int] = set()
        self.started: dict[int, StartTimer] = {}
        self.cancelled: set[int] = set()
        self.fired: set[int] = set()
        self.ended: list[ExecutionEnded] = []

    # -- applying commands --------------------------------------------------------------------

    def apply(self, state: ExecutionState, command: Command) -> Any:
        assert self.interp is not None
        return self.interp.apply(
            state,
            command,
            self.now,
            flow_name=self.name,
            execution_name="run",
            mint_token=mint,
        )

    def send(self, command: Command) -> None:
        state = load_state(self.text)
        twin = load_state(self.text)
        was_done = state.done
        pending = set(state.timers)
        transition = self.apply(state, command)

        # the same command on a copy of the state gives the same transition and state
        again = self.apply(twin, command)
        assert again.events == transition.events
        assert again.effects == transition.effects
        text = dump_state(state)
        assert dump_state(twin) == text

        # the state survives the JSON round trip
        assert load_state(text) == state
        assert dump_state(load_state(text)) == text
        self.text = text

        if was_done:
            assert transition.events == [] and transition.effects == []
        if isinstance(command, TimerFired) and command.timer_id in pending:
            self.fired.add(command.timer_id)
        assert all(e.time == self.now for e in transition.events)
        scheduled = {e.event_id: e for e in transition.events if e.type == "TaskScheduled"}
        self.events.extend(transition.events)
        for effect in transition.effects:
            if isinstance(effect, InvokeTask):
                assert effect.task_id in scheduled, "InvokeTask without its TaskScheduled"
                assert scheduled[effect.task_id].step_name == effect.step_name
                assert effect.token == mint(effect.task_id)
                assert effect.task_id not in self.invoked
                self.invoked[effect.task_id] = effect
            elif isinstance(effect, CloseTask):
                assert effect.task_id in self.invoked and effect.task_id not in self.closed
                assert effect.state in {"completed", "expired"}
                self.closed.add(effect.task_id)
            elif isinstance(effect, StartTimer):
                assert effect.timer_id not in self.started
                assert effect.fire_at >= self.now
                self.started[effect.timer_id] = effect
            elif isinstance(effect, CancelTimer):
                timer_id = effect.timer_id
                assert timer_id in self.started
                assert timer_id not in self.cancelled and timer_id not in self.fired
                self.cancelled.add(timer_id)
            elif isinstance(effect, ExecutionEnded):
                assert effect is transition.effects[-1]
                self.ended.append(effect)

    def open_ids(self) -> list[int]:
        return sorted(load_state(self.text).tasks)

    def pending_ids(self) -> list[int]:
        return sorted(load_state(self.text).timers)

    # -- rules --------------------------------------------------------------------------------

    @initialize(name=st.sampled_from(sorted(FLOWS)), data=OBJECTS)
    def start(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.interp = INTERPRETERS[name]
        self.send(Start(data))

    @precondition(lambda self: self.open_ids())
    @rule(
        data=st.data(),
        output=OUTPUTS,
        error=st.sampled_from(ERRORS),
        roll=st.integers(0, 9),
        delay=st.integers(0, 3),
    )
    def finish_task(
        self, data: st.DataObject, output: Any, error: str, roll: int, delay: int
    ) -> None:
        """Report on an open task: success seven times in ten, failure otherwise."""
        task_id = data.draw(st.sampled_from(self.open_ids()))
        self.now += delay
        if roll < 7:
            self.send(TaskSucceeded(task_id, output))
        else:
            self.send(TaskFailed(task_id, error, f"{error} happened"))

    @rule(data=st.data(), roll=st.integers(0, 11))
    def other_command(self, data: st.DataObject, roll: int) -> None:
        """Move on (finish the first task or fire the next timer), a stale command, or Stop."""
        if roll <= 4:
            self.move_on(data)
        elif roll <= 8 or not self.open_ids():
            self.stale_command(data)
        elif roll <= 10:
            self.submit_task(data.draw(st.sampled_from(self.open_ids())), roll)
        else:
            self.send(Stop("Stopped", "stopped by the test"))

    def move_on(self, data: st.DataObject) -> None:
        if self.open_ids():
            self.send(TaskSucceeded(self.open_ids()[0], data.draw(OBJECTS)))
        elif self.pending_ids():
            timer_id = min(self.pending_ids(), key=lambda t: (self.started[t].fire_at, t))
            self.now = max(self.now, self.started[timer_id].fire_at)
            self.send(TimerFired(timer_id))
        else:
            self.stale_command(data)

    def submit_task(self, task_id: int, n: int) -> None:
        before = len(self.events)
        self.send(TaskSubmitted(task_id, {"n": n}))
        new = self.events[before:]
        state = load_state(self.text)
        if state.done:  # the event would have gone past the event limit
            assert [e.type for e in new] == ["ExecutionFailed"]
            assert state.error == "FnF.EventLimitExceeded"
            return
        assert [(e.type, e.schedule_event_id, e.step_name, e.detail) for e in new] == [
            ("TaskSubmitted", task_id, self.invoked[task_id].step_name, {"n": n})
        ]

    def stale_command(self, data: st.DataObject) -> None:
        gone_tasks = [*sorted(self.closed), UNKNOWN_ID]
        not_tasks = [e.event_id for e in self.events if e.type != "TaskScheduled"]
        gone_timers = [*sorted(self.fired | self.cancelled), UNKNOWN_ID]
        task_id = data.draw(st.sampled_from(gone_tasks + not_tasks))
        command = data.draw(
            st.sampled_from(
                [
                    TaskSucceeded(task_id, {"late": True}),
                    TaskFailed(task_id, "Late"),
                    TaskSubmitted(task_id),
                    TimerFired(data.draw(st.sampled_from(gone_timers))),
                ]
            )
        )
        before_text, before_events = self.text, len(self.events)
        self.send(command)
        assert len(self.events) == before_events
        assert self.text == before_text

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def event_ids_have_no_gaps(self) -> None:
        ids = [e.event_id for e in self.events]
        assert ids == list(range(1, len(ids) + 1))
        assert load_state(self.text).next_event == len(ids) + 1

    @invariant()
    def open_tasks_match_the_effects(self) -> None:
        assert set(load_state(self.text).tasks) == set(self.invoked) - self.closed

    @invariant()
    def pending_timers_match_the_effects(self) -> None:
        expected = set(self.started) - self.cancelled - self.fired
        assert set(load_state(self.text).timers) == expected

    @invariant()
    def terminal_state_is_final(self) -> None:
        if not self.events:
            return
        state = load_state(self.text)
        finals = [e for e in self.events if e.type in END_EVENTS.values()]
        if not state.done:
            assert finals == [] and self.ended == []
            return
        assert [e.type for e in finals] == [END_EVENTS[state.status]]
        assert self.events[-1] is finals[0]
        assert self.ended == [ExecutionEnded(state.status, state.output, state.error, state.cause)]
        assert state.tasks == {} and state.timers == {} and state.scopes == {}
        assert state.ready == [] and state.flow_timer is None
        if state.status == "Succeeded":
            assert isinstance(state.output, dict)
        else:
            assert state.output is None and state.error

    @invariant()
    def event_limit_holds(self) -> None:
        if self.interp is None:
            return
        limit = self.interp.limits.max_events
        assert all(e.event_id <= limit for e in self.events if not e.type.startswith("Execution"))


InterpreterMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("RELAYFLOW_HYPOTHESIS_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestInterpreterMachine = InterpreterMachine.TestCase
