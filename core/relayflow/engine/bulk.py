"""Bulk actions: stop or redrive every execution of a flow that a filter matches.

The operations are a part of `Engine` (it inherits `BulkOperations`). Each call acts on one page
of the matching executions, by name as ListExecutions lists them: every execution of the page is
handed to the engine's group-commit writer at once (each through `stop_execution`, or the job
of `redrive_execution`, so that whatever those do, a stop's children included, happens here too),
and the answer says, per execution, whether it was done, skipped because it no longer matches
(another caller ended or redrove it meanwhile) or failed, with the refusal's code. One failure
never stops the others. The answer's `next_token` resumes after the page; since an execution
that was acted on no longer matches the filter, running the same bulk action again from the
start acts only on what is left.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.engine.arguments import check_text, page_size
from relayflow.engine.outcomes import MAX_CAUSE_CHARS, MAX_ERROR_CHARS
from relayflow.engine.redrive import redrive_in
from relayflow.errors import EngineError, not_exists

# The result types are shared with the client (relayflow.results); these names stay.
from relayflow.results import BulkFailure as Failure
from relayflow.results import BulkPage as BulkResult
from relayflow.results import BulkSkip as Skip

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime
    from relayflow.store import Transaction

__all__ = [
    "DEFAULT_BULK_PAGE",
    "MAX_BULK_PAGE",
    "MAX_NAME_PREFIX",
    "REDRIVABLE_STATUSES",
    "STATUSES",
    "BulkOperations",
    "BulkResult",
    "ExecutionFilter",
    "Failure",
    "Skip",
]

log = logging.getLogger("relayflow.engine")

#: The most executions one bulk call acts on (its `Limit`).
MAX_BULK_PAGE = 1000
#: How many it acts on when no `Limit` is given.
DEFAULT_BULK_PAGE = 100
#: The longest name prefix a filter takes: an execution name is at most 128 characters.
MAX_NAME_PREFIX = 128
# What a name prefix may hold: the characters of an execution name (and no more of them).
_PREFIX = re.compile(rf"[A-Za-z0-9_-]{{0,{MAX_NAME_PREFIX}}}")
#: The statuses a filter may name (ListExecutions' `Status`).
STATUSES = ("Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut")
#: The statuses RedriveExecutions filters on: the ends that are not a success.
REDRIVABLE_STATUSES = ("Failed", "TimedOut", "Stopped")


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """Which executions of a flow a bulk action is about; None leaves a criterion out.

    Attributes:
        status: only executions with this status (one of `STATUSES`).
        name_prefix: only executions whose names start with this (at most 128 characters).
        started_from: only executions started at or after this time (epoch seconds).
        started_to: only executions started at or before this time (epoch seconds).
    """

    status: str | None = None
    name_prefix: str | None = None
    started_from: float | None = None
    started_to: float | None = None

    def checked(self) -> ExecutionFilter:
        """This filter, or `InvalidArgument` naming the criterion that is wrong."""
        if self.status is not None and self.status not in STATUSES:
            raise _invalid(f"Status must be one of {', '.join(STATUSES)}, got {self.status!r:.40}")
        if self.name_prefix is not None and (
            not isinstance(self.name_prefix, str) or not _PREFIX.fullmatch(self.name_prefix)
        ):
            raise _invalid(
                f"ExecutionNamePrefix must be at most {MAX_NAME_PREFIX} letters, digits, _ and -"
            )
        if (
            self.started_from is not None
            and self.started_to is not None
            and self.started_from > self.started_to
        ):
            raise _invalid("StartedTimeBegin is after StartedTimeEnd, so nothing could match")
        return self

    def store_args(self) -> dict[str, Any]:
        """The keyword arguments of `Transaction.list_executions` and `count_matching`."""
        return {
            "status": self.status,
            "name_prefix": self.name_prefix or None,
            "started_from": self.started_from,
            "started_to": self.started_to,
        }


def _invalid(message: str) -> EngineError:
    return EngineError.of("InvalidArgument", message)


# What acting on one execution gives: done (None), skipped or failed.
_Outcome = Skip | Failure | None


class BulkOperations:
    """StopExecutions, RedriveExecutions and CountExecutions, as `Engine` methods."""

    _runtime: Runtime

    if TYPE_CHECKING:  # `Engine`'s, which the engine class provides

        async def stop_execution(
            self, flow_name: str, name: str, error: str = "", cause: str = ""
        ) -> ExecutionInfo:
            """StopExecution (`Engine`)."""

    async def count_executions_matching(
        self, flow_name: str, filters: ExecutionFilter, *, at_most: int | None = None
    ) -> int:
        """How many executions of ``flow_name`` match ``filters`` (CountExecutions).

        With ``at_most``, counting stops past it and ``at_most + 1`` means "more than that":
        a page that shows counts by status need not read a million index entries.

        Raises:
            EngineError: `FlowNotExists`, or `InvalidArgument` for a bad filter.
        """
        args = filters.checked().store_args()

        def count(tx: Transaction) -> int | None:
            if tx.get_flow(flow_name) is None:
                return None
            return tx.count_matching(flow_name, **args, at_most=at_most)

        found = await self._runtime.committer.read(count)
        if found is None:
            raise not_exists("FlowNotExists", "Flow", flow_name)
        return found

    async def stop_executions(
        self,
        flow_name: str,
        *,
        filters: ExecutionFilter | None = None,
        error: str = "",
        cause: str = "",
        limit: int | None = None,
        next_token: str = "",
        dry_run: bool = False,
    ) -> BulkResult:
        """Stop one page of the running executions ``filters`` match (StopExecutions).

        Only running executions can be stopped, so the filter's status is `Running` whether
        given or not; another status is refused.

        Args:
            flow_name: the flow.
            filters: which executions; None for every running one.
            error: the error name each is stopped with (0 to 128 characters).
            cause: the cause each is stopped with (0 to 4,096 characters).
            limit: the page's size, 1 to `MAX_BULK_PAGE` (default `DEFAULT_BULK_PAGE`).
            next_token: where to resume: the `next_token` of the previous call.
            dry_run: only select the page; stop nothing.

        Raises:
            EngineError: `FlowNotExists`, or `InvalidArgument` for a bad argument. What goes
                wrong with one execution is in the result, not raised.
        """
        filters = (filters or ExecutionFilter()).checked()
        if filters.status not in (None, "Running"):
            raise _invalid(
                f"StopExecutions stops Running executions only; Status {filters.status!r:.40} "
                "cannot match one"
            )
        # Checked once for the call (a NUL character too), not refused by each stop.
        check_text(error, "Error", MAX_ERROR_CHARS)
        check_text(cause, "Cause", MAX_CAUSE_CHARS)
        running = ExecutionFilter("Running", *_rest(filters))

        def act(name: str) -> Awaitable[Any]:
            return self.stop_execution(flow_name, name, error, cause)

        return await self._bulk(flow_name, running, act, limit, next_token, dry_run)

    async def redrive_executions(
        self,
        flow_name: str,
        *,
        filters: ExecutionFilter,
        use_current_definition: bool = False,
        limit: int | None = None,
        next_token: str = "",
        dry_run: bool = False,
    ) -> BulkResult:
        """Redrive one page of the ended executions ``filters`` match (RedriveExecutions).

        The filter must name the status to redrive: `Failed`, `TimedOut` or `Stopped`.

        Args:
            flow_name: the flow.
            filters: which executions.
            use_current_definition: move each onto the flow's current definition, as
                `redrive_execution` does.
            limit: the page's size, 1 to `MAX_BULK_PAGE` (default `DEFAULT_BULK_PAGE`).
            next_token: where to resume: the `next_token` of the previous call.
            dry_run: only select the page; redrive nothing.

        Raises:
            EngineError: `FlowNotExists`, `MissingParameter` without a status, or
                `InvalidArgument` for a bad argument. What goes wrong with one execution is in
                the result, not raised.
        """
        filters.checked()
        if filters.status is None:
            raise EngineError(
                "MissingParameter",
                f"RedriveExecutions needs a Status to redrive: {', '.join(REDRIVABLE_STATUSES)}",
                400,
            )
        if filters.status not in REDRIVABLE_STATUSES:
            raise _invalid(
                f"RedriveExecutions redrives {', '.join(REDRIVABLE_STATUSES)} executions only; "
                f"Status {filters.status!r:.40} cannot match one"
            )

        applier = self._runtime.applier

        def act(name: str) -> Awaitable[Any]:
            # `redrive_in` rather than `redrive_execution`: the same redrive, without reading
            # the execution's family for an answer nobody here reads (two queries each).
            def job(tx: Transaction, ctx: TxContext) -> None:
                redrive_in(applier, tx, ctx, flow_name, name, use_current_definition)

            return self._runtime.committer.submit(job, key=(flow_name, name))

        return await self._bulk(flow_name, filters, act, limit, next_token, dry_run)

    async def _bulk(
        self,
        flow_name: str,
        filters: ExecutionFilter,
        act: Callable[[str], Awaitable[Any]],
        limit: int | None,
        next_token: str,
        dry_run: bool,
    ) -> BulkResult:
        """Select a page of what ``filters`` match, then ``act`` on all of it at once."""
        size = page_size(limit, DEFAULT_BULK_PAGE, MAX_BULK_PAGE, "Limit")
        if not isinstance(next_token, str) or not _PREFIX.fullmatch(next_token):
            raise _invalid("NextToken is not one a bulk action gave")
        args = filters.checked().store_args()

        def select(tx: Transaction) -> tuple[int, list[str], str] | None:
            if tx.get_flow(flow_name) is None:
                return None
            matched = tx.count_matching(flow_name, **args)
            rows = tx.list_executions(flow_name, after=next_token, limit=size + 1, **args)
            names = [r.name for r in rows[:size]]
            return matched, names, names[-1] if len(rows) > size else ""

        found = await self._runtime.committer.read(select)
        if found is None:
            raise not_exists("FlowNotExists", "Flow", flow_name)
        matched, names, token = found
        if dry_run or not names:
            return BulkResult(matched, tuple(names), next_token=token, dry_run=dry_run)
        # Every job goes to the writer now, so that its batches carry many of them each.
        outcomes = await asyncio.gather(*(self._one(flow_name, n, filters, act) for n in names))
        return BulkResult(
            matched,
            tuple(names),
            done=tuple(n for n, o in zip(names, outcomes, strict=True) if o is None),
            skipped=tuple(o for o in outcomes if isinstance(o, Skip)),
            failed=tuple(o for o in outcomes if isinstance(o, Failure)),
            next_token=token,
        )

    async def _one(
        self,
        flow_name: str,
        name: str,
        filters: ExecutionFilter,
        act: Callable[[str], Awaitable[Any]],
    ) -> _Outcome:
        """Act on one execution; a refusal is a skip when the execution no longer matches."""
        try:
            await act(name)
        except EngineError as exc:
            try:
                status = await self._status_now(flow_name, name)
            except Exception:  # cannot tell whether it still matches: report the refusal
                return Failure(name, exc.code, exc.message)
            if status is None:
                return Skip(name, "it no longer exists")
            if status != filters.status:
                return Skip(name, f"it is {status} now")
            return Failure(name, exc.code, exc.message)
        except Exception:  # one execution's trouble must not end the page
            log.exception(
                "bulk action on execution %s of flow %s failed",
                name,
                flow_name,
                extra={"flow": flow_name, "execution": name},
            )
            return Failure(
                name, "InternalError", "the engine failed on this execution; see its log"
            )
        return None

    async def _status_now(self, flow_name: str, name: str) -> str | None:
        def read(tx: Transaction) -> str | None:
            row = tx.get_execution(flow_name, name)
            return None if row is None else row.status

        return await self._runtime.committer.read(read)


def _rest(filters: ExecutionFilter) -> tuple[str | None, float | None, float | None]:
    """A filter's criteria after its status."""
    return filters.name_prefix, filters.started_from, filters.started_to
