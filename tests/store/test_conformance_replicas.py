"""Store conformance: two stores opened on one URL, standing for two replicas.

See test_conformance.py for what the suite is. These tests are skipped for a driver that
serves a single engine process (`Store.single_engine`), and the notification test also for
one that cannot notify (`Store.notifies`). Concurrency is arranged with threads and events,
never with sleeps: a transaction is held open on one store while the other acts, and every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from relayflow.store import Store, StoreConflict, TimerRow, Transaction
from tests.store.rows import LONG, exec_row, flow_row, now, read, write

WAIT = 30.0  # the longest any step may take: far beyond a 2 s lock timeout


def _while_held(
    holder: Store, hold: Callable[[Transaction], Any], other: Callable[[], Any]
) -> tuple[Any, concurrent.futures.Future[Any]]:
    """Run ``hold`` in a transaction of ``holder``, start ``other`` on a thread meanwhile,
    give it a moment to run into the held transaction, then commit; ``other``'s future."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    with holder.transaction() as tx:
        held = hold(tx)
        future = pool.submit(other)
        # Not a timed assertion: whether or not it got there, the outcome must be the same.
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(timeout=0.2)
    pool.shutdown(wait=False)
    return held, future


def test_same_name_starts_give_one_execution(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    mine, theirs = _while_held(
        a,
        lambda tx: tx.insert_execution(exec_row("f", "same")),
        lambda: write(b, lambda tx: tx.insert_execution(exec_row("f", "same", status="Other"))),
    )
    assert mine is not None
    assert theirs.result(timeout=WAIT) is None
    assert read(b, lambda tx: tx.get_execution("f", "same")).status == "Running"
    assert read(b, lambda tx: tx.count_executions()) == 1


def test_create_flow_twice_gives_one_flow(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    mine, theirs = _while_held(
        a,
        lambda tx: tx.create_flow(flow_row(definition="a")),
        lambda: write(b, lambda tx: tx.create_flow(flow_row(definition="b"))),
    )
    assert (mine, theirs.result(timeout=WAIT)) == (True, False)
    assert read(b, lambda tx: tx.flow_versions("f")) == [(1, "a")]


def test_set_meta_if_absent_agrees_across_stores(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    mine, theirs = _while_held(
        a,
        lambda tx: tx.set_meta_if_absent("token_secret", "from-a"),
        lambda: write(b, lambda tx: tx.set_meta_if_absent("token_secret", "from-b")),
    )
    assert mine == theirs.result(timeout=WAIT) == "from-a"
    assert write(b, lambda tx: tx.set_meta_if_absent("token_secret", "again")) == "from-a"


def test_a_nonce_used_on_one_store_is_refused_by_the_other(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    t = now()
    mine, theirs = _while_held(
        a,
        lambda tx: tx.use_nonce("n", t, 300.0),
        lambda: write(b, lambda tx: tx.use_nonce("n", t, 300.0)),
    )
    assert (mine, theirs.result(timeout=WAIT)) == (True, False)
    assert write(a, lambda tx: tx.use_nonce("n", t + 1, 300.0)) is False
    assert write(b, lambda tx: tx.use_nonce("other", t + 1, 300.0)) is True


def test_claims_never_hand_one_row_to_both(replicas: tuple[Store, Store]) -> None:
    a, b = replicas

    def seed(tx: Transaction) -> list[int]:
        for i in range(6):
            tx.add_timer(TimerRow(i, 1, float(i), "wait"))
        return [tx.add_outbox(i, {"i": i}, "gone", now() - 5) for i in range(6)]

    ids = write(a, seed)
    t = now()
    with a.transaction() as tx:
        mine_timers = tx.claim_due_timers(t, "a", t + LONG, 3)
        mine_rows = tx.claim_outbox(t, "a", t + LONG, 3)
        # While a's claims are not committed, b is not blocked by them: it skips them.
        theirs_timers, theirs_rows = _in_thread(
            lambda: write(
                b,
                lambda tx2: (
                    tx2.claim_due_timers(t, "b", t + LONG, 10),
                    tx2.claim_outbox(t, "b", t + LONG, 10),
                ),
            )
        )
    assert len(mine_timers) == len(mine_rows) == 3
    mine_keys = {(r.execution_id, r.timer_id) for r in mine_timers}
    theirs_keys = {(r.execution_id, r.timer_id) for r in theirs_timers}
    assert not mine_keys & theirs_keys and len(mine_keys | theirs_keys) == 6
    assert not {r.id for r in mine_rows} & {r.id for r in theirs_rows}
    assert {r.id for r in mine_rows} | {r.id for r in theirs_rows} == set(ids)
    # Everything is held now.
    assert write(b, lambda tx: tx.claim_outbox(now(), "c", now() + LONG, 10)) == []
    assert write(b, lambda tx: tx.claim_due_timers(now(), "c", now() + LONG, 10)) == []


def test_an_expired_lease_is_claimed_by_the_other(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    row_id = write(a, lambda tx: tx.add_outbox(1, {"x": 1}, "a", now() + LONG))
    write(a, lambda tx: tx.add_timer(TimerRow(1, 1, 1.0, "wait")))
    assert [t.timer_id for t in write(a, lambda tx: tx.claim_due_timers(now(), "a", now() - 5, 9))]
    assert write(b, lambda tx: tx.claim_outbox(now(), "b", now() + LONG, 9)) == []
    # a's outbox lease runs out (renewed into the past, as if time had passed).
    write(a, lambda tx: tx.renew_outbox([row_id], "a", now(), now() - 5))
    assert [r.id for r in write(b, lambda tx: tx.claim_outbox(now(), "b", now() + LONG, 9))] == [
        row_id
    ]
    assert [t.timer_id for t in write(b, lambda tx: tx.claim_due_timers(now(), "b", now() + 60, 9))]
    # a lost both: its renewal and its fencing delete do nothing.
    write(a, lambda tx: tx.renew_outbox([row_id], "a", now(), now() + LONG))
    assert write(a, lambda tx: tx.delete_timer(1, 1, owner="a")) is False
    assert write(b, lambda tx: tx.delete_timer(1, 1, owner="b")) is True


def test_a_locked_execution_blocks_the_others_locking_read(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    execution_id = write(a, lambda tx: tx.insert_execution(exec_row("f", "e")))
    write(a, lambda tx: tx.put_flow(flow_row()))
    for hold, other in [
        (
            lambda tx: tx.lock_execution(execution_id),
            lambda tx: tx.get_execution("f", "e", lock=True),
        ),
        (
            lambda tx: tx.get_execution("f", "e", lock=True),
            lambda tx: tx.lock_execution(execution_id),
        ),
        (lambda tx: tx.get_flow("f", lock=True), lambda tx: tx.get_flow("f", lock=True)),
    ]:
        order: list[str] = []

        def update_then_note(
            tx: Transaction, hold: Callable[[Transaction], Any] = hold, order: list[str] = order
        ) -> None:
            hold(tx)
            tx.set_meta("seen-by-b", "from-a")
            order.append("a committing")

        def locking_read(
            other: Callable[[Transaction], Any] = other, order: list[str] = order
        ) -> str | None:
            with b.transaction() as tx:
                other(tx)
                order.append("b has the lock")
                return tx.get_meta("seen-by-b")

        _, future = _while_held(a, update_then_note, locking_read)
        # b got the lock only after a committed, and then saw a's write.
        assert future.result(timeout=WAIT) == "from-a"
        assert order == ["a committing", "b has the lock"]
        write(a, lambda tx: tx.set_meta("seen-by-b", ""))
    # A plain read is not blocked by a lock.
    with a.transaction() as tx:
        tx.lock_execution(execution_id)
        assert _in_thread(lambda: read(b, lambda r: r.get_execution("f", "e"))).name == "e"
        assert _in_thread(lambda: write(b, lambda r: r.get_execution("f", "e"))).name == "e"


def test_a_lock_held_too_long_gives_a_conflict(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    execution_id = write(a, lambda tx: tx.insert_execution(exec_row("f", "e")))
    with a.transaction() as tx:
        tx.lock_execution(execution_id)

        def wait_for_lock() -> None:
            with b.transaction() as tx2:
                tx2.set_meta("written", "no")
                # The engine runs each job in a savepoint and may catch the error there: the
                # transaction must still end in StoreConflict, with nothing written.
                with pytest.raises(StoreConflict), tx2.savepoint():
                    tx2.lock_execution(execution_id)
                tx2.set_meta("after", "no")

        with pytest.raises(StoreConflict):
            _in_thread(wait_for_lock)
    assert read(b, lambda tx: tx.get_meta("written")) is None
    # b's store works again at once.
    assert write(b, lambda tx: tx.lock_execution(execution_id)).name == "e"


def test_notifications_reach_the_other_stores_listener(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    if not b.notifies:
        pytest.skip(f"{type(b).__name__} does not notify")

    async def main() -> list[str | None]:
        got: list[str | None] = []
        arrived = asyncio.Event()

        def callback(payload: str | None) -> None:
            got.append(payload)
            if payload == "last":
                arrived.set()

        listener = await b.listen("relayflow_conformance", callback)
        assert listener is not None
        try:
            loop = asyncio.get_running_loop()

            def send(tx: Transaction) -> None:
                tx.notify("relayflow_conformance", "one")
                tx.notify("relayflow_conformance", "one")  # the same twice: sent once
                tx.notify("relayflow_other", "elsewhere")
                with pytest.raises(KeyError), tx.savepoint():
                    tx.notify("relayflow_conformance", "rolled back")
                    raise KeyError("undone")

            await loop.run_in_executor(None, write, a, send)
            with pytest.raises(RuntimeError):
                await loop.run_in_executor(None, _rolled_back_notify, a)
            await loop.run_in_executor(
                None, write, a, lambda tx: tx.notify("relayflow_conformance", "last")
            )
            async with asyncio.timeout(WAIT):
                await arrived.wait()
        finally:
            await listener.close()
        return got

    assert asyncio.run(main()) == ["one", "last"]


def _rolled_back_notify(store: Store) -> None:
    with store.transaction() as tx:
        tx.notify("relayflow_conformance", "never")
        raise RuntimeError("rolled back")


def _in_thread(fn: Callable[[], Any]) -> Any:
    done: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            done.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the other store's call did not finish"
    if error:
        raise error[0]
    return done[0]
