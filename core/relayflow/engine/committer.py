"""The group-commit writer: one queue, one writer thread, many jobs per store transaction.

Every change goes through one queue to one writer task (the *committer*). It takes whatever
jobs are waiting, runs them in a single store transaction with `run_batch` (each job in its own
savepoint, so one refused request does not undo the others) and resolves their futures only
after the commit: a caller is answered when its change is durable. Batching many jobs per
commit is what lets a 2-core machine go well past the store's raw commit rate.

What a transaction asks for afterwards (dispatching, waking timers and long polls) is noted in
its `TxContext` and handed to the ``after_commit`` callback the runtime gives.

Several engines on one database can abort each other's transactions (a deadlock, a lock
timeout): the store raises `StoreConflict` and nothing was written. The writer then runs the
same batch again, a few times after a short random pause, and at last each job in a
transaction of its own, so that one job that keeps conflicting fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from relayflow.engine.batches import Isolate, Job, TxContext, lock_order, nothing, run_batch
from relayflow.store import Store, StoreConflict, StoreError, Transaction

__all__ = ["BATCH_LIMIT", "CONFLICT_RETRIES", "LINGER_SECONDS", "SHARED_BATCH_LIMIT", "Committer"]

log = logging.getLogger("relayflow.engine")

T = TypeVar("T")

BATCH_LIMIT = 1024
#: The same where several engines share the store: a batch holds its executions' row locks
#: until it commits, and other engines may be waiting for them.
SHARED_BATCH_LIMIT = 256
#: How long a batch made only of lingering jobs (a task recorded as handed over) waits for
#: another job before it starts. A fast worker's report of that very task usually comes within
#: a millisecond or two: it then shares the transaction instead of queueing behind it (on
#: PostgreSQL, where a transaction takes two round trips, that wait was most of a report's).
LINGER_SECONDS = 0.003
#: How many times a batch the database aborted runs again before its jobs run one by one.
CONFLICT_RETRIES = 3
#: The same for one job alone in its transaction (after that its caller gets the conflict).
ALONE_RETRIES = 2


def conflict_pause() -> float:
    """How long to wait before running an aborted transaction again: 5-50 ms, at random.

    The randomness keeps two engines that deadlocked from colliding again in step.
    """
    return random.uniform(0.005, 0.05)


class Committer:
    """Runs jobs on the store's one writer thread, batched, and reads on two reader threads.

    Args:
        store: the store to write to.
        after_commit: called with each committed transaction's `TxContext`, before the callers
            are answered.
        after_rollback: called on the writer's behalf after a batch's transaction was rolled
            back as a whole, so that what its jobs kept in memory can be forgotten.
    """

    def __init__(
        self,
        store: Store,
        after_commit: Callable[[TxContext], Awaitable[None]],
        after_rollback: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._after_commit = after_commit
        self._after_rollback = after_rollback
        self._batch_limit = BATCH_LIMIT if store.single_engine else SHARED_BATCH_LIMIT
        self._ordered = not store.single_engine  # one writer needs no lock order
        self.linger_seconds = LINGER_SECONDS
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="relayflow-store")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="relayflow-read")
        self._queue: asyncio.Queue[Job[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        #: Whether batches are timed for the plugins (`TxContext.timed`); the runtime sets it.
        self.timed = False

    @property
    def running(self) -> bool:
        """Whether the commit loop runs and takes jobs."""
        return self._task is not None

    async def on_writer(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer thread, outside any batch (for work before `start`)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def alone(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` now in a small write transaction of its own, not batched with other jobs.

        For claims and lease renewals: they lock only outbox or timer rows and commit at once,
        so they never hold those locks while a batch's jobs wait for executions. Runs again
        after a `StoreConflict`, like a batch.

        Raises:
            StoreError: the transaction failed (after its retries, for a conflict).
        """

        def run() -> T:
            with self._store.transaction() as tx:
                return fn(tx)

        loop = asyncio.get_running_loop()
        for _ in range(CONFLICT_RETRIES):
            try:
                return await loop.run_in_executor(self._writer, run)
            except StoreConflict:
                await asyncio.sleep(conflict_pause())
        return await loop.run_in_executor(self._writer, run)  # a conflict now reaches the caller

    def start(self) -> None:
        """Start the commit loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._commit_loop(), name="relayflow-committer")

    async def flush(self) -> None:
        """Wait until every job queued so far has committed (or failed)."""
        if self._task is not None:
            await self.submit(nothing, atomic=False)

    async def stop(self) -> None:
        """Commit every job queued so far, then stop the loop and the store's threads."""
        if self._task is None:
            return
        try:
            await self.flush()
        except Exception:  # the store is failing; its callers were told
            log.warning("the last jobs did not commit before the engine stopped")
        task, self._task = self._task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    async def submit(
        self,
        fn: Callable[[Transaction, TxContext], T],
        *,
        atomic: bool = True,
        key: tuple[str, str] | None = None,
    ) -> T:
        """Run ``fn`` in a write transaction; return its result once it has committed.

        With ``atomic`` (the default) an `EngineError` raised by ``fn`` undoes what ``fn`` wrote
        and reaches the caller, while the other jobs of the same transaction go on. Pass
        ``atomic=False`` for internal jobs that never refuse, to spare the savepoint.

        ``key`` names the execution ``fn`` locks first, ``(flow, name)``: where engines share
        the store, a batch runs its keyed jobs in key order so that engines lock executions
        in one order (`relayflow.engine.batches.lock_order`). ``fn`` may run more than once
        (after a conflict): it must be a function of its transaction and context alone.
        """
        if self._queue is None or self._task is None:
            raise RuntimeError("the engine is not running; call start() first")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(fn, future, atomic=atomic, key=key))
        return await future

    def enqueue(
        self,
        fn: Callable[[Transaction, TxContext], None],
        key: tuple[str, str] | None = None,
        *,
        linger: bool = False,
    ) -> None:
        """Queue an internal job that nobody waits for (its failure is only logged).

        Used for task outcomes: if the transaction fails, the outbox row stays and is
        dispatched again when its lease runs out. ``key`` is as for `submit`. With ``linger``,
        a batch that would hold only such jobs waits up to `LINGER_SECONDS` for another job
        before it starts (for work whose commit nobody is waiting to see).
        """
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(Job(fn, None, atomic=False, key=key, linger=linger))

    async def read(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` on a read-only view of the store.

        The caller has its answer as soon as ``fn`` returns: ending the read transaction (a
        round trip to a database server) changes nothing it read, so it happens meanwhile.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if answer.done():  # the caller gave up, or the answer went already
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(result)  # type: ignore[arg-type]

        def tell(result: T | None, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, result, error)

        def run() -> None:
            try:
                with self._store.reader() as tx:
                    tell(fn(tx), None)
            except BaseException as exc:  # reaches the caller unless the answer went already
                tell(None, exc)

        self._readers.submit(run)
        return await answer

    async def _commit_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            if batch[0].linger and queue.empty():
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(queue.get(), self.linger_seconds))
            while len(batch) < self._batch_limit and not queue.empty():
                batch.append(queue.get_nowait())
            if self._ordered:
                lock_order(batch)
            await self._commit(batch, CONFLICT_RETRIES)

    async def _commit(self, batch: list[Job[Any]], retries: int) -> None:
        """Commit ``batch`` and answer its callers, running it again after conflicts."""
        for attempt in range(retries + 1):
            try:
                ctx = await self._run(batch)
            except StoreConflict as exc:
                self._after_rollback()
                if attempt < retries:
                    log.info("store transaction aborted by a conflict; running it again: %s", exc)
                    if not exc.retry_at_once:
                        await asyncio.sleep(conflict_pause())
                    continue
                if len(batch) > 1:
                    # One job may conflict every time (say, with a long lock on its execution):
                    # on their own, the others still commit.
                    log.warning(
                        "store transaction of %d jobs aborted %d times; running them one by one",
                        len(batch),
                        attempt + 1,
                    )
                    for job in batch:
                        await self._commit([job], ALONE_RETRIES)
                    return
                log.error("store transaction aborted %d times; giving up: %s", attempt + 1, exc)
                self._fail(batch, exc)
                return
            except StoreError as exc:  # the database failed it (or is away): tell every caller
                self._after_rollback()
                log.error("store transaction failed: %s", exc)
                self._fail(batch, exc)
                return
            except Exception as exc:  # a bug: the same, with its traceback
                self._after_rollback()
                log.exception("store transaction failed")
                self._fail(batch, exc)
                return
            await self._answer(batch, ctx)
            return

    async def _run(self, batch: list[Job[Any]]) -> TxContext:
        """Run ``batch`` in one transaction on the writer thread; its `TxContext` once committed."""
        loop = asyncio.get_running_loop()
        ctx = TxContext(timed=self.timed)
        try:
            await loop.run_in_executor(self._writer, run_batch, self._store, batch, ctx)
        except Isolate:  # one job broke: the others must still commit
            self._after_rollback()
            ctx = TxContext(timed=self.timed)
            await loop.run_in_executor(self._writer, run_batch, self._store, batch, ctx, True)
        return ctx

    @staticmethod
    def _fail(batch: list[Job[Any]], exc: BaseException) -> None:
        for job in batch:
            if job.future is not None and not job.future.done():
                job.future.set_exception(exc)

    async def _answer(self, batch: list[Job[Any]], ctx: TxContext) -> None:
        # Dispatch first: the task that sends the next message then runs before the
        # callers' answers are written, which is what a worker waits for.
        try:
            await self._after_commit(ctx)
        except Exception:  # committed all the same: the callers must get their answers
            log.exception("after-commit work failed")
        for job in batch:
            if job.future is None or job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
