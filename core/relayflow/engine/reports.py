"""Task reports (ReportTaskSucceeded, ReportTaskFailed) and what they leave: the history.

The operations are a part of `Engine` (it inherits `ReportOperations`). A token is checked
before anything is looked up (`relayflow.engine.tokens`), so a forged one learns nothing; the
first report of an attempt wins, later ones are refused with a code of their own.
GetExecutionHistory pages through the events an execution recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.engine.applier import failed_as_unreadable
from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_HISTORY_PAGE,
    check_text,
    page_size,
    parse_object,
)
from relayflow.engine.express import refuse_express_history
from relayflow.engine.model import TaskFailed, TaskSucceeded
from relayflow.engine.outcomes import MAX_CAUSE_CHARS, MAX_ERROR_CHARS
from relayflow.engine.records import HistoryPage
from relayflow.engine.tokens import check_issued, parse_token, verify_token
from relayflow.errors import EngineError, not_exists

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.runtime import Runtime
    from relayflow.store import Transaction

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

    async def report_task_succeeded(self, token: str, output: Any) -> int:
        """Finish a task attempt with its output (ReportTaskSucceeded); returns the EventId."""
        data = parse_object(output, "Output", self._runtime.limits.max_json_depth)
        return await self._report(token, TaskSucceeded(0, data), "TaskSucceeded")

    async def report_task_failed(self, token: str, error: str, cause: str = "") -> int:
        """Fail a task attempt (ReportTaskFailed); returns the EventId."""
        check_text(error, "Error", MAX_ERROR_CHARS, required=True)
        check_text(cause or "", "Cause", MAX_CAUSE_CHARS)
        return await self._report(token, TaskFailed(0, error, cause or ""), "TaskFailed")

    async def _report(self, token: str, command: TaskSucceeded | TaskFailed, kind: str) -> int:
        parts = parse_token(token)
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
            applied: TaskSucceeded | TaskFailed
            if isinstance(command, TaskSucceeded):
                applied = TaskSucceeded(parts.task_id, command.output)
            else:
                applied = TaskFailed(parts.task_id, command.error, command.cause)
            transition = self._runtime.applier.apply(tx, ctx, row, applied, state)
            for event in transition.events:
                if event.type in (kind, "TaskFailed") and event.schedule_event_id == parts.task_id:
                    return event.event_id
            raise EngineError.of("InternalError", "the report did not produce an event")

        return await self._runtime.committer.submit(
            report, key=(parts.flow_name, parts.execution_name)
        )
