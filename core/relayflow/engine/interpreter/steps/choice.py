"""Choice steps: the first branch whose condition holds (or the default) runs, then a goto."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.model import Scope
from relayflow.fdl import ChoiceStep

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["CHOICE"]


def begin(m: Machine, scope: Scope, step: ChoiceStep, token: str | None) -> None:
    """Pick the branch; run its steps as a child list, or finish at once when it has none."""
    run = scope.run
    assert run is not None
    ctx = m.context()
    sub: tuple[str | int, ...]
    for c, branch in enumerate(step.choices):
        if branch.condition.evaluate(run.input, ctx):
            steps, goto, sub = branch.steps, branch.goto, ("choices", c, "steps")
            break
    else:
        default = step.default
        steps = default.steps if default else None
        goto = default.goto if default else None
        sub = ("default", "steps")
    run.goto = goto  # where `finish_step` goes once the branch is done
    if steps:
        key = FlowIndex.child_key(scope.key, run.index, *sub)
        run.children = [m.child(scope, 0, key, dict(run.input))]
        run.results = [None]
        run.pending = 1
    else:
        m.finish_step(scope, {})


def branch_done(m: Machine, parent: Scope, child: Scope) -> None:
    """The branch's steps ended: the choice succeeds with their `$local`."""
    m.finish_step(parent, child.local)


CHOICE = StepKind(begin, branch_done)
