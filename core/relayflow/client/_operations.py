"""`Client`'s actions for operating flows in production: relayflow's own, not the service's.

RedriveExecution, CountExecutions, StopExecutions and RedriveExecutions, ListWaiting and
PurgeExecutions, with their iterators. `Client` inherits them from `Operations`, which sends
each through `Client.call` like every other action.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from relayflow.client import _calls
from relayflow.client._calls import Call
from relayflow.results import BulkPage, ExecutionInfo, Page, PurgeResult, WaitingWork

__all__ = ["Operations"]

T = TypeVar("T")


class Operations:
    """The operations of production, as `Client` methods."""

    if TYPE_CHECKING:  # `Client`'s

        def call(self, call: Call[T]) -> T:
            """Send one prepared call and read its answer (`Client.call`)."""

    def redrive_execution(
        self, flow_name: str, name: str, *, use_current_definition: bool = False
    ) -> ExecutionInfo:
        """Make a Failed, TimedOut or Stopped execution go on from where it ended.

        (RedriveExecution, relayflow's own.) It keeps its name, input and history:

            run = client.redrive_execution("orders", "order-7")
            run.status, run.redrive_count          # "Running", 1

        Args:
            flow_name: its flow.
            name: the execution.
            use_current_definition: go on with the flow's current definition instead of the
                one it ran (every step it was at must still be there).

        Raises:
            ClientError: `ExecutionNotExists`, or `ExecutionNotRedrivable` with one sentence
                saying why (it is running or succeeded, it is Express, ...).
        """
        return self.call(_calls.redrive_execution(flow_name, name, use_current_definition))

    def count_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
    ) -> int:
        """How many executions of a flow the filters match (CountExecutions, relayflow's own).

        The filters are `list_executions`'s; None leaves one out.

        Raises:
            ClientError: `FlowNotExists`, or `InvalidArgument` for a bad filter.
        """
        return self.call(
            _calls.count_executions(flow_name, status, name_prefix, started_after, started_before)
        )

    def stop_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        error: str = "",
        cause: str = "",
        limit: int | None = None,
        next_token: str | None = None,
        dry_run: bool = False,
    ) -> BulkPage:
        """Stop one page of the running executions the filters match (StopExecutions).

        Call again with the page's `next_token` until it is "" (`page.last`):

            page = client.stop_executions("orders", name_prefix="import-", error="Abandoned")
            while True:
                print(len(page.done), "stopped;", [f.code for f in page.failed])
                if page.last:
                    break
                page = client.stop_executions(
                    "orders", name_prefix="import-", error="Abandoned", next_token=page.next_token
                )

        Args:
            flow_name: the flow.
            status: `Running` or None (only running executions can be stopped).
            name_prefix: only executions whose names start with this.
            started_after: only those started at or after this time (aware datetime or
                RFC 3339 text).
            started_before: only those started at or before this time.
            error: the error name each is stopped with (at most 128 characters).
            cause: the cause each is stopped with (at most 4,096 characters).
            limit: the page's size, 1 to 1,000 (the server's default is 100).
            next_token: the previous page's `next_token`.
            dry_run: only select the page (`selected`); stop nothing.

        Returns:
            What the call did: `matched`, `done`, `skipped`, `failed` (each with its code).

        Raises:
            ClientError: `FlowNotExists`, or `InvalidArgument` for a bad argument; what goes
                wrong with one execution is in the page, not raised.
        """
        filters = _calls.execution_filters(
            flow_name, status, name_prefix, started_after, started_before
        )
        return self.call(_calls.stop_executions(filters, error, cause, limit, next_token, dry_run))

    def redrive_executions(
        self,
        flow_name: str,
        status: str,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        use_current_definition: bool = False,
        limit: int | None = None,
        next_token: str | None = None,
        dry_run: bool = False,
    ) -> BulkPage:
        """Redrive one page of the ended executions the filters match (RedriveExecutions).

        As `stop_executions`, one page per call; ``status`` is required and one of
        `Failed`, `TimedOut` or `Stopped`. ``use_current_definition`` is
        `redrive_execution`'s.

            page = client.redrive_executions("orders", "Failed", dry_run=True)
            print(page.matched, "failed;", "would redrive", page.selected)

        Raises:
            ClientError: `FlowNotExists`, or `InvalidArgument` for a bad argument; what goes
                wrong with one execution is in the page, not raised.
        """
        filters = _calls.execution_filters(
            flow_name, status, name_prefix, started_after, started_before
        )
        return self.call(
            _calls.redrive_executions(filters, use_current_definition, limit, next_token, dry_run)
        )

    def list_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        limit: int | None = None,
        next_token: str | None = "",
    ) -> Page[WaitingWork]:
        """One page of what running executions wait on (ListWaitingWork, relayflow's own).

        Args:
            flow_name: only this flow's executions; None for every flow's.
            older_than: only work waiting at least this many whole seconds (up to 366 days).
            limit: 1 to 1,000 (the server's default is 100). A page may hold fewer while
                its `next_token` is not "".
            next_token: the previous page's `next_token`.

        Raises:
            ClientError: `FlowNotExists`, or `InvalidArgument` for a bad argument.
            ValueError: ``older_than`` is not a whole number of seconds.
        """
        return self.call(_calls.list_waiting(flow_name, older_than, limit, next_token))

    def iter_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        page_size: int | None = None,
    ) -> Iterator[WaitingWork]:
        """Everything running executions wait on, fetching pages as needed.

        for work in client.iter_waiting("orders", older_than=3600):
            print(work.execution_name, work.step_name, work.kind, work.since)
        """
        token: str | None = None
        while True:
            page = self.list_waiting(
                flow_name, older_than=older_than, limit=page_size, next_token=token
            )
            yield from page.items
            if page.last:
                return
            token = page.next_token

    def purge_executions(
        self,
        ended_before: datetime | str | float,
        *,
        flow_name: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PurgeResult:
        """Delete executions that ended before a time, with their history (PurgeExecutions).

        Running executions are never touched. Call again while the result's `more` is true:

            cutoff = datetime.now(UTC) - timedelta(days=30)
            while client.purge_executions(cutoff, flow_name="orders").more:
                pass

        Args:
            ended_before: an aware datetime, RFC 3339 text with its zone, or seconds since
                the epoch.
            flow_name: only this flow's executions.
            dry_run: count what would be deleted; delete nothing.
            limit: the most this call deletes, 1 to 10,000 (the server's default is 1,000).

        Raises:
            ClientError: `FlowNotExists`, or `InvalidArgument` for a bad argument.
            ValueError: a naive datetime.
        """
        return self.call(_calls.purge_executions(ended_before, flow_name, dry_run, limit))
