"""The interpreter: (execution state, one command, the time) → (history events, effects).

It does no I/O and reads no clock: the runtime passes the time in and carries the effects out,
so the same state and command always give the same result. It mutates the state it is given;
the runtime loads a fresh copy from the store for every command.

Within one command the interpreter runs as far as the flow allows without waiting: a chain of
pass, choice and succeed steps runs in one transition, up to `Limits.steps_per_transition`
steps, after which it sets a timer due at once and continues on the next transition.

The package: `_run.py` keeps the bookkeeping of one transition (events, ids, timers, tasks,
limits), `_machine.py` the step loop every step shares (enter, finish, fail, retry, catch, the
commands), `_redrive.py` how an ended execution goes on (RedriveExecution), and `steps/` one
module per step kind, picked from a table by the step's model class; a plugin's step type runs
with the handler registered with it.
"""

from __future__ import annotations

from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.interpreter._machine import ALL_ERRORS, Machine, error_matches
from relayflow.engine.interpreter._redrive import CannotMove, move_scopes
from relayflow.engine.interpreter._run import TokenMinter
from relayflow.engine.model import Command, ExecutionState, Limits, Transition
from relayflow.fdl import Flow

__all__ = ["ALL_ERRORS", "CannotMove", "Interpreter", "TokenMinter", "error_matches", "move_scopes"]


class Interpreter:
    """Runs the executions of one flow version. Build one per version and reuse it.

    Args:
        flow: the validated flow.
        limits: engine limits.
    """

    def __init__(self, flow: Flow, limits: Limits | None = None) -> None:
        self.index = FlowIndex.build(flow)
        self.flow = flow
        self.limits = limits or Limits()

    def apply(
        self,
        state: ExecutionState,
        command: Command,
        now: float,
        *,
        flow_name: str,
        execution_name: str,
        mint_token: TokenMinter,
    ) -> Transition:
        """Apply ``command`` at time ``now`` (seconds since the epoch) to ``state``.

        ``flow_name`` and ``execution_name`` are what `$context.flow.name` and
        `$context.execution.name` read; ``mint_token`` makes a task attempt's token from its
        task id, for `$context.task.token`.
        """
        run = Machine(
            self.flow, self.index, self.limits, state, now, flow_name, execution_name, mint_token
        )
        run.handle(command)
        return run.out

    def fail(self, state: ExecutionState, now: float, error: str, cause: str) -> Transition:
        """End a running execution as Failed, cancelling whatever it was waiting for."""
        run = Machine(self.flow, self.index, self.limits, state, now, "", "", lambda task_id: "")
        if not state.done:
            run.end("Failed", "ExecutionFailed", error=error, cause=cause)
        return run.out
