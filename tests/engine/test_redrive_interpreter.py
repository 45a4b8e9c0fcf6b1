"""Redrive in the pure interpreter: what an ended execution keeps, and how it goes on.

Driven command by command (`tests.engine.interpreter.driver.Driver`, whose state goes through
JSON between commands), on a fake clock. The ends of the execution are checked per run: each
run ends once, and a redrive opens the next.
"""

from __future__ import annotations

import pytest

from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.interpreter import CannotMove, move_scopes
from relayflow.engine.model import (
    ERROR_EVENT_LIMIT,
    ExecutionEnded,
    ExecutionState,
    InvokeTask,
    Limits,
    Redrive,
    StartTimer,
    Stop,
    TaskFailed,
    TaskSucceeded,
)
from relayflow.engine.snapshot import dump_state, load_state, redrives_in
from relayflow.fdl import load_flow
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, Driver

ENDS = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"}


class Runs(Driver):
    """A `Driver` whose execution may end more than once: once per run between redrives."""

    def check(self, state: ExecutionState) -> None:
        ids = [e.event_id for e in self.events]
        assert ids == list(range(1, len(ids) + 1)), f"EventIds are not 1..n: {ids}"
        assert state.next_event == len(ids) + 1
        kinds = [e.type for e in self.events]
        last = max((i for i, k in enumerate(kinds) if k == "ExecutionRedriven"), default=-1)
        ends = [k for k in kinds[last + 1 :] if k in ENDS]
        if state.done:
            assert len(ends) == 1 and kinds[-1] in ENDS
            assert state.tasks == {} and state.timers == {} and state.scopes == {}
        else:
            assert ends == [] and state.resume is None

    def redrive(self, definition: str = "original") -> list[str]:
        """Redrive; the types of the events it recorded."""
        return [e.type for e in self.apply(Redrive(definition, 1)).events]


FAN = fdl(f"""
- type: pass
  name: seed
- type: parallel
  name: fan
  branches:
    - steps:
        - type: task
          name: left
          resourceArn: {FN}
    - steps:
        - type: task
          name: right
          resourceArn: {FN}
        - type: pass
          name: rightAfter
    - steps:
        - type: task
          name: slow
          resourceArn: {FN}
""")


def test_a_failure_keeps_every_scope_as_it_was_and_a_redrive_goes_on_from_them():
    d = Runs(FAN)
    d.start({"x": 1})
    d.complete("left", {"l": 1})
    d.fail("right", "Boom", "broke")  # `slow` is still running: the failure cancels it
    state = d.state
    assert state.status == "Failed" and state.resume is not None
    kept = {s.key: s for s in state.resume.values()}
    assert set(kept) == {"steps", "steps.1.branches.1.steps", "steps.1.branches.2.steps"}
    assert kept["steps"].run is not None and kept["steps"].run.pending == 2

    recorded = d.redrive()
    assert recorded[0] == "ExecutionRedriven"
    assert [e.step_name for e in d.last.events if e.type == "StepEntered"] == ["right", "slow"]
    invoked = [e for e in d.last.effects if isinstance(e, InvokeTask)]
    assert [(i.step_name, i.attempt) for i in invoked] == [("right", 0), ("slow", 0)]
    d.complete("right", {"r": 2})
    d.complete("slow", {"s": 3})
    assert d.state.status == "Succeeded" and d.state.redrives == 1
    assert len(d.find("StepSucceeded", "fan")) == 1
    assert len(d.find("StepEntered", "left")) == 1  # the branch that had finished stayed so


CAUGHT = fdl(f"""
- type: task
  name: try
  resourceArn: {FN}
  catch:
    - errors: [Expected]
      goto: fallback
- type: pass
  name: never
- type: task
  name: fallback
  resourceArn: {FN}
""")


def test_a_caught_failure_keeps_nothing_and_an_uncaught_one_keeps_the_step_that_failed():
    d = Runs(CAUGHT)
    d.start()
    d.fail("try", "Expected")
    assert d.state.status == "Running" and d.state.resume is None
    d.fail("fallback", "Unexpected")
    resume = d.state.resume
    assert resume is not None
    assert [(s.key, s.pc) for s in resume.values()] == [("steps", 2)]
    d.redrive()
    assert d.task("fallback").attempt == 0


def test_a_stop_keeps_the_waiting_steps_and_a_redrive_starts_a_fresh_flow_timeout():
    d = Runs(FAN.replace("steps:\n", "timeoutSeconds: 30\nsteps:\n", 1))
    d.start()
    d.apply(Stop("Ops", "paused"))
    d.now += 3600  # long after the first deadline
    d.redrive()
    timers = [e for e in d.last.effects if isinstance(e, StartTimer) and e.kind == "flow"]
    assert [t.fire_at for t in timers] == [d.now + 30]
    assert len([e for e in d.last.effects if isinstance(e, InvokeTask)]) == 3
    d.fire("flow")
    assert d.state.status == "TimedOut"
    d.redrive()
    previous = [e.detail["previousStatus"] for e in d.find("ExecutionRedriven")]
    assert previous == ["Stopped", "TimedOut"] and d.state.redrives == 2


def test_a_redrive_of_a_running_or_succeeded_execution_does_nothing():
    d = Runs(fdl(f"- type: task\n  name: t\n  resourceArn: {FN}"))
    d.start()
    assert d.redrive() == []  # Running
    d.complete("t")
    assert d.redrive() == [] and d.state.status == "Succeeded"


def test_the_event_limit_keeps_nothing_to_go_on_from():
    d = Runs(FAN, limits=Limits(max_events=6))
    d.start()
    state = d.state
    assert (state.status, state.error, state.resume) == ("Failed", ERROR_EVENT_LIMIT, {})
    assert d.redrive() == []
    ended = [e for e in d.effects if isinstance(e, ExecutionEnded)]
    assert len(ended) == 1


NESTED = fdl(f"""
- type: foreach
  name: each
  iterationMapping:
    collection: $.items
    item: item
  steps:
    - type: task
      name: ship
      resourceArn: {FN}
- type: choice
  name: route
  choices:
    - condition: $.fast == true
      steps:
        - type: task
          name: courier
          resourceArn: {FN}
      goto: last
  default:
    goto: last
- type: pass
  name: last
""")


def failed_in_foreach() -> Runs:
    d = Runs(NESTED)
    d.start({"items": ["a", "b"], "fast": True})
    [a, b] = d.open_tasks()
    d.apply(TaskSucceeded(a.task_id, {"ok": 1}))
    d.apply(TaskFailed(b.task_id, "Lost", ""))
    assert d.state.status == "Failed"
    return d


def moved(old_text: str, new_text: str, state: ExecutionState) -> ExecutionState:
    assert state.resume is not None
    move_scopes(
        state.resume, FlowIndex.build(load_flow(old_text)), FlowIndex.build(load_flow(new_text))
    )
    return state


def test_scopes_move_by_name_to_their_new_places():
    d = failed_in_foreach()
    shifted = NESTED.replace(
        "    steps:\n      - type: task\n        name: ship",
        "    steps:\n      - type: pass\n        name: label\n      - type: task\n        name: ship",
    ).replace(
        "steps:\n  - type: foreach", "steps:\n  - type: pass\n    name: first\n  - type: foreach"
    )
    state = moved(NESTED, shifted, d.state)
    assert state.resume is not None
    places = sorted((s.key, s.pc) for s in state.resume.values())
    assert places == [("steps", 1), ("steps.1.steps", 1)]
    root = next(s for s in state.resume.values() if s.parent is None)
    assert root.run is not None and root.run.index == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("name: ship", "name: send"),
            "step 'ship' (in the steps of step 'each') is not in the flow's current definition",
        ),
        (
            (
                NESTED[NESTED.index("  - type: foreach") : NESTED.index("  - type: choice")],
                "  - type: pass\n    name: each\n",
            ),
            "step 'each' is a pass step in the flow's current definition, not a foreach step",
        ),
    ],
)
def test_a_scope_without_its_place_is_named(change, message):
    d = failed_in_foreach()
    with pytest.raises(CannotMove) as caught:
        moved(NESTED, NESTED.replace(*change), d.state)
    assert str(caught.value).startswith(message)


def test_a_choice_goes_on_only_where_its_goto_still_leads():
    d = Runs(NESTED)
    d.start({"items": [], "fast": True})
    d.fail("courier", "Busy")
    without = NESTED.replace("goto: last", "goto: elsewhere").replace(
        "name: last", "name: elsewhere"
    )
    with pytest.raises(CannotMove) as caught:
        moved(NESTED, without, d.state)
    assert str(caught.value) == (
        "step 'last', where choice step 'route' goes next, is not in the flow's current definition"
    )
    branches = NESTED.replace("name: courier", "name: bike")
    with pytest.raises(CannotMove) as caught:
        moved(NESTED, branches, d.state)
    assert "(in choice 1 of step 'route')" in str(caught.value)


def test_a_parallel_that_goes_on_keeps_its_number_of_branches():
    d = Runs(FAN)
    d.start()
    d.fail("right", "Boom")
    fewer = FAN.split("      - steps:\n          - type: task\n            name: slow")[0]
    with pytest.raises(CannotMove) as caught:
        moved(FAN, fewer, d.state)
    assert str(caught.value) == (
        "parallel step 'fan' has 2 branches in the flow's current definition, not 3 as when "
        "the execution ran"
    )


def test_older_states_load_and_the_count_reads_from_the_texts_start():
    old = '{"status":"Failed","input":{"redrives":5},"error":"E","cause":"","next_event":4}'
    state = load_state(old)
    assert (state.redrives, state.resume) == (0, None)
    assert redrives_in(old) == 0
    state.redrives = 12
    text = dump_state(state)
    assert text.startswith('{"redrives":12,') and redrives_in(text) == 12
    assert redrives_in(text.encode()) == 12
    assert redrives_in("") == 0 and redrives_in('{"redrives":"x"}') == 0
