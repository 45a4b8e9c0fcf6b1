"""The runtime's parts for replicas, on SQLite: conflict retries, end notices, shutdown, leases.

A `StoreConflict` is raised here by the jobs themselves, as the PostgreSQL driver raises it for
a deadlock or a lock timeout (tests/engine/test_replicas.py provokes real ones).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from relayflow.engine import Engine, FunctionIntegration, TaskRequest
from relayflow.engine.batches import (
    END_CHANNEL,
    Job,
    TxContext,
    end_payload,
    ended_keys,
    lock_order,
)
from relayflow.engine.runtime import Runtime
from relayflow.engine.waiters import EndWaiters
from relayflow.errors import EngineError
from relayflow.store import StoreConflict, StoreError, Transaction, open_store
from relayflow.store.sqlite import SQLiteStore
from relayflow.testing import EngineFactory, bounded, eventually, fdl, make_engine
from tests.engine.helpers import CALLBACK, QUEUE, Worker, action_flow


def write_meta(tx: Transaction, ctx: TxContext) -> str:
    """A job that writes something to find afterwards."""
    tx.set_meta("written", "yes")
    return "written"


def written(tx: Transaction) -> str | None:
    return tx.get_meta("written")


def conflicting(times: int, runs: list[int]) -> Callable[[Transaction, TxContext], str]:
    """A job that the database aborts ``times`` times, then writes its flow and answers."""

    def job(tx: Transaction, ctx: TxContext) -> str:
        runs.append(1)
        if len(runs) <= times:
            raise StoreConflict("deadlock detected (a test's)")
        return "done"

    return job


@bounded
async def test_a_batch_aborted_by_a_conflict_runs_again_and_every_caller_is_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "relayflow.engine")
    async with make_engine() as eng:
        committer = eng._runtime.committer
        runs: list[int] = []
        answers = await asyncio.gather(
            committer.submit(conflicting(2, runs)), committer.submit(write_meta)
        )
        assert list(answers) == ["done", "written"]
        assert len(runs) == 3
        assert caplog.text.count("aborted by a conflict") == 2
        assert await eng.read(written) == "yes"


@bounded
async def test_a_conflict_from_a_stale_memory_runs_again_without_the_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing raced a batch whose store only remembered something out of date: no wait."""
    from relayflow.engine import committer as committer_module

    pauses: list[float] = []
    monkeypatch.setattr(committer_module, "conflict_pause", lambda: pauses.append(1) or 0.0)

    def stale(times: int, runs: list[int]) -> Callable[[Transaction, TxContext], str]:
        def job(tx: Transaction, ctx: TxContext) -> str:
            runs.append(1)
            if len(runs) <= times:
                conflict = StoreConflict("the guard failed (a test's)")
                conflict.retry_at_once = True
                raise conflict
            return "done"

        return job

    async with make_engine() as eng:
        runs: list[int] = []
        assert await eng._runtime.committer.submit(stale(1, runs)) == "done"
        assert len(runs) == 2 and pauses == []
        assert await eng._runtime.committer.submit(conflicting(1, runs := [])) == "done"
        assert pauses == [1]


@bounded
async def test_a_job_that_always_conflicts_fails_alone_after_its_batch_ran_job_by_job() -> None:
    async with make_engine() as eng:
        committer = eng._runtime.committer
        runs: list[int] = []
        always, other = list(
            await asyncio.gather(
                committer.submit(conflicting(1000, runs)),
                committer.submit(write_meta),
                return_exceptions=True,
            )
        )
        assert isinstance(always, StoreConflict)
        assert other == "written"
        # Four runs with the batch, then three on its own.
        assert len(runs) == 7
        assert await eng.read(written) == "yes"


@bounded
async def test_flows_loaded_by_a_rolled_back_transaction_are_forgotten() -> None:
    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        flow = await eng.describe_flow("f")
        applier = eng._runtime.applier
        runs: list[int] = []

        cached_before: list[bool] = []

        def load_then_conflict(tx: Transaction, ctx: TxContext) -> None:
            runs.append(1)
            cached_before.append((flow.id, 1) in applier._flows)
            applier.flow_for(tx, "f", flow.id, 1)
            if len(runs) == 1:
                raise StoreConflict("serialization failure (a test's)")

        await eng._runtime.committer.submit(load_then_conflict)
        # The first run's load was forgotten with its transaction.
        assert cached_before == [False, False]
        # The second run committed: what it loaded stays.
        assert (flow.id, 1) in applier._flows and applier._uncommitted == []
        applier.rolled_back()
        assert (flow.id, 1) in applier._flows


def test_the_end_notice_names_executions_or_says_any() -> None:
    text = end_payload({("f", "b"), ("f", "a")})
    assert json.loads(text) == [["f", "a"], ["f", "b"]]
    assert ended_keys(text) == [("f", "a"), ("f", "b")]
    many = {("flow", f"execution-{i:05}") for i in range(1000)}
    assert end_payload(many) == "*"
    assert ended_keys("*") is None and ended_keys(None) is None
    assert ended_keys("not json") is None and ended_keys('[["only one"]]') is None


class NotifyingStore(SQLiteStore):
    """An in-memory store that says it notifies, and records what it was asked to send."""

    notifies = True
    single_engine = False

    def __init__(self, url: str) -> None:
        self.sent: list[tuple[str, str]] = []
        self.callbacks: list[Any] = []
        self.locked: list[list[tuple[str, str]]] = []
        super().__init__(url)  # opens a transaction: the lists must be there

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with super().transaction() as tx:
            tx.notify = lambda channel, payload: self.sent.append((channel, payload))  # type: ignore[method-assign]
            tx.lock_executions = self.locked.append  # type: ignore[attr-defined]
            yield tx

    async def listen(self, channel: str, callback: Any) -> Any:
        self.callbacks.append(callback)
        return None


def note(woken: list[str], name: str, _: object) -> None:
    woken.append(name)


@bounded
async def test_ends_are_notified_in_the_committing_transaction_and_notices_wake_waiters() -> None:
    store = NotifyingStore("memory://")
    worker = Worker()
    eng = Engine(store, integrations=[FunctionIntegration({QUEUE: worker.queue})], poll_seconds=0.1)
    async with eng:
        assert store.callbacks, "the runtime listens for ends"
        # Without a working listener, waiters look again as often as the loops poll.
        assert eng._runtime.end_waiters.recheck_seconds == 0.1
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="e")
        request = await worker.take()
        assert store.sent == []
        await eng.report_task_succeeded(request.token, {})
        assert store.sent == [(END_CHANNEL, '[["f","e"]]')]
        # A notice from another engine wakes the named waiter only; None wakes them all.
        waiters = eng._runtime.end_waiters
        woken: list[str] = []
        for name in ("a", "b"):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.add_done_callback(functools.partial(note, woken, name))
            waiters._waiters[("f", name)] = {future}
        store.callbacks[0]('[["f","a"]]')
        await asyncio.sleep(0)
        assert woken == ["a"]
        store.callbacks[0](None)
        await asyncio.sleep(0)
        assert woken == ["a", "b"]


@bounded
async def test_closed_waiters_answer_pending_and_later_waits_after_one_check() -> None:
    waiters = EndWaiters(lambda: asyncio.get_running_loop().time())
    checks: list[str] = []

    async def check(who: str) -> bool:
        checks.append(who)
        return False

    pending = asyncio.create_task(waiters.wait(("f", "e"), lambda: check("pending"), 30))
    await eventually(lambda: waiters._waiters, what="the wait to start")
    waiters.close()
    await asyncio.wait_for(pending, 5)
    assert checks == ["pending", "pending"]  # once more after the close: the current state
    await asyncio.wait_for(waiters.wait(("f", "e"), lambda: check("later"), 30), 5)
    assert checks[2:] == ["later"]
    assert waiters._waiters == {}


@bounded
async def test_begin_shutdown_stops_accepting_and_answers_long_polls() -> None:
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="e")
        await worker.take()
        poll = asyncio.create_task(eng.describe_execution("f", "e", wait_seconds=30))
        await eventually(lambda: eng._runtime.end_waiters._waiters, what="the poll to wait")
        assert eng.accepting
        eng._runtime.begin_shutdown()
        eng._runtime.begin_shutdown()  # twice is harmless
        assert not eng.accepting
        assert (await asyncio.wait_for(poll, 5)).status == "Running"


def test_the_lease_defaults_to_the_stores() -> None:
    store = open_store("memory://")
    try:
        assert Runtime(store).lease_seconds == store.default_lease_seconds
        assert Runtime(store, lease_seconds=4).lease_seconds == 4
    finally:
        store.close()


@bounded
async def test_close_hands_back_the_leases_of_attempts_still_running(
    engine_factory: EngineFactory,
) -> None:
    started: list[TaskRequest] = []

    async def stuck(request: TaskRequest) -> Any:
        started.append(request)
        await asyncio.Event().wait()

    eng = engine_factory({"demo:Work": stuck}, sqlite=True)
    await eng.start()
    try:
        await eng.create_flow("f", action_flow())
        await eng.start_execution("f", {}, name="e")
        await eventually(lambda: started, what="the task to be dispatched")
    finally:
        await eng.close(grace_seconds=0.1)
    path = engine_factory.sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT lease_owner, lease_until FROM outbox").fetchall()
    assert rows == [(None, None)]


@bounded
async def test_a_refusal_is_not_mistaken_for_a_conflict() -> None:
    async with make_engine() as eng:
        runs: list[int] = []

        def refuse(tx: Transaction, ctx: TxContext) -> None:
            runs.append(1)
            raise EngineError.of("InvalidArgument", "no")

        with pytest.raises(EngineError):
            await eng._runtime.committer.submit(refuse)
        assert runs == [1]


@bounded
async def test_a_store_outage_is_logged_once_per_loop_and_so_is_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "relayflow.engine")
    async with make_engine() as eng:
        store = eng.store
        real = store.transaction
        tries: list[int] = []
        down = True

        def transaction() -> Any:
            if down:
                tries.append(1)
                raise StoreError("cannot connect to the database (a test's)")
            return real()

        store.transaction = transaction  # type: ignore[method-assign]
        # Both loops fail several rounds each (they poll every 0.1 s).
        await eventually(lambda: len(tries) >= 8, what="the loops to fail a few rounds")
        assert caplog.text.count("the store cannot be used") == 2
        assert "Traceback" not in caplog.text
        down = False
        await eventually(
            lambda: caplog.text.count("the store works again") == 2, what="both loops to recover"
        )
        store.transaction = real  # type: ignore[method-assign]


def test_keyed_jobs_run_in_execution_order_and_the_others_keep_their_places() -> None:
    def job(name: str, key: tuple[str, str] | None) -> Job[Any]:
        return Job(lambda tx, ctx: name, None, key=key)

    batch = [
        job("b1", ("f", "b")),
        job("plain", None),
        job("a", ("f", "a")),
        job("b2", ("f", "b")),
        job("last", None),
    ]
    lock_order(batch)
    names = [j.fn(None, None) for j in batch]  # type: ignore[arg-type]
    assert names == ["a", "plain", "b1", "b2", "last"]


@bounded
async def test_an_engine_sharing_its_store_runs_a_batch_in_lock_order() -> None:
    store = NotifyingStore("memory://")
    async with Engine(store, poll_seconds=0.1) as eng:
        committer = eng._runtime.committer
        ran: list[str] = []

        def job(name: str) -> Callable[[Transaction, TxContext], None]:
            return lambda tx, ctx: ran.append(name)

        await asyncio.gather(
            *(committer.submit(job(n), key=("f", n)) for n in ("c", "a", "b", "a")),
        )
        assert ran == ["a", "a", "b", "c"]
        # The executions were locked first, in one call, each once.
        assert store.locked[-1] == [("f", "a"), ("f", "b"), ("f", "c")]


def napping(seconds: float) -> str:
    return fdl(f"""
    - type: wait
      name: nap
      duration: {seconds}
    """)


@bounded
async def test_only_a_timer_due_before_the_next_poll_wakes_the_timer_loop() -> None:
    # A poll of a minute: a timer due sooner is found only if its commit wakes the loop.
    async with make_engine(poll_seconds=60) as eng:
        loops = eng._runtime.loops
        claims: list[int] = []
        claim = loops._claim_timers

        def counting(tx: Transaction) -> Any:
            claims.append(1)
            return claim(tx)

        loops._claim_timers = counting  # type: ignore[method-assign]
        await eng.create_flow("far", napping(3600))
        await eng.create_flow("near", napping(0.2))
        await eventually(lambda: loops._looking_at is not None, what="the loop to sleep")
        before = len(claims)
        await eng.start_execution("far", {}, name="e")
        await asyncio.sleep(0.2)  # time for a wake-up, were there one
        assert len(claims) == before
        await eng.start_execution("near", {}, name="e")
        info = await eng.describe_execution("near", "e", wait_seconds=10)
        assert info.status == "Succeeded"
