"""The dispatcher: outbox rows to integrations, and their outcomes back to the writer.

Each committed outbox row (a task attempt) becomes one asyncio task: the plugins may change the
request, the first integration that claims its resource invokes it, and the outcome is queued
as an internal job that deletes the row and applies the matching command. A row stays in the
outbox until its outcome commits, so a crash in between only means it is dispatched again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from relayflow import jsontext
from relayflow.engine.applier import Applier
from relayflow.engine.batches import TxContext
from relayflow.engine.committer import Committer
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.integration import Failed, Integration, Submitted, TaskOutcome, TaskRequest
from relayflow.engine.outcomes import outcome_command
from relayflow.errors import ERROR_RUNTIME
from relayflow.store import OutboxRow, Transaction

__all__ = ["Dispatcher", "execution_key", "invoke_integration"]

log = logging.getLogger("relayflow.engine")


def execution_key(row: OutboxRow) -> tuple[str, str] | None:
    """The execution an outbox row belongs to, ``(flow, name)``, if its payload says."""
    flow, name = row.payload.get("flow_name"), row.payload.get("execution_name")
    return (flow, name) if isinstance(flow, str) and isinstance(name, str) else None


async def invoke_integration(integration: Integration | None, request: TaskRequest) -> TaskOutcome:
    """Ask ``integration`` to carry out ``request``; what went wrong becomes a failed task.

    No integration for the resource, a pattern it does not support, or an exception from the
    integration each fail the task with `ERROR_RUNTIME` and a sentence, so that a broken plugin
    costs its own task and never the dispatcher. Used by the dispatcher and by Express runs.
    """
    if integration is None:
        return Failed(
            ERROR_RUNTIME,
            f"no installed integration serves {request.resource}; "
            "install or configure the plugin that provides it",
        )
    if request.pattern not in integration.patterns:
        return Failed(
            ERROR_RUNTIME,
            f"integration {integration.name} does not support pattern {request.pattern}",
        )
    try:
        return await integration.invoke(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning(
            "integration %s raised on %s: %r",
            integration.name,
            request.step_name,
            exc,
            extra={
                "flow": request.flow_name,
                "execution": request.execution_name,
                "step": request.step_name,
                "traceparent": request.headers.get("traceparent"),
            },
        )
        return Failed(ERROR_RUNTIME, f"{type(exc).__name__}: {exc}")


class Dispatcher:
    """Carries out outbox rows, one asyncio task each, while the engine accepts work.

    Args:
        integrations: the integrations task steps can use, asked in order.
        hooks: the plugins that see requests and outcomes, if any.
        committer: where outcomes are queued.
        applier: applies the outcomes' commands.
    """

    def __init__(
        self,
        integrations: list[Integration],
        hooks: EngineHooks | None,
        committer: Committer,
        applier: Applier,
    ) -> None:
        self.integrations = integrations
        self._hooks = hooks
        self._committer = committer
        self._applier = applier
        #: Rows being dispatched now, by outbox id.
        self.inflight: dict[int, asyncio.Task[None]] = {}
        #: Whether new rows are dispatched; the runtime sets it while it accepts work.
        self.open = False
        #: Whether plugins hear of each dispatch (`EngineHooks.outbox_dispatched`).
        self.timed = False

    def integration_for(self, resource: str) -> Integration | None:
        """The first integration that claims ``resource``."""
        for integration in self.integrations:
            if integration.claims(resource):
                return integration
        return None

    def start(self, row: OutboxRow, committed_at: float | None = None) -> None:
        """Dispatch ``row`` unless it is being dispatched already or the engine is closing.

        Args:
            row: the outbox row.
            committed_at: when the transaction that wrote it committed (`time.monotonic`),
                if this engine wrote it and timed it; None for a row claimed from the store.
        """
        if row.id in self.inflight or not self.open:
            return
        task = asyncio.create_task(
            self._dispatch(row, committed_at), name=f"relayflow-task-{row.id}"
        )
        self.inflight[row.id] = task
        row_id = row.id

        def forget(_: asyncio.Task[None]) -> None:
            self.inflight.pop(row_id, None)

        task.add_done_callback(forget)

    async def drain(self, grace_seconds: float) -> None:
        """Give running dispatches ``grace_seconds`` to finish, then cancel the rest.

        A cancelled attempt stays in the outbox and is dispatched again by the next engine.
        """
        self.open = False
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace_seconds)
        late = list(self.inflight.values())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        self.inflight.clear()

    async def _dispatch(self, row: OutboxRow, committed_at: float | None) -> None:
        try:
            request = TaskRequest(**row.payload)
        except TypeError as exc:  # written by a bug or damaged: set aside, never retried forever
            reason = f"TypeError: {exc}"
            self._committer.enqueue(
                lambda tx, ctx: self.set_aside(tx, ctx, row, reason), execution_key(row)
            )
            return
        if self._hooks is not None:
            request = self._hooks.prepare_request(request)
            if self.timed:
                lag = None if committed_at is None else max(0.0, time.monotonic() - committed_at)
                self._hooks.outbox_dispatched(request.resource, lag)
        outcome = await invoke_integration(self.integration_for(request.resource), request)
        if self._hooks is not None:
            self._hooks.task_outcome(request, outcome)
        # A hand-over (Submitted) lingers: the worker's report of this task may come within a
        # millisecond or two, and then both commit together.
        self._committer.enqueue(
            lambda tx, ctx: self._complete(tx, ctx, row, outcome),
            execution_key(row),
            linger=isinstance(outcome, Submitted),
        )

    def _complete(
        self, tx: Transaction, ctx: TxContext, row: OutboxRow, outcome: TaskOutcome
    ) -> None:
        # The execution first, then its outbox row: every command locks in that order, so two
        # engines never hold one each while waiting for the other (a deadlock).
        execution = tx.lock_execution(row.execution_id)
        if not tx.delete_outbox(row.id):
            return  # another dispatch of the same row (maybe on another engine) finished it
        applier = self._applier
        command = outcome_command(row.payload["task_id"], outcome, applier.limits)
        if execution is not None and execution.status == "Running":
            # An attempt no longer open is ignored. The job is internal: if this raises, its
            # batch runs again isolated, and then the savepoint contains it.
            applier.apply_alone(tx, ctx, execution, command, savepoint=ctx.isolated)

    def set_aside(self, tx: Transaction, ctx: TxContext, row: OutboxRow, reason: str) -> None:
        """Move an outbox row nobody can carry out to the quarantine and fail its execution."""
        execution = tx.lock_execution(row.execution_id)  # before its row, as in `_complete`
        if not tx.delete_outbox(row.id):
            return
        where = (
            {} if execution is None else {"flow": execution.flow_name, "execution": execution.name}
        )
        log.error(
            "outbox row %s cannot be carried out (%s); set aside", row.id, reason, extra=where
        )
        tx.quarantine("outbox", row.execution_id, row.raw or jsontext.dumps(row.payload), reason)
        if execution is not None:
            self._applier.fail_execution(
                tx,
                ctx,
                execution,
                "relayflow could not read a task request of this execution and set it aside "
                f"for inspection ({reason})",
            )
