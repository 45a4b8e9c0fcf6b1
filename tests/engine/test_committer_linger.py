"""The committer's lingering jobs: a hand-over record waits a moment for company.

A job queued with ``linger`` (the dispatcher's record of a task handed over to a queue) that
finds the queue empty waits up to `Committer.linger_seconds` for another job, so that the
worker's report of that task shares its transaction instead of queueing behind it. Every
other job starts its batch at once. The lingers here are long (seconds), so that what shares a
transaction does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relayflow.engine.batches import TxContext
from relayflow.engine.committer import LINGER_SECONDS, Committer
from relayflow.store import Transaction, open_store
from relayflow.testing import bounded, eventually


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[Committer, list[int]]]:
    """A committer on a fresh SQLite store, and the number of jobs of each committed batch."""
    store = open_store(f"sqlite:///{tmp_path / 'rf.db'}")
    sizes: list[int] = []

    async def after_commit(ctx: TxContext) -> None:
        sizes.append(ctx.jobs)

    committer = Committer(store, after_commit)
    committer.timed = True  # counts the jobs of each transaction in its TxContext
    committer.start()
    try:
        yield committer, sizes
    finally:
        await committer.stop()
        store.close()


def mark(marks: list[str], name: str) -> Callable[[Transaction, TxContext], str]:
    """A job that notes ``name`` when it runs and answers it."""

    def job(tx: Transaction, ctx: TxContext) -> str:
        marks.append(name)
        return name

    return job


def test_the_linger_is_a_few_milliseconds() -> None:
    assert 0 < LINGER_SECONDS <= 0.01


@bounded(seconds=20)
async def test_a_job_queued_while_a_hand_over_lingers_shares_its_transaction(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (writer, sizes):
        writer.linger_seconds = 10.0  # far longer than the test needs: no race with the clock
        marks: list[str] = []
        writer.enqueue(mark(marks, "handed over"), ("f", "e"), linger=True)
        for _ in range(5):
            await asyncio.sleep(0)  # the loop has taken the job and lingers
        assert marks == []  # nothing ran yet
        assert await writer.submit(mark(marks, "report"), key=("f", "e")) == "report"
        assert marks == ["handed over", "report"]  # in queue order, in one transaction
        assert sizes == [2]


@bounded(seconds=20)
async def test_a_lingering_job_alone_commits_after_the_linger(tmp_path: Path) -> None:
    async with running(tmp_path) as (writer, sizes):
        writer.linger_seconds = 0.05
        marks: list[str] = []
        writer.enqueue(mark(marks, "handed over"), ("f", "e"), linger=True)
        await eventually(lambda: sizes == [1], what="the lingering job committed alone")
        assert marks == ["handed over"]


@bounded(seconds=20)
async def test_other_jobs_do_not_linger(tmp_path: Path) -> None:
    async with running(tmp_path) as (writer, sizes):
        writer.linger_seconds = 60.0  # were a plain job to linger, the test would time out
        marks: list[str] = []
        writer.enqueue(mark(marks, "outcome"), ("f", "e"))
        assert await writer.submit(mark(marks, "start"), key=("f", "x")) == "start"
        await writer.submit(mark(marks, "alone"), key=("f", "y"))
        assert marks == ["outcome", "start", "alone"]
        assert len(sizes) >= 2  # the last job did not wait for company
