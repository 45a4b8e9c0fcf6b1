"""Foreach steps: one child list per item of a collection, at most `foreach_concurrency` at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relayflow.dataflow import iteration_input
from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.interpreter._run import StepFault
from relayflow.engine.model import ERROR_RUNTIME, Scope
from relayflow.fdl import ForeachStep

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["FOREACH"]


def begin(m: Machine, scope: Scope, step: ForeachStep, token: str | None) -> None:
    """Read the collection and launch the first iterations (an empty one succeeds at once)."""
    run = scope.run
    assert run is not None
    items = step.iteration_mapping.collection.evaluate({"input": run.input})
    if not isinstance(items, list):
        raise StepFault(
            ERROR_RUNTIME,
            f"foreach step '{step.name}': collection "
            f"{step.iteration_mapping.collection.raw} is "
            f"{type(items).__name__ if items is not None else 'missing'}, not a list",
        )
    run.items = items
    run.results = [None] * len(items)
    run.children = [None] * len(items)
    run.next_item = 0
    run.pending = 0
    if not items:
        m.finish_step(scope, [])
        return
    launch(m, scope, step)


def launch(m: Machine, scope: Scope, step: ForeachStep) -> None:
    """Start iterations until `foreach_concurrency` run or the items are used up."""
    run = scope.run
    assert run is not None and run.items is not None
    mapping = step.iteration_mapping
    key = FlowIndex.child_key(scope.key, run.index, "steps")
    while run.pending < m.limits.foreach_concurrency and run.next_item < len(run.items):
        i = run.next_item
        run.next_item += 1
        run.pending += 1
        m.emit("IterationEntered", step.name, {"index": i}, run.entered)
        data = iteration_input(run.input, mapping.item, run.items[i], mapping.index, i)
        run.children[i] = m.child(scope, i, key, data)


def iteration_done(m: Machine, parent: Scope, child: Scope) -> None:
    """An iteration ended: start the next one; the last one ends the step with all results."""
    run = parent.run
    assert run is not None
    step = m.step_of(parent)
    assert isinstance(step, ForeachStep)
    m.emit("IterationExited", step.name, {"index": child.slot}, run.entered)
    launch(m, parent, step)
    if run.pending == 0:
        m.finish_step(parent, list(run.results))


FOREACH = StepKind(begin, iteration_done)
