"""The timer and recovery loops: due timers fire, leases are renewed, orphaned outbox rows claimed.

The timer loop fires due timers in batches through the writer and sleeps until the next one is
due (or until a commit that adds an earlier timer wakes it). The recovery loop claims outbox
rows nobody holds (left by a crash, or by another engine whose lease ran out), hands them to
the dispatcher, and renews the leases of the rows this engine is dispatching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from relayflow.engine.applier import Applier
from relayflow.engine.batches import TxContext
from relayflow.engine.committer import Committer
from relayflow.engine.dispatch import Dispatcher
from relayflow.engine.model import TimerFired
from relayflow.store import OutboxRow, Transaction

__all__ = ["CLAIM_BATCH", "TIMER_BATCH", "Loops"]

log = logging.getLogger("relayflow.engine")

TIMER_BATCH = 512
CLAIM_BATCH = 256


class Loops:
    """The timer loop and the recovery loop, as two asyncio tasks.

    Args:
        committer: runs their jobs.
        applier: applies fired timers.
        dispatcher: takes claimed outbox rows, and says which rows are in flight.
        poll_seconds: how often the loops look for work they were not told about.
    """

    def __init__(
        self,
        committer: Committer,
        applier: Applier,
        dispatcher: Dispatcher,
        poll_seconds: float,
    ) -> None:
        self._committer = committer
        self._applier = applier
        self._dispatcher = dispatcher
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        """Start both loops."""
        self._wake = asyncio.Event()  # bound to the running loop
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._timer_loop(), name="relayflow-timers"),
            asyncio.create_task(self._recovery_loop(), name="relayflow-recovery"),
        ]

    async def stop(self) -> None:
        """Cancel both loops and wait for them to end."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """A commit added a timer: look again at when the next one is due."""
        self._wake.set()

    async def _forever(self, round: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            try:
                await round()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping:  # the store may be gone already
                    return
                log.exception("%s loop: will try again", what)
                await asyncio.sleep(self._poll_seconds)

    # -- timers -------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        await self._forever(self._timer_round, "timer")

    async def _timer_round(self) -> None:
        while True:
            self._wake.clear()
            fired = await self._committer.submit(self._fire_due_timers)
            if fired >= TIMER_BATCH:
                continue
            next_at = await self._committer.read(lambda tx: tx.next_timer_at())
            delay = self._poll_seconds
            if next_at is not None:
                delay = min(delay, max(0.0, next_at - self._applier.clock()))
            if delay > 0:
                # asyncio.timeout, unlike wait_for on 3.11, never swallows a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    def _fire_due_timers(self, tx: Transaction, ctx: TxContext) -> int:
        applier = self._applier
        now = applier.clock()
        due = tx.claim_due_timers(now, applier.owner, now + applier.lease_seconds, TIMER_BATCH)
        for timer in due:
            if not tx.delete_timer(timer.execution_id, timer.timer_id):
                continue
            execution = tx.lock_execution(timer.execution_id)
            if execution is not None:
                applier.apply_alone(tx, ctx, execution, TimerFired(timer.timer_id))
        return len(due)

    # -- recovery -----------------------------------------------------------------------------

    async def _recovery_loop(self) -> None:
        """Dispatch outbox rows nobody holds: left over from a crash, or from another engine."""
        await self._forever(self._recovery_round, "recovery")

    async def _recovery_round(self) -> None:
        while True:
            rows = await self._committer.submit(self._claim_outbox)
            for row in rows:
                self._dispatcher.start(row)
            if self._dispatcher.inflight:
                await self._committer.submit(self._renew_leases(list(self._dispatcher.inflight)))
            await asyncio.sleep(self._poll_seconds if len(rows) < CLAIM_BATCH else 0)

    def _claim_outbox(self, tx: Transaction, ctx: TxContext) -> list[OutboxRow]:
        applier = self._applier
        now = applier.clock()
        rows = tx.claim_outbox(now, applier.owner, now + applier.lease_seconds, CLAIM_BATCH)
        for row in rows:
            if row.unreadable:
                self._dispatcher.set_aside(tx, ctx, row, row.unreadable)
        return [row for row in rows if not row.unreadable]

    def _renew_leases(self, ids: list[int]) -> Callable[[Transaction, TxContext], None]:
        applier = self._applier
        now = applier.clock()
        until = now + applier.lease_seconds

        def renew(tx: Transaction, ctx: TxContext) -> None:
            tx.renew_outbox(ids, applier.owner, now, until)

        return renew
