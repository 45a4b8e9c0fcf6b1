"""Retention: ended executions older than `[engine] retention_days` are deleted, in small batches.

The operations are a part of `Engine` (it inherits `RetentionOperations`).

Two ways in, one way of deleting:

- the retention loop, started with the engine when `retention_days` is set: it deletes what
  ended more than `retention_days` before the engine's clock, then looks again every
  `retention_check_seconds`;
- `purge_executions` (PurgeExecutions, `relayflow executions purge`): on demand, with a time,
  optionally one flow, a dry run and a limit per call.

Each batch (`PURGE_BATCH` executions with their history, timers, outbox rows, quarantined data
and family links) is one short transaction of its own on the engine's writer
(`Committer.alone`). The loop then pauses for four times as long as the batch took, and at
least long enough to stay under `LOOP_RATE` executions a second: the writer spends at most a
fifth of its time on retention, a report waits for one small batch at most, and the log the
freed pages pass through grows slowly (on SQLite, every 4 MB of it is copied back into the
database file by whichever commit comes next: a report's, if the purge went fast).

Where the batch runs was measured (contrib/bench/bench_retention.py): inside the group-commit
batches of requests, every request of a batch waits for the deletes; on a thread and
connection of its own, SQLite would only queue it for the same file lock, and the PostgreSQL
store's transactions share one writer connection. Its own small transaction on the writer's
thread kept ReportTaskSucceeded's p99 closest to what it is without retention.

On PostgreSQL the loop's transaction first takes the store-wide lock `relayflow.retention`
(`Transaction.try_lock`): one replica at a time deletes, the others skip their turn. The rows
are taken `FOR UPDATE SKIP LOCKED`, so an execution a redrive holds at that moment is kept and
deleted at a later turn if it is still ended by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Final

from relayflow.engine.arguments import check_name, page_size
from relayflow.errors import EngineError, first_line, not_exists
from relayflow.results import PurgeResult  # shared with the client
from relayflow.store import StoreError

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime
    from relayflow.store import Transaction

__all__ = [
    "DAY_SECONDS",
    "DEFAULT_PURGE_LIMIT",
    "FORCE_PAGE",
    "FORCE_ROUNDS",
    "LOOP_RATE",
    "MAX_PURGE_LIMIT",
    "PURGE_BATCH",
    "PurgeResult",
    "RetentionOperations",
    "busy_flow",
]

log = logging.getLogger("relayflow.engine")

#: The most executions one purge transaction deletes.
PURGE_BATCH: Final = 100
#: How many executions one PurgeExecutions call deletes when it names no `Limit`.
DEFAULT_PURGE_LIMIT: Final = 1000
#: The most one PurgeExecutions call deletes (its `Limit`); call again while `more` is true.
MAX_PURGE_LIMIT: Final = 10_000
DAY_SECONDS: Final = 86_400.0
#: The store-wide lock that lets one replica at a time run the retention loop's batches.
LOCK_NAME: Final = "relayflow.retention"
# The pause after each batch is this many times what the batch took (the loop's; a
# PurgeExecutions call, which someone waits for, pauses as long as the batch took).
_LOOP_PACE: Final = 4.0
_CALL_PACE: Final = 1.0
_MIN_PAUSE: Final = 0.005
#: The most executions the retention loop deletes a second (a PurgeExecutions call is not held
#: to it): the pages a purge frees pass through the store's log, and on SQLite each 4 MB of
#: log is copied back into the database file by whichever commit comes next.
LOOP_RATE: Final = 1000.0
#: DeleteFlow with Force: the rounds of stopping it makes before it gives up on a flow whose
#: executions keep starting, and how many executions it stops at once.
FORCE_ROUNDS: Final = 5
FORCE_PAGE: Final = 500


def ended_before_seconds(value: float | datetime) -> float:
    """The time ``value`` stands for as seconds since the epoch.

    Raises:
        EngineError: `InvalidArgument` for a datetime without a time zone, or not a finite time.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EngineError.of(
                "InvalidArgument", "EndedBefore must carry a time zone (such as Z or +08:00)"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EngineError.of(
            "InvalidArgument", f"EndedBefore must be a time, got {str(value)[:40]!r}"
        )
    return float(value)


def busy_flow(name: str, running: int, forced: bool) -> EngineError:
    """`FlowHasRunningExecutions`: DeleteFlow of a flow with ``running`` running executions."""
    some = f"{running} running execution{'s' if running != 1 else ''}"
    them = "it" if running == 1 else "them"
    if forced:
        return EngineError.of(
            "FlowHasRunningExecutions",
            f"Flow '{name}' still has {some} after {FORCE_ROUNDS} rounds of stopping them "
            "(something keeps starting them); stop what starts them and delete it again",
        )
    return EngineError.of(
        "FlowHasRunningExecutions",
        f"Flow '{name}' has {some}; stop {them} first, or delete the flow with force "
        f"(`relayflow flows delete {name} --force`, DeleteFlow with Force=true), which stops "
        f"{them}",
    )


def _purge(
    tx: Transaction,
    ctx: TxContext | None = None,
    *,
    ended_before: float,
    flow_name: str | None,
    limit: int,
    lock: bool = False,
) -> int | None:
    """Delete one batch; None when ``lock`` is asked for and another replica holds it."""
    if lock and not tx.try_lock(LOCK_NAME):
        return None
    return tx.purge_ended(ended_before, flow_name, limit)


class RetentionOperations:
    """PurgeExecutions and the retention loop, as `Engine` methods."""

    _runtime: Runtime
    #: Days an ended execution is kept; None keeps it for ever (`Engine(retention_days=)`).
    _retention_days: float | None
    #: How often the retention loop looks for executions to delete when it has deleted all it
    #: found; set it before `start` (tests use a fraction of a second).
    retention_check_seconds: float = 60.0
    _retention_task: asyncio.Task[None] | None = None

    if TYPE_CHECKING:  # `Engine`'s

        async def stop_execution(
            self, flow_name: str, name: str, error: str = "", cause: str = ""
        ) -> ExecutionInfo:
            """StopExecution (`Engine.stop_execution`)."""
            ...

    # -- DeleteFlow with Force ----------------------------------------------------------------
    async def _stop_all_running(self, flow_name: str) -> None:
        """Stop every running execution of ``flow_name`` through StopExecution, a page at a time.

        A stop's own rules apply (its running children stop too). One that ended or went
        meanwhile is what was wanted; any other refusal or failure reaches the caller.
        """
        cause = f"DeleteFlow with Force stopped it to delete the flow {flow_name}"
        while True:
            page = await self._runtime.committer.read(
                lambda tx: tx.list_executions(
                    flow_name, after="", limit=FORCE_PAGE, status="Running"
                )
            )
            answers = await asyncio.gather(
                *(self.stop_execution(flow_name, row.name, "FlowDeleted", cause) for row in page),
                return_exceptions=True,
            )
            stopped = 0
            for answer in answers:
                if not isinstance(answer, BaseException):
                    stopped += 1
                elif not (
                    isinstance(answer, EngineError)
                    and answer.code in ("ExecutionNotRunning", "ExecutionNotExists")
                ):
                    raise answer
            if not stopped:  # none left, or none this round could stop: DeleteFlow counts
                return

    # -- on demand ----------------------------------------------------------------------------
    async def purge_executions(
        self,
        ended_before: float | datetime,
        *,
        flow_name: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PurgeResult:
        """Delete executions that ended before ``ended_before`` (PurgeExecutions).

        Each goes with its history, timers, outbox rows and family links, oldest end first,
        in transactions of at most `PURGE_BATCH`. Running executions are never touched.

        Args:
            ended_before: a time (an aware datetime, or seconds since the epoch).
            flow_name: only this flow's executions (`FlowNotExists` if there is no such flow).
            dry_run: count what would be deleted, delete nothing.
            limit: the most this call deletes, 1 to `MAX_PURGE_LIMIT` (default
                `DEFAULT_PURGE_LIMIT`); the result's `more` says whether to call again.

        Raises:
            EngineError: `InvalidArgument` or `FlowNotExists`.
        """
        before = ended_before_seconds(ended_before)
        if flow_name is not None:
            check_name(flow_name, "flow name")
        size = page_size(limit, DEFAULT_PURGE_LIMIT, MAX_PURGE_LIMIT, "Limit")
        committer = self._runtime.committer

        def count(tx: Transaction) -> int | None:
            if flow_name is not None and tx.get_flow(flow_name) is None:
                return None
            return tx.count_ended(before, flow_name)

        if dry_run:
            total = await committer.read(count)
            if total is None:
                raise not_exists("FlowNotExists", "Flow", str(flow_name))
            return PurgeResult(min(total, size), max(0, total - size), dry_run=True)
        if flow_name is not None and await committer.read(count) is None:
            raise not_exists("FlowNotExists", "Flow", flow_name)
        deleted = 0
        while deleted < size:
            batch = min(PURGE_BATCH, size - deleted)
            began = time.monotonic()
            done = await committer.alone(
                functools.partial(_purge, ended_before=before, flow_name=flow_name, limit=batch)
            )
            deleted += done or 0
            if not done or done < batch:
                break
            if deleted < size:
                await asyncio.sleep(_pause(time.monotonic() - began, _CALL_PACE))
        remaining = await committer.read(lambda tx: tx.count_ended(before, flow_name))
        return PurgeResult(deleted, remaining)

    # -- the loop -----------------------------------------------------------------------------
    async def _start_retention(self) -> None:
        """Start the retention loop (when `retention_days` is set); `Engine.start` calls it."""
        if self._retention_days is None or self._retention_task is not None:
            return
        self._retention_task = asyncio.create_task(
            self._retention_loop(self._retention_days), name="relayflow-retention"
        )

    async def _stop_retention(self) -> None:
        """Stop the retention loop; `Engine.close` calls it.

        A batch already on the writer thread still commits (or rolls back) whole.
        """
        task, self._retention_task = self._retention_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)

    async def _retention_loop(self, days: float) -> None:
        failing = False
        backoff = _MIN_PAUSE
        while True:
            try:
                cutoff = self._runtime.clock() - days * DAY_SECONDS
                began = time.monotonic()
                done = await self._runtime.committer.alone(
                    functools.partial(
                        _purge, ended_before=cutoff, flow_name=None, limit=PURGE_BATCH, lock=True
                    )
                )
                took = time.monotonic() - began
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                if not failing:  # one line when an outage begins, one when it ends
                    failing = True
                    log.warning(
                        "retention: the store cannot be used (%s); trying again", first_line(exc)
                    )
                backoff = min(max(backoff * 2, 0.5), self.retention_check_seconds)
                await asyncio.sleep(backoff)
                continue
            except Exception:
                log.exception("retention: will try again")
                await asyncio.sleep(self.retention_check_seconds)
                continue
            if failing:
                failing, backoff = False, _MIN_PAUSE
                log.warning("retention: the store works again")
            if done:
                log.debug("retention: deleted %d executions that ended before %s", done, cutoff)
            if done is not None and done >= PURGE_BATCH:
                # More are likely: soon, not now.
                await asyncio.sleep(max(_pause(took, _LOOP_PACE), PURGE_BATCH / LOOP_RATE))
            else:  # all done, or another replica's turn
                await asyncio.sleep(self.retention_check_seconds)


def _pause(took: float, pace: float) -> float:
    return max(_MIN_PAUSE, took * pace)
