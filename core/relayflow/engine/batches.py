"""The unit of writing: jobs run together in one store transaction, each isolated.

The runtime's single writer takes whatever jobs are queued and runs them with `run_batch` in one
transaction; callers are answered after the commit. What a transaction asks for afterwards
(dispatching outbox rows, waking the timer loop, waking long polls) is noted in a `TxContext`.

Where several engines share the store, a batch locks the executions its jobs name in one
order (`lock_order`, `lock_first`), and names the executions it ended on `END_CHANNEL` before
it commits, so that the other engines' long polls wake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from relayflow.errors import EngineError
from relayflow.store import HistoryEvent, OutboxRow, Store, StoreConflict, Transaction

__all__ = [
    "END_CHANNEL",
    "Job",
    "RefusedAfterChange",
    "TxContext",
    "end_payload",
    "ended_keys",
    "lock_order",
    "nothing",
    "run_batch",
]

log = logging.getLogger("relayflow.engine")
T = TypeVar("T")

#: The channel on which a committing transaction names the executions it ended.
END_CHANNEL = "relayflow_end"
#: PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; above this, "*" says "any".
MAX_END_PAYLOAD = 7900


@dataclass
class TxContext:
    """What a transaction asks the runtime to do once it has committed."""

    outbox: list[OutboxRow] = field(default_factory=list)
    earliest_timer: float | None = None
    ended: set[tuple[str, str]] = field(default_factory=set)
    committed: list[tuple[str, str, list[HistoryEvent]]] = field(default_factory=list)
    isolated: bool = False  # every job runs in a savepoint of its own (see `run_batch`)
    #: Whether `run_batch` times the transaction (only when a plugin watches the writer).
    timed: bool = False
    #: When timed: how many jobs it ran, how long it took up to its COMMIT, and when that
    #: COMMIT returned (`time.monotonic`).
    jobs: int = 0
    seconds: float | None = None
    committed_at: float | None = None

    def mark(self) -> tuple[int, int]:
        """Where the lists stand now, for `undo` when a job's savepoint is rolled back."""
        return len(self.outbox), len(self.committed)

    def undo(self, mark: tuple[int, int]) -> None:
        """Forget what was noted since ``mark``: its writes were rolled back."""
        del self.outbox[mark[0] :], self.committed[mark[1] :]

    def timer_at(self, fire_at: float) -> None:
        """Note a new timer, so that the timer loop wakes for it."""
        if self.earliest_timer is None or fire_at < self.earliest_timer:
            self.earliest_timer = fire_at


def end_payload(ended: Iterable[tuple[str, str]]) -> str:
    """The `END_CHANNEL` message for executions that ended: JSON ``[[flow, name], ...]``.

    ``"*"`` (any execution may have ended) when the list would be too long for a notification.
    """
    text = json.dumps(sorted(ended), separators=(",", ":"), ensure_ascii=False)
    return "*" if len(text.encode()) > MAX_END_PAYLOAD else text


def ended_keys(payload: str | None) -> list[tuple[str, str]] | None:
    """The executions an `END_CHANNEL` message names; None when it may be any of them.

    None too for a message this version cannot read: waking every waiter is always safe.
    """
    if payload is None or payload == "*":
        return None
    try:
        items = json.loads(payload)
        return [(str(flow), str(name)) for flow, name in items]
    except (ValueError, TypeError):
        return None


def nothing(tx: Transaction, ctx: TxContext) -> None:
    """A job that writes nothing: waiting for it waits for every job queued before it."""


class RefusedAfterChange(EngineError):
    """A refusal whose job still changed the store (say, failing an unreadable execution).

    Raised by a job, it reaches the caller like any `EngineError`, but what the job wrote
    commits instead of being undone.
    """


class Isolate(Exception):
    """An internal job raised: run the batch again with every job on its own.

    A signal between `run_batch` and the writer that never reaches a caller, so it is not a
    `RelayflowError` and not exported.
    """


@dataclass
class Job(Generic[T]):
    """One piece of work for the writer, and, once the batch has run, its result or error."""

    fn: Callable[[Transaction, TxContext], T]
    future: asyncio.Future[T] | None
    atomic: bool = True
    #: The execution the job locks first, ``(flow, name)``, when known (see `lock_order`).
    key: tuple[str, str] | None = None
    #: Nobody waits for it and its work may wait a moment for company (`Committer.enqueue`).
    linger: bool = False
    result: Any = None
    error: BaseException | None = None


def lock_order(batch: list[Job[Any]]) -> None:
    """Put the jobs of ``batch`` that name their execution in ``(flow, name)`` order, in place.

    Engines sharing a store then lock executions in one order, so that two batches on two
    engines cannot each hold an execution the other waits for (a deadlock costs the database's
    deadlock timeout, a second by default, before one of them is aborted). Only the places of
    keyed jobs are reordered: jobs without a key (such as the writer's `nothing`, which must
    stay behind what was queued before it) keep theirs. Jobs of one execution keep their
    order, and jobs of different callers were concurrent, so any order of them is one a client
    could have seen.
    """
    places = [i for i, job in enumerate(batch) if job.key is not None]
    if len(places) < 2:
        return
    keyed = sorted((batch[i] for i in places), key=lambda job: job.key or ("", ""))
    for i, job in zip(places, keyed, strict=True):
        batch[i] = job


def lock_first(tx: Transaction, batch: list[Job[Any]]) -> None:
    """Lock the executions the batch's keyed jobs name, in key order, before any job runs.

    One statement instead of one per job where the driver can (`Transaction.lock_executions`);
    the jobs' own locking reads then find their rows locked already.
    """
    keys = sorted({job.key for job in batch if job.key is not None})
    if keys:
        tx.lock_executions(keys)


def run_batch(store: Store, batch: list[Job[Any]], ctx: TxContext, isolated: bool = False) -> None:
    """Run ``batch`` in one transaction, each atomic job in a savepoint of its own.

    A job that raises anything but an `EngineError` is a bug or a poison row; it fails
    alone: an atomic job's caller gets an `InternalError`, and an internal job, which runs
    without a savepoint, makes the whole batch run again (``isolated``) with savepoints all
    round, so that everything else in it still commits.

    A `StoreConflict` is none of these: the database gave up the whole transaction (a deadlock
    with another engine, a lock timeout), so it propagates and the writer runs the batch again.
    Jobs must therefore be functions of ``tx`` and ``ctx`` alone: a job may run several times,
    and only its last run counts.

    When executions ended, the transaction notifies `END_CHANNEL` before it commits, so that
    long polls on other engines wake (on stores that can notify).

    Raises:
        StoreConflict: the database aborted the transaction; nothing of it was written.
        Isolate: an internal job failed; run the batch again with ``isolated``.
    """
    ctx.isolated = isolated
    started = time.monotonic() if ctx.timed else 0.0
    with store.transaction() as tx:
        if not store.single_engine:
            lock_first(tx, batch)
        for job in batch:
            job.result, job.error = None, None
            if not job.atomic and not isolated:
                try:
                    job.result = job.fn(tx, ctx)
                except StoreConflict:
                    raise
                except Exception as exc:
                    raise Isolate from exc
                continue
            mark = ctx.mark()
            try:
                with tx.savepoint():
                    try:
                        job.result = job.fn(tx, ctx)
                    except RefusedAfterChange as exc:
                        job.error = exc  # the savepoint is kept: the change commits
            except EngineError as exc:
                ctx.undo(mark)
                job.error = exc
            except StoreConflict:
                raise
            except Exception:
                ctx.undo(mark)
                log.exception("a store job failed; the rest of its batch goes on")
                job.error = EngineError.of(
                    "InternalError", "the engine failed on this request; see the server's log"
                )
        if ctx.ended and store.notifies:
            tx.notify(END_CHANNEL, end_payload(ctx.ended))
    if ctx.timed:  # the block above has committed
        ctx.committed_at = time.monotonic()
        ctx.jobs, ctx.seconds = len(batch), ctx.committed_at - started
