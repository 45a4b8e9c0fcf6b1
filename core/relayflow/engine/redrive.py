"""RedriveExecution: a Failed, TimedOut or Stopped execution goes on from where it ended.

The steps that succeeded are not run again; the step that failed (inside parallels, foreaches
and choices too), and every step a failure or a stop cancelled, is entered again with a fresh
attempt count. The history grows with an `ExecutionRedriven` event; nothing in it is rewritten.
By default the execution keeps the definition it ran; ``use_current_definition`` moves it to
the flow's current one when every step it was at is still there, by name, in the same place.

A redrive is a command like any other: it goes through the committer keyed by the execution,
so a redrive racing a stop or another redrive is serialised, and it is durable before it is
answered. What the interpreter does with it is in `relayflow.engine.interpreter._redrive`.

The operations are a part of `Engine` (it inherits `RedriveOperations`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from relayflow.engine.family import with_family
from relayflow.engine.interpreter import CannotMove, move_scopes
from relayflow.engine.model import ERROR_EVENT_LIMIT, ExecutionState, Redrive
from relayflow.engine.snapshot import load_state
from relayflow.engine.versions import Target, execution_info
from relayflow.errors import EngineError, first_line, not_exists
from relayflow.fdl import DefinitionError

if TYPE_CHECKING:
    from relayflow.engine.applier import Applier
    from relayflow.engine.batches import TxContext
    from relayflow.engine.interpreter import Interpreter
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["MAX_REDRIVES", "REDRIVABLE_STATUSES", "RedriveOperations", "redrive_in"]

#: How many times one execution may be redriven.
MAX_REDRIVES: Final = 1000
#: The statuses an execution can be redriven from.
REDRIVABLE_STATUSES: Final = ("Failed", "TimedOut", "Stopped")


def _refuse(message: str) -> EngineError:
    return EngineError.of("ExecutionNotRedrivable", message)


class RedriveOperations:
    """RedriveExecution, as an `Engine` method."""

    _runtime: Runtime

    async def redrive_execution(
        self, flow_name: str, name: str, *, use_current_definition: bool = False
    ) -> ExecutionInfo:
        """Make an execution that ended without success go on from the step that failed.

        Args:
            flow_name: the flow.
            name: the execution, Failed, TimedOut or Stopped.
            use_current_definition: go on with the flow's current definition instead of the
                one the execution ran (every step it was at must still be there).

        Returns:
            The execution as DescribeExecution shows it, Running again (or already ended, when
            it ended again within the redrive's own transition).

        Raises:
            EngineError: `ExecutionNotExists`; `ExecutionNotRedrivable`, with one sentence
                saying why (its status, an Express execution, `MAX_REDRIVES`, a missing step).
        """
        applier = self._runtime.applier

        def redrive(tx: Transaction, ctx: TxContext) -> ExecutionInfo:
            row = redrive_in(applier, tx, ctx, flow_name, name, use_current_definition)
            return with_family(tx, row, execution_info(tx, row))  # as DescribeExecution shows it

        return await self._runtime.committer.submit(redrive, key=(flow_name, name))


def redrive_in(
    applier: Applier,
    tx: Transaction,
    ctx: TxContext,
    flow_name: str,
    name: str,
    use_current_definition: bool = False,
) -> ExecutionRow:
    """Redrive one execution inside the writer's transaction (a job keyed by the execution).

    For callers that act on many executions in one job, each in its own savepoint.

    Returns:
        The execution's row after the redrive.

    Raises:
        EngineError: as `RedriveOperations.redrive_execution`; nothing was written then.
    """
    row = tx.get_execution(flow_name, name, lock=True)
    if row is None:
        raise not_exists("ExecutionNotExists", "Execution", name, flow_name)
    if row.status not in REDRIVABLE_STATUSES:
        raise _refuse(
            f"Execution '{name}' is {row.status}; only a Failed, TimedOut or Stopped execution "
            "can be redriven"
        )
    flow = tx.get_flow(flow_name)
    if flow is None:  # deleting a flow deletes its executions; a half-made store, say
        raise not_exists("FlowNotExists", "Flow", flow_name)
    if flow.execution_mode == "Express":
        raise _refuse(
            f"Execution '{name}' is an Express execution, which keeps no state to go on from; "
            "start it again with StartSyncExecution"
        )
    state = _readable_state(row, applier.limits.max_events)
    old = _interpreter(applier, tx, row, row.flow_version)
    assert state.resume is not None  # checked by _readable_state
    definition = "original"
    if use_current_definition:
        definition = "current"
        new = _interpreter(applier, tx, row, flow.version)
        if flow.version != row.flow_version:
            try:
                move_scopes(state.resume, old.index, new.index)
            except CannotMove as exc:
                raise _refuse(
                    f"Execution '{name}' cannot go on with the current definition: {exc}"
                ) from None
        state.environment = Target(0, flow.version, flow.environment).variables()
        if (row.flow_version, row.published_version) != (flow.version, 0):
            tx.set_execution_version(row.id, flow.version, 0)
            row = dataclasses.replace(row, flow_version=flow.version, published_version=0)
    applier.apply(tx, ctx, row, Redrive(definition, row.flow_version), state)
    final = tx.lock_execution(row.id)
    assert final is not None
    return final


def _readable_state(row: ExecutionRow, max_events: int) -> ExecutionState:
    """The ended execution's state, when a redrive can go on from it."""
    name = row.name
    try:
        state = load_state(row.state)
    except (ValueError, RecursionError):
        raise _refuse(
            f"Execution '{name}' cannot be redriven: its stored state cannot be read"
        ) from None
    if state.redrives >= MAX_REDRIVES:
        raise _refuse(
            f"Execution '{name}' has been redriven {state.redrives} times, the most an "
            f"execution can be ({MAX_REDRIVES}); start it again instead"
        )
    if state.error == ERROR_EVENT_LIMIT:
        raise _refuse(
            f"Execution '{name}' cannot be redriven: it failed when its history reached the "
            "engine's limit of events (engine.max_events); split the work into child flows "
            "and start it again"
        )
    if state.next_event > max_events:
        raise _refuse(
            f"Execution '{name}' cannot be redriven: its history holds {state.next_event - 1} "
            f"events, more than the engine's limit of {max_events} (engine.max_events)"
        )
    if state.resume is None:
        raise _refuse(
            f"Execution '{name}' ended before relayflow kept what a redrive needs (an older "
            "relayflow ended it); start it again instead"
        )
    if not state.resume:
        raise _refuse(
            f"Execution '{name}' cannot be redriven: it ended because relayflow could not "
            "read its state or its definition, so nothing is left to go on from"
        )
    return state


def _interpreter(applier: Applier, tx: Transaction, row: ExecutionRow, version: int) -> Interpreter:
    """The interpreter of ``version`` of the execution's flow, or a refusal saying why not."""
    try:
        return applier.flow_for(tx, row.flow_name, row.flow_id, version)[1]
    except (DefinitionError, EngineError) as exc:
        raise _refuse(
            f"Execution '{row.name}' cannot be redriven: version {version} of its flow's "
            f"definition cannot be loaded ({first_line(exc)})"
        ) from None
