"""Parallel steps: every branch runs as a child list; the step ends when all have ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.model import Scope
from relayflow.fdl import ParallelStep

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["PARALLEL"]


def begin(m: Machine, scope: Scope, step: ParallelStep, token: str | None) -> None:
    """Open one child list per branch, each with a copy of the step's input."""
    run = scope.run
    assert run is not None
    run.children = []
    run.results = [None] * len(step.branches)
    run.pending = len(step.branches)
    for b in range(len(step.branches)):
        key = FlowIndex.child_key(scope.key, run.index, "branches", b, "steps")
        m.emit("BranchEntered", step.name, {"index": b}, run.entered)
        run.children.append(m.child(scope, b, key, dict(run.input)))


def branch_done(m: Machine, parent: Scope, child: Scope) -> None:
    """A branch ended; the last one ends the step with every branch's `$local`."""
    run = parent.run
    assert run is not None
    m.emit("BranchExited", m.step_of(parent).name, {"index": child.slot}, run.entered)
    if run.pending == 0:
        m.finish_step(parent, list(run.results))


PARALLEL = StepKind(begin, branch_done)
