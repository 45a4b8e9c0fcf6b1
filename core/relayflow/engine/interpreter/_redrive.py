"""Redrive: an ended execution goes on from the scopes it kept when its end began.

A Failed, TimedOut or Stopped execution keeps its scopes as they were before its end unwound
them (`ExecutionState.resume`). A redrive puts them back: a step that holds child lists still
running (a parallel, a foreach, a choice) keeps what its finished children gave, and every
other step the execution was at (the one that failed, and those a failure or a stop cancelled)
is entered again with a fresh attempt count. Steps that had succeeded are not run again.

`move_scopes` maps kept scopes onto another definition of the flow by step names, for a
redrive onto the flow's current definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.engine.flowindex import ROOT, FlowIndex
from relayflow.engine.interpreter.steps import kind_of
from relayflow.engine.model import Redrive, Scope, StepRun
from relayflow.errors import RelayflowError
from relayflow.fdl import ParallelStep

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["CannotMove", "move_scopes", "redrive"]


class CannotMove(RelayflowError):
    """A kept scope has no place in the other definition; the message says which step."""


def redrive(m: Machine, command: Redrive) -> None:
    """Make the ended execution run again from its kept scopes (the runtime checked it can)."""
    state = m.state
    scopes = state.resume
    assert scopes, "the runtime redrives only an execution that kept its scopes"
    detail = {
        "redriveCount": state.redrives + 1,
        "previousStatus": state.status,
        "previousError": state.error,
        "definition": command.definition,
        "revision": command.version,
    }
    m.emit("ExecutionRedriven", detail=detail)
    state.redrives += 1
    state.status = "Running"
    state.output = None
    state.error = state.cause = ""
    state.resume = None
    state.scopes = scopes
    if m.flow.timeout_seconds:  # a fresh, full flow timeout from the redrive on
        state.flow_timer = m.start_timer("flow", 0, m.now + m.flow.timeout_seconds)
    for scope_id in sorted(scopes):  # parents before children: ids grow downwards
        scope = scopes[scope_id]
        run = scope.run
        if run is not None and _holds_running_lists(m, scope, run):
            # Its finished children's results stay; the running ones are resumed in turn.
            run.task = run.timer = run.timeout_timer = None
            run.attempt = 0
            run.retries = {}
            continue
        scope.run = None  # entered again: fresh input mapping, attempts and retries
        m.work.append(scope_id)


def _holds_running_lists(m: Machine, scope: Scope, run: StepRun) -> bool:
    """Whether the scope's step is waiting for child lists that were kept."""
    kind = kind_of(m.step_of(scope))
    if kind is None or kind.child_done is None:
        return False
    return any(c is not None and c in m.state.scopes for c in run.children)


def move_scopes(scopes: dict[int, Scope], old: FlowIndex, new: FlowIndex) -> dict[int, Scope]:
    """The kept ``scopes`` (of definition ``old``) placed in definition ``new`` by step names.

    Each scope's current step, and each step holding a list on the way to it, must exist in
    ``new`` under the same name in the same place (the same branch of a parallel, the same
    choice, the foreach's steps); a step holding running lists must keep its type, and a
    parallel its number of branches. The scopes are changed in place and returned.

    Raises:
        CannotMove: a step is missing or changed; the message names it.
    """
    placed: dict[int, tuple[str, int]] = {}  # scope id → (its key in `new`, its pc in `new`)
    for scope_id in sorted(scopes):
        scope = scopes[scope_id]
        step = old.lists[scope.key][scope.pc]
        if scope.parent is None:
            new_key, where = ROOT, ""
        else:
            parent = scopes.get(scope.parent)
            if parent is None or parent.run is None or scope.parent not in placed:
                raise CannotMove(f"step '{step.name}' is in a list whose parent was not kept")
            prefix = f"{parent.key}.{parent.run.index}."
            sub = scope.key[len(prefix) :]
            parent_key, parent_pc = placed[scope.parent]
            new_key = FlowIndex.child_key(parent_key, parent_pc, sub)
            holder = old.lists[parent.key][parent.pc].name
            where = f" ({_place(sub)} of step '{holder}')"
        pc = new.positions.get(new_key, {}).get(step.name)
        if pc is None:
            raise CannotMove(f"step '{step.name}'{where} is not in the flow's current definition")
        _check_holder(scope, step.name, old.lists[scope.key][scope.pc], new.lists[new_key][pc])
        goto = scope.run.goto if scope.run is not None else None
        if goto is not None and goto not in new.positions[new_key]:
            raise CannotMove(
                f"step '{goto}', where choice step '{step.name}' goes next, is not in the "
                "flow's current definition"
            )
        placed[scope_id] = (new_key, pc)
    for scope_id, (new_key, pc) in placed.items():
        scope = scopes[scope_id]
        scope.key, scope.pc = new_key, pc
        if scope.run is not None:
            scope.run.index = pc
    return scopes


def _place(sub: str) -> str:
    """Which list of a step ``sub`` names, as a person says it: `in branch 2`."""
    parts = sub.split(".")
    if parts[0] == "branches":
        return f"in branch {int(parts[1]) + 1}"
    if parts[0] == "choices":
        return f"in choice {int(parts[1]) + 1}"
    if parts[0] == "default":
        return "in the default branch"
    return "in the steps"


def _check_holder(scope: Scope, name: str, before: object, after: object) -> None:
    """A step that holds kept child lists must stay what it was, branches and all."""
    run = scope.run
    if run is None or not any(c is not None for c in run.children):
        return
    if type(before) is not type(after):
        raise CannotMove(
            f"step '{name}' is a {getattr(after, 'type', '?')} step in the flow's current "
            f"definition, not a {getattr(before, 'type', '?')} step as when the execution ran"
        )
    if isinstance(after, ParallelStep) and len(after.branches) != len(run.results):
        raise CannotMove(
            f"parallel step '{name}' has {len(after.branches)} branches in the flow's current "
            f"definition, not {len(run.results)} as when the execution ran"
        )
