"""Task reports (ReportTaskSucceeded, ReportTaskFailed) and what they leave: the history.

The operations are a part of `Engine` (it inherits `ReportOperations`). A token is checked
before anything is looked up (`relayflow.engine.tokens`), so a forged one learns nothing; the
first report of an attempt wins, later ones are refused with a code of their own. A task whose
step declares `correlationKey` can be reported on by its flow and key instead
(`relayflow.engine.correlation`), with the same rule.
GetExecutionHistory pages through the events an execution recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.engine.applier import failed_as_unreadable
from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_HISTORY_PAGE,
    check_name,
    check_text,
    page_size,
    parse_object,
)
from relayflow.engine.batches import RefusedAfterChange
from relayflow.engine.correlation import check_key, forget_stale, not_waiting, resolve
from relayflow.engine.express import refuse_express_history
from relayflow.engine.model import TaskFailed, TaskSucceeded
from relayflow.engine.outcomes import MAX_CAUSE_CHARS, MAX_ERROR_CHARS
from relayflow.engine.records import HistoryPage
from relayflow.engine.tokens import check_issued, parse_token, verify_token
from relayflow.errors import EngineError, not_exists

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.model import ExecutionState
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = ["ReportOperations"]


class ReportOperations:
    """The task report and history actions of the API, as `Engine` methods."""

    _runtime: Runtime

    async def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str = ""
    ) -> HistoryPage:
        """A page of an execution's history events, oldest first (GetExecutionHistory)."""
        size = page_size(limit, DEFAULT_PAGE, MAX_HISTORY_PAGE, "Limit")
        # The token is an EventId this API gave: digits, and small enough for the store.
        if next_token and not (
            next_token.isascii() and next_token.isdigit() and len(next_token) <= 18
        ):
            raise EngineError.of(
                "InvalidArgument", f"NextToken {next_token[:40]!r} is not one this API gave"
            )
        after = int(next_token) if next_token else 0

        def page(tx: Transaction) -> list[Any] | None:
            row = tx.get_execution(flow_name, name)
            if row is None:
                return None
            events = tx.list_events(row.id, after, size + 1)
            if not events and after == 0:  # an Express execution keeps no history
                refuse_express_history(tx.get_flow(flow_name), name)
            return events

        events = await self._runtime.committer.read(page)
        if events is None:
            raise not_exists("ExecutionNotExists", "Execution", name, flow_name)
        more = len(events) > size
        events = events[:size]
        return HistoryPage(events, str(events[-1].event_id) if more else "")

    async def report_task_succeeded(
        self,
        token: str = "",
        output: Any = None,
        *,
        flow_name: str = "",
        correlation_key: str | int = "",
    ) -> int:
        """Finish a task attempt with its output (ReportTaskSucceeded); returns the EventId.

        The attempt is named by its ``token``, or by ``flow_name`` and ``correlation_key``
        when its step declares `correlationKey` (`relayflow.engine.correlation`); exactly one
        of the two forms.
        """
        form = _form(token, flow_name, correlation_key)
        data = parse_object(output, "Output", self._runtime.limits.max_json_depth)
        return await self._report(form, TaskSucceeded(0, data), "TaskSucceeded")

    async def report_task_failed(
        self,
        token: str = "",
        error: str = "",
        cause: str = "",
        *,
        flow_name: str = "",
        correlation_key: str | int = "",
    ) -> int:
        """Fail a task attempt (ReportTaskFailed); returns the EventId.

        Named by ``token`` or by ``flow_name`` and ``correlation_key``, as for
        `report_task_succeeded`.
        """
        form = _form(token, flow_name, correlation_key)
        check_text(error, "Error", MAX_ERROR_CHARS, required=True)
        check_text(cause or "", "Cause", MAX_CAUSE_CHARS)
        return await self._report(form, TaskFailed(0, error, cause or ""), "TaskFailed")

    async def _report(
        self, form: str | tuple[str, str], command: TaskSucceeded | TaskFailed, kind: str
    ) -> int:
        if not isinstance(form, str):
            return await self._report_by_key(*form, command, kind)
        parts = parse_token(form)
        secret = self._runtime.secret
        check_issued(secret, parts)  # before any lookup: a forgery learns nothing

        def report(tx: Transaction, ctx: TxContext) -> int:
            # Locked: a report to another replica for the same execution waits for this one
            # and then reads the state it left (the task is no longer open).
            row = tx.get_execution(parts.flow_name, parts.execution_name, lock=True)
            if row is None and parts.legacy:
                raise EngineError.of(
                    "TaskTokenInvalid", "the task token does not match any execution"
                )
            if row is None:
                raise EngineError.of(
                    "ExecutionNotExists",
                    f"Execution '{parts.execution_name}' does not exist in flow "
                    f"'{parts.flow_name}' (the task token's execution)",
                )
            verify_token(secret, parts, row.uid)
            state = self._runtime.applier.read_state(tx, ctx, row)
            if state is None:
                raise failed_as_unreadable(row)
            # The MAC proves the attempt was issued: not open and not expired means completed.
            expired = state.expired.get(parts.task_id)
            if parts.task_id not in state.tasks and expired is None:
                raise EngineError.of(
                    "TaskAlreadyCompleted",
                    "this task attempt already has its result; the first report won",
                )
            if row.status != "Running":
                raise EngineError.of(
                    "ExecutionNotRunning",
                    f"Execution '{row.name}' is {row.status}; it takes no more reports",
                )
            if expired is not None:
                raise EngineError.of(
                    "TaskExpired",
                    f"this task attempt is over ({expired}); a newer attempt has its own token",
                )
            return self._finish(tx, ctx, row, state, parts.task_id, command, kind)

        return await self._runtime.committer.submit(
            report, key=(parts.flow_name, parts.execution_name)
        )

    async def _report_by_key(
        self, flow_name: str, key: str, command: TaskSucceeded | TaskFailed, kind: str
    ) -> int:
        def report(tx: Transaction, ctx: TxContext) -> int:
            # The key is read in this job, the one that applies the report: the attempt it
            # names is open now, and a second report of it finds the key gone.
            try:
                row, waiting = resolve(tx, flow_name, key)
            except EngineError:
                if tx.get_flow(flow_name) is None:
                    raise not_exists("FlowNotExists", "Flow", flow_name) from None
                raise
            state = self._runtime.applier.read_state(tx, ctx, row) if row is not None else None
            if row is not None and state is None:
                raise failed_as_unreadable(row)
            if row is None or state is None or waiting.task_id not in state.tasks:
                # Its attempt closed without forgetting the key (see correlation): stale.
                forget_stale(tx, flow_name, key, waiting)
                raise not_waiting(flow_name, key, RefusedAfterChange)
            return self._finish(tx, ctx, row, state, waiting.task_id, command, kind)

        return await self._runtime.committer.submit(report)

    def _finish(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        state: ExecutionState,
        task_id: int,
        command: TaskSucceeded | TaskFailed,
        kind: str,
    ) -> int:
        """Apply the report to the open attempt ``task_id``; the EventId it became."""
        applied: TaskSucceeded | TaskFailed
        if isinstance(command, TaskSucceeded):
            applied = TaskSucceeded(task_id, command.output)
        else:
            applied = TaskFailed(task_id, command.error, command.cause)
        transition = self._runtime.applier.apply(tx, ctx, row, applied, state)
        for event in transition.events:
            if event.type in (kind, "TaskFailed") and event.schedule_event_id == task_id:
                return event.event_id
        raise EngineError.of("InternalError", "the report did not produce an event")


def _form(token: str | None, flow_name: str | None, key: str | int | None) -> str | tuple[str, str]:
    """The token, or ``(flow, key)``: which form of report the caller chose (exactly one)."""
    by_key = bool(flow_name) or (key is not None and key != "")
    if by_key and token:
        raise EngineError.of(
            "InvalidArgument",
            "give TaskToken, or FlowName and CorrelationKey, to name the task; not both",
        )
    if not by_key:
        return token or ""  # an empty token is refused as malformed, as it always was
    if not flow_name:
        raise EngineError.of("InvalidArgument", "FlowName is required with CorrelationKey")
    if key is None or key == "":
        raise EngineError.of("InvalidArgument", "CorrelationKey is required with FlowName")
    return check_name(flow_name, "FlowName"), check_key(key)
