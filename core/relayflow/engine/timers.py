"""The timer and recovery loops: due timers fire, leases are renewed, orphaned outbox rows claimed.

The timer loop claims due timers in a small transaction of its own, fires them in a job of the
writer, and sleeps until the next one is due (or until a commit that adds an earlier timer wakes
it). The recovery loop claims outbox rows nobody holds (left by a crash, or by another engine
whose lease ran out), hands them to the dispatcher, and renews the leases of the rows this
engine is dispatching, about four times per lease.

Several engines on one store claim with leases, so each timer and each row goes to one of them;
a claim is a transaction of its own that locks nothing but timer or outbox rows, and firing a
timer locks its execution before it deletes the timer, as every command does (execution first,
then its rows), so that engines never deadlock on the order. On such stores the loops also
spread their polls at random by a tenth, so that replicas started together do not claim in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from relayflow.engine.applier import Applier
from relayflow.engine.batches import TxContext
from relayflow.engine.committer import Committer
from relayflow.engine.dispatch import Dispatcher
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.model import TimerFired
from relayflow.errors import first_line
from relayflow.store import OutboxRow, StoreError, TimerRow, Transaction

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
        jitter: spread each poll at random by a tenth (for engines sharing a store).
        hooks: the plugins told of fired timers (`EngineHooks.timers_fired`), if any watch.
    """

    def __init__(
        self,
        committer: Committer,
        applier: Applier,
        dispatcher: Dispatcher,
        poll_seconds: float,
        *,
        jitter: bool = False,
        hooks: EngineHooks | None = None,
    ) -> None:
        self._committer = committer
        self._hooks = hooks
        self._applier = applier
        self._dispatcher = dispatcher
        self._poll_seconds = poll_seconds
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._claiming = False
        self._failing: set[str] = set()  # loops whose last round the store failed
        # When the timer loop looks for due timers next (None: it is looking now), and the
        # earliest timer committed while it was looking.
        self._looking_at: float | None = None
        self._pending: float | None = None

    def start(self) -> None:
        """Start both loops."""
        self._wake = asyncio.Event()  # bound to the running loop
        self._stopping = False
        self._claiming = True
        self._tasks = [
            asyncio.create_task(self._timer_loop(), name="relayflow-timers"),
            asyncio.create_task(self._recovery_loop(), name="relayflow-recovery"),
        ]

    def stop_claiming(self) -> None:
        """Take no more work (the engine is shutting down): no timers, no outbox claims.

        The leases of the rows being dispatched are still renewed until `stop`, so that
        attempts finishing in the close's grace period are not dispatched again elsewhere.
        """
        self._claiming = False
        if self._tasks:
            self._tasks[0].cancel()  # the timer loop

    async def stop(self) -> None:
        """Cancel both loops and wait for them to end."""
        self._stopping = True
        self._claiming = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _poll(self) -> float:
        """The time until the next look for work: ``poll_seconds``, spread if asked to."""
        if self._jitter:
            return self._poll_seconds * random.uniform(0.9, 1.1)
        return self._poll_seconds

    def wake(self, fire_at: float) -> None:
        """A commit added a timer due at ``fire_at``: look for it in time.

        Only a timer due before the loop would look anyway wakes it (most timers are far off,
        such as task timeouts); timers added by other engines are found by the poll.
        """
        if self._looking_at is None:  # the loop is looking now: take it into its next sleep
            self._pending = fire_at if self._pending is None else min(self._pending, fire_at)
        elif fire_at < self._looking_at:
            self._looking_at = fire_at
            self._wake.set()

    async def _forever(self, round: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            try:
                await round()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                if self._stopping:  # the store may be gone already
                    return
                # An outage of the database: one line when it begins (and one when it ends,
                # see `_store_works`), not a traceback every poll.
                if what not in self._failing:
                    self._failing.add(what)
                    log.warning(
                        "%s loop: the store cannot be used (%s); trying again every %g s",
                        what,
                        first_line(exc),
                        self._poll_seconds,
                    )
                await asyncio.sleep(self._poll_seconds)
            except Exception:
                if self._stopping:
                    return
                log.exception("%s loop: will try again", what)
                await asyncio.sleep(self._poll_seconds)

    def _store_works(self, what: str) -> None:
        """A loop's transaction went through: say so once if the store had been failing."""
        if what in self._failing:
            self._failing.discard(what)
            log.warning("%s loop: the store works again", what)

    # -- timers -------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        await self._forever(self._timer_round, "timer")

    async def _timer_round(self) -> None:
        clock = self._applier.clock
        while True:
            self._looking_at, self._pending = None, None
            self._wake.clear()
            due = await self._committer.alone(self._claim_timers)
            self._store_works("timer")
            if due:
                fired = await self._committer.submit(self._fire(due))
                if self._hooks is not None and fired[0]:
                    # Late by the engine's clock, as timers are due; never negative.
                    self._hooks.timers_fired(fired[0], max(0.0, clock() - fired[1]))
            if len(due) >= TIMER_BATCH:
                continue
            next_at = await self._committer.read(lambda tx: tx.next_timer_at())
            now = clock()
            # When to look next (on the engine's clock, as timers are): the next poll, the
            # earliest timer, or a timer committed while this round was looking.
            at = min(t for t in (now + self._poll(), next_at, self._pending) if t is not None)
            self._looking_at = at
            if at > now:
                # asyncio.timeout, unlike wait_for on 3.11, never swallows a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(at - now):
                        await self._wake.wait()

    def _claim_timers(self, tx: Transaction) -> list[TimerRow]:
        applier = self._applier
        now = applier.clock()
        return tx.claim_due_timers(now, applier.owner, now + applier.lease_seconds, TIMER_BATCH)

    def _fire(self, due: list[TimerRow]) -> Callable[[Transaction, TxContext], tuple[int, float]]:
        """A job that fires the timers this engine claimed, each once.

        It returns how many it fired and when the earliest of those was due.
        """
        applier = self._applier
        # Executions in ascending id order: two engines firing timers of the same executions
        # then lock them in the same order.
        ordered = sorted(due, key=lambda t: (t.execution_id, t.timer_id))

        def fire(tx: Transaction, ctx: TxContext) -> tuple[int, float]:
            count, earliest = 0, float("inf")
            for timer in ordered:
                execution = tx.lock_execution(timer.execution_id)
                # Only while this engine still holds the lease: if it was too slow and another
                # engine claimed the timer since, that one fires it.
                if not tx.delete_timer(timer.execution_id, timer.timer_id, owner=applier.owner):
                    continue
                count, earliest = count + 1, min(earliest, timer.fire_at)
                if execution is not None:
                    applier.apply_alone(tx, ctx, execution, TimerFired(timer.timer_id))
            return count, earliest

        return fire

    # -- recovery -----------------------------------------------------------------------------

    async def _recovery_loop(self) -> None:
        """Dispatch outbox rows nobody holds: left over from a crash, or from another engine."""
        await self._forever(self._recovery_round, "recovery")

    async def _recovery_round(self) -> None:
        # Leases are renewed about four times per lease: a renewal lost to a busy moment
        # still leaves time for the next.
        renew_every = self._applier.lease_seconds / 4
        next_claim = next_renew = time.monotonic()
        while True:
            now = time.monotonic()
            if not self._claiming:
                next_claim = now + renew_every  # only renewals from now on
            elif now >= next_claim:
                rows = await self._committer.alone(self._claim_outbox)
                self._store_works("recovery")
                unreadable = [row for row in rows if row.unreadable]
                if unreadable:
                    await self._committer.submit(self._set_aside(unreadable))
                for row in rows:
                    if not row.unreadable:
                        self._dispatcher.start(row)
                next_claim = time.monotonic() + (self._poll() if len(rows) < CLAIM_BATCH else 0)
            if now >= next_renew:
                inflight = list(self._dispatcher.inflight)
                if inflight:
                    await self._committer.alone(self._renew(inflight))
                next_renew = time.monotonic() + renew_every
            await asyncio.sleep(max(0.0, min(next_claim, next_renew) - time.monotonic()))

    def _claim_outbox(self, tx: Transaction) -> list[OutboxRow]:
        applier = self._applier
        now = applier.clock()
        return tx.claim_outbox(now, applier.owner, now + applier.lease_seconds, CLAIM_BATCH)

    def _set_aside(self, rows: list[OutboxRow]) -> Callable[[Transaction, TxContext], None]:
        def set_aside(tx: Transaction, ctx: TxContext) -> None:
            for row in rows:
                self._dispatcher.set_aside(tx, ctx, row, row.unreadable)

        return set_aside

    def _renew(self, ids: list[int]) -> Callable[[Transaction], None]:
        applier = self._applier

        def renew(tx: Transaction) -> None:
            now = applier.clock()
            tx.renew_outbox(ids, applier.owner, now, now + applier.lease_seconds)

        return renew
