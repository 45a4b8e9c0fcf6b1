"""Applying commands to stored executions, inside the writer's transaction.

`Applier.apply` loads the flow version an execution runs (kept in a bounded cache), runs the
interpreter on the execution's state and records the transition: its history events, its
effects (outbox rows, timers) and the new state, all in the caller's transaction. What must
happen after the commit is noted in the transaction's `TxContext`.

An execution whose definition or state cannot be read is failed, visibly, instead of wedging
it or every batch that touches it. When a child execution ends, its parent's task is finished
in the same transaction (`relayflow.engine.childflows.report_to_parent`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from relayflow import jsontext
from relayflow.engine.batches import RefusedAfterChange, TxContext
from relayflow.engine.childflows import report_to_parent
from relayflow.engine.correlation import note_effects
from relayflow.engine.family import stop_children
from relayflow.engine.interpreter import Interpreter
from relayflow.engine.model import (
    CancelTimer,
    Command,
    ExecutionEnded,
    ExecutionState,
    InvokeTask,
    StartTimer,
    Transition,
)
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.engine.tokens import mint_token
from relayflow.errors import ERROR_RUNTIME, EngineError, first_line
from relayflow.fdl import DefinitionError, Flow, load_flow
from relayflow.limits import DefinitionLimits, Limits
from relayflow.store import ExecutionRow, OutboxRow, StoreConflict, TimerRow, Transaction

__all__ = ["FLOW_CACHE_ENTRIES", "FLOW_CACHE_TEXT_BYTES", "Applier", "failed_as_unreadable"]

log = logging.getLogger("relayflow.engine")

# What an outbox row keeps of a task attempt: what `TaskRequest` takes. The correlation key
# is the engine's own (`relayflow.engine.correlation`), noted as the attempt opens.
_PAYLOAD_FIELDS = tuple(f for f in InvokeTask.__slots__ if f != "correlation_key")
FLOW_CACHE_ENTRIES = 256
FLOW_CACHE_TEXT_BYTES = 8 << 20  # some 120 MB of loaded flows
# What ends an execution whose own flow or state cannot be loaded: ending needs no steps.
_BARE_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: end\n"


def failed_as_unreadable(row: ExecutionRow) -> RefusedAfterChange:
    """The answer to a request on an execution that was just failed because it cannot be read."""
    return RefusedAfterChange.of(
        "ExecutionNotRunning",
        f"execution '{row.name}' could not be read and has been failed; it takes no more "
        "reports or commands",
    )


class Applier:
    """Applies commands to executions and records what follows, in the caller's transaction.

    Args:
        limits: engine limits, which the interpreter enforces.
        definition_limits: the budgets a definition is read within (raised for stored ones).
        clock: the time source (seconds since the epoch).
        owner: this engine's lease owner, for the outbox rows it writes.
        lease_seconds: how long a new outbox row stays with this engine.
        observed: whether plugins see committed events (else they are not collected).
    """

    def __init__(
        self,
        *,
        limits: Limits,
        definition_limits: DefinitionLimits,
        clock: Callable[[], float],
        owner: str,
        lease_seconds: float,
        observed: bool,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.observed = observed
        #: The HMAC secret for task tokens; the runtime sets it when it starts.
        self.secret = b""
        #: Whether new outbox rows stay leased to this engine (which dispatches them at once).
        #: False once it shuts down: its new rows are then free for other engines at once.
        self.keeps_new_work = True
        # A stored definition passed the size budget when it was made: lowering it later must
        # not stop its executions.
        self._stored_limits = replace(definition_limits, max_bytes=1 << 30)
        # Loaded flows by (flow id, version), least recently used first, with their text's size:
        # a loaded flow takes about 15 times its text, so the cache is bounded by both.
        self._flows: OrderedDict[tuple[str, int], tuple[Flow, Interpreter, int]] = OrderedDict()
        self._flow_bytes = 0
        # Flows loaded since the last commit: read inside a transaction that may yet be rolled
        # back, where a version another engine then commits differently could have been seen.
        self._uncommitted: list[tuple[str, int]] = []

    def committed(self) -> None:
        """The writer's transaction committed: what it loaded is the stored truth."""
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        """The writer's transaction was rolled back: forget the flows it loaded."""
        for key in self._uncommitted:
            cached = self._flows.pop(key, None)
            if cached is not None:
                self._flow_bytes -= cached[2]
        self._uncommitted.clear()

    def flow_for(
        self, tx: Transaction, flow_name: str, flow_id: str, version: int
    ) -> tuple[Flow, Interpreter]:
        """The flow version an execution runs, loaded once and kept.

        Keyed by the flow's id too: a flow deleted and made again starts at version 1 anew.
        """
        key = (flow_id, version)
        cached = self._flows.get(key)
        if cached is not None:
            self._flows.move_to_end(key)
            return cached[0], cached[1]
        text = tx.flow_definition(flow_name, version)
        if text is None:
            raise EngineError.of("FlowNotExists", f"flow '{flow_name}' version {version} is gone")
        flow = load_flow(text, f"{flow_name} v{version}", limits=self._stored_limits)
        interp = Interpreter(flow, self.limits)
        self._flows[key] = (flow, interp, len(text))
        self._flow_bytes += len(text)
        self._uncommitted.append(key)
        while len(self._flows) > 1 and (
            len(self._flows) > FLOW_CACHE_ENTRIES or self._flow_bytes > FLOW_CACHE_TEXT_BYTES
        ):
            self._flow_bytes -= self._flows.popitem(last=False)[1][2]
        return flow, interp

    def apply(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        command: Command,
        state: ExecutionState | None = None,
    ) -> Transition:
        """Apply ``command`` to an execution inside ``tx``, recording its events and effects.

        ``state`` is the row's state when the caller has already read it, so it is not parsed
        twice; the interpreter changes it in place.
        """
        now = self.clock()
        try:
            _, interp = self.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)
        except (DefinitionError, EngineError) as exc:
            self.fail_execution(
                tx,
                ctx,
                row,
                f"relayflow could not load the definition this execution runs "
                f"(version {row.flow_version}): {first_line(exc)}",
            )
            raise failed_as_unreadable(row) from None
        if state is None:
            state = self.read_state(tx, ctx, row)
            if state is None:
                raise failed_as_unreadable(row)
        secret = self.secret

        def mint(task_id: int) -> str:
            return mint_token(secret, row.flow_name, row.name, row.uid, task_id)

        try:
            transition = interp.apply(
                state,
                command,
                now,
                flow_name=row.flow_name,
                execution_name=row.name,
                mint_token=mint,
            )
        except Exception as exc:  # a bug must not wedge the execution: fail it, visibly
            log.exception(
                "interpreter failed on %s/%s",
                row.flow_name,
                row.name,
                extra={"flow": row.flow_name, "execution": row.name},
            )
            state = load_state(row.state)
            transition = interp.fail(
                state, now, ERROR_RUNTIME, f"relayflow internal error: {type(exc).__name__}: {exc}"
            )
        self._record(tx, ctx, row, state, transition, now)
        return transition

    def read_state(
        self, tx: Transaction, ctx: TxContext, row: ExecutionRow
    ) -> ExecutionState | None:
        """The execution's state; None if it cannot be read, after failing the execution.

        An unreadable state (damaged, or written by a bug) must not wedge the execution nor
        fail every batch that touches it: the text is kept in the store's quarantine for
        inspection and the execution ends as Failed with a cause that says so.
        """
        try:
            return load_state(row.state)
        except (ValueError, RecursionError) as exc:
            reason = f"{type(exc).__name__}: {first_line(exc)}"
        log.error(
            "execution %s/%s: its state cannot be read (%s)",
            row.flow_name,
            row.name,
            reason,
            extra={"flow": row.flow_name, "execution": row.name},
        )
        tx.quarantine("state", row.id, row.state, reason)
        self.fail_execution(
            tx,
            ctx,
            row,
            "relayflow could not read this execution's stored state and set it aside "
            f"for inspection ({reason})",
        )
        return None

    def fail_execution(
        self, tx: Transaction, ctx: TxContext, row: ExecutionRow, cause: str
    ) -> None:
        """End a running execution as Failed with ``cause``, whether or not its state reads."""
        if row.status != "Running":
            return
        now = self.clock()
        try:
            state = load_state(row.state)
            _, interp = self.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)
        except (ValueError, RecursionError, EngineError):  # DefinitionError is a ValueError
            # Nothing of the old state can be trusted: drop its work and record the end.
            tx.drop_work(row.id)
            state = ExecutionState(next_event=tx.last_event_id(row.id) + 1)
            interp = Interpreter(load_flow(_BARE_FLOW, "bare"), self.limits)
        transition = interp.fail(state, now, ERROR_RUNTIME, cause)
        self._record(tx, ctx, row, state, transition, now)

    def apply_alone(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        command: Command,
        *,
        savepoint: bool = True,
    ) -> None:
        """`apply` for internal jobs: whatever goes wrong stays with this execution.

        Refusals are dropped (the execution has ended, or was failed as unreadable, which
        commits); anything else is undone and fails the execution, visibly. Without
        ``savepoint`` (for a job alone in its batch's transaction, which the batch isolates
        by running again) anything else propagates, and no savepoint is paid for.
        """
        if not savepoint:
            with contextlib.suppress(RefusedAfterChange):
                self.apply(tx, ctx, row, command)
            return
        mark = ctx.mark()
        try:
            # What a RefusedAfterChange wrote (failing the execution) stays.
            with tx.savepoint(), contextlib.suppress(RefusedAfterChange):
                self.apply(tx, ctx, row, command)
        except EngineError:
            ctx.undo(mark)
        except StoreConflict:
            raise  # the whole transaction is aborted: the writer runs it again
        except Exception as exc:
            ctx.undo(mark)
            log.exception(
                "applying %s to %s/%s failed",
                type(command).__name__,
                row.flow_name,
                row.name,
                extra={"flow": row.flow_name, "execution": row.name},
            )
            self.fail_execution(
                tx, ctx, row, f"relayflow internal error: {type(exc).__name__}: {first_line(exc)}"
            )

    def _record(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        state: ExecutionState,
        transition: Transition,
        now: float,
    ) -> None:
        """Write a transition's events, effects and the new state of ``row``."""
        if transition.events:
            tx.append_events(row.id, transition.events)
            if self.observed:
                ctx.committed.append((row.flow_name, row.name, transition.events))
        for effect in transition.effects:
            if isinstance(effect, InvokeTask):
                # The outbox row holds the integration's whole request, so that a restarted
                # engine can dispatch it with nothing but the row.
                payload = {f: getattr(effect, f) for f in _PAYLOAD_FIELDS}
                payload["flow_name"], payload["execution_name"] = row.flow_name, row.name
                until = now + self.lease_seconds if self.keeps_new_work else now
                outbox_id = tx.add_outbox(row.id, payload, self.owner, until, now=now)
                ctx.outbox.append(OutboxRow(outbox_id, row.id, payload))
            elif isinstance(effect, StartTimer):
                tx.add_timer(TimerRow(row.id, effect.timer_id, effect.fire_at, effect.kind))
                ctx.timer_at(effect.fire_at)
            elif isinstance(effect, CancelTimer):
                tx.delete_timer(row.id, effect.timer_id)
            elif isinstance(effect, ExecutionEnded):
                ctx.ended.add((row.flow_name, row.name))
        tx.update_execution(
            row.id,
            status=state.status,
            state=dump_state(state),
            output=jsontext.dumps(state.output) if state.output is not None else None,
            error=state.error,
            cause=state.cause,
            stopped=now if state.done else None,
        )
        note_effects(tx, ctx, row, transition, applier=self, state=state)
        if any(isinstance(e, ExecutionEnded) for e in transition.effects):
            if row.callback_token:
                report_to_parent(self, tx, ctx, row, state)
            stop_children(self, tx, ctx, row, state)
