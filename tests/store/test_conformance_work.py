"""Store conformance: timers, the outbox, their leases and claims, and request nonces.

See test_conformance.py for what the suite is and how to run it against a new driver. Leases
are given as real times (`now() + LONG` is held, `now() - 5` has run out), so that drivers
which measure leases on the database's clock and drivers which compare the numbers agree.
"""

from __future__ import annotations

import pytest

from relayflow.store import OutboxRow, Store, TimerRow, Transaction
from tests.store.rows import LONG, now, read, write

# ---------------------------------------------------------------------------------------------
# Timers


def _four_timers(tx: Transaction) -> None:
    tx.add_timer(TimerRow(1, 3, 30.0, "wait"))
    tx.add_timer(TimerRow(1, 1, 10.0, "retry"))
    tx.add_timer(TimerRow(2, 1, 20.0, "timeout"))
    tx.add_timer(TimerRow(2, 2, 500.0, "flow"))


def test_timers_are_due_by_the_callers_clock_and_claimed_with_leases(store: Store) -> None:
    write(store, _four_timers)
    assert read(store, lambda tx: tx.next_timer_at()) == 10.0
    assert write(store, lambda tx: tx.claim_due_timers(5.0, "me", now() + LONG, 10)) == []
    due = write(store, lambda tx: tx.claim_due_timers(25.0, "me", now() + LONG, 10))
    assert due == [TimerRow(1, 1, 10.0, "retry"), TimerRow(2, 1, 20.0, "timeout")]
    # Leased: not claimed again, by anyone, while the lease holds.
    assert write(store, lambda tx: tx.claim_due_timers(50.0, "you", now() + LONG, 10)) == [
        TimerRow(1, 3, 30.0, "wait")
    ]
    assert write(store, lambda tx: tx.claim_due_timers(99.0, "you", now() + LONG, 10)) == []
    assert read(store, lambda tx: tx.next_timer_at()) == 500.0


def test_a_timer_whose_lease_ran_out_is_claimed_again(store: Store) -> None:
    write(store, _four_timers)
    # A lease that has already run out when it is taken: its holder died, say.
    # (Whether a lease ran out is judged by the real time, so `now` is real here.)
    write(store, lambda tx: tx.add_timer(TimerRow(2, 2, now() + LONG, "flow")))
    gone = write(store, lambda tx: tx.claim_due_timers(now(), "dead", now() - 5, 10))
    assert [(t.execution_id, t.timer_id) for t in gone] == [(1, 1), (2, 1), (1, 3)]
    assert read(store, lambda tx: tx.next_timer_at()) is not None
    again = write(store, lambda tx: tx.claim_due_timers(now(), "alive", now() + LONG, 10))
    assert [(t.execution_id, t.timer_id) for t in again] == [(1, 1), (2, 1), (1, 3)]
    assert write(store, lambda tx: tx.delete_timer(1, 1, owner="dead")) is False
    assert write(store, lambda tx: tx.delete_timer(1, 1, owner="alive")) is True


def test_delete_timer(store: Store) -> None:
    write(store, _four_timers)
    assert write(store, lambda tx: tx.delete_timer(1, 1)) is True
    assert write(store, lambda tx: tx.delete_timer(1, 1)) is False
    assert write(store, lambda tx: tx.delete_timer(9, 9)) is False
    # With an owner, only while that owner holds the lease.
    assert write(store, lambda tx: tx.delete_timer(1, 3, owner="me")) is False  # nobody holds it
    write(store, lambda tx: tx.claim_due_timers(40.0, "me", now() + LONG, 10))
    assert write(store, lambda tx: tx.delete_timer(1, 3, owner="you")) is False
    assert write(store, lambda tx: tx.delete_timer(1, 3, owner="me")) is True
    assert [(t.execution_id, t.timer_id) for t in read(store, lambda tx: tx.list_timers(2))] == [
        (2, 1),
        (2, 2),
    ]


def test_claim_due_timers_respects_limit_and_order(store: Store) -> None:
    def seed(tx: Transaction) -> None:
        for i, at in enumerate([5.0, 1.0, 4.0, 2.0, 3.0], start=1):
            tx.add_timer(TimerRow(1, i, at, "wait"))

    write(store, seed)
    first = write(store, lambda tx: tx.claim_due_timers(10.0, "me", now() + LONG, 2))
    assert [t.fire_at for t in first] == [1.0, 2.0]
    rest = write(store, lambda tx: tx.claim_due_timers(10.0, "me", now() + LONG, 10))
    assert [t.fire_at for t in rest] == [3.0, 4.0, 5.0]
    assert read(store, lambda tx: tx.next_timer_at()) is None


def test_list_timers_and_replacing_a_timer(store: Store) -> None:
    write(store, _four_timers)
    write(store, lambda tx: tx.claim_due_timers(15.0, "me", now() + LONG, 10))
    assert read(store, lambda tx: tx.list_timers(1)) == [
        TimerRow(1, 1, 10.0, "retry"),
        TimerRow(1, 3, 30.0, "wait"),
    ]
    assert read(store, lambda tx: tx.list_timers(7)) == []
    # Adding a timer under an id it already has replaces it, lease and all.
    write(store, lambda tx: tx.add_timer(TimerRow(1, 1, 12.0, "retry")))
    assert read(store, lambda tx: tx.list_timers(1))[0] == TimerRow(1, 1, 12.0, "retry")
    assert read(store, lambda tx: tx.next_timer_at()) == 12.0


def test_next_timer_at_with_no_timers(store: Store) -> None:
    assert read(store, lambda tx: tx.next_timer_at()) is None


# ---------------------------------------------------------------------------------------------
# Outbox


def test_outbox_add_claim_renew_delete(store: Store) -> None:
    payload = {"task_id": 3, "input": {"a": [1, "x"]}, "n": None}
    first = write(store, lambda tx: tx.add_outbox(7, payload, "creator", now() + LONG))
    second = write(store, lambda tx: tx.add_outbox(8, {"task_id": 4}, "creator", now() - 5))
    assert second > first > 0
    # The first is leased to its creator; the second's lease has run out.
    claimed = write(store, lambda tx: tx.claim_outbox(now(), "other", now() + LONG, 10))
    assert claimed == [OutboxRow(second, 8, {"task_id": 4})]
    assert write(store, lambda tx: tx.claim_outbox(now(), "third", now() + LONG, 10)) == []
    # Only the holder renews: the creator's renewal of the second row changes nothing.
    write(store, lambda tx: tx.renew_outbox([second], "creator", now(), now() - 5))
    assert write(store, lambda tx: tx.claim_outbox(now(), "third", now() + LONG, 10)) == []
    # The holder renews its lease into the past: the row is free again.
    write(store, lambda tx: tx.renew_outbox([first], "creator", now(), now() - 5))
    write(store, lambda tx: tx.renew_outbox([], "creator", now(), now() - 5))
    again = write(store, lambda tx: tx.claim_outbox(now(), "third", now() + LONG, 10))
    assert [(r.id, r.execution_id, r.payload) for r in again] == [(first, 7, payload)]
    assert write(store, lambda tx: tx.delete_outbox(first)) is True
    assert write(store, lambda tx: tx.delete_outbox(first)) is False
    assert read(store, lambda tx: tx.list_outbox(7)) == []
    assert read(store, lambda tx: tx.list_outbox(8)) == [OutboxRow(second, 8, {"task_id": 4})]


def test_outbox_claims_oldest_first_up_to_the_limit(store: Store) -> None:
    ids = [
        write(store, lambda tx, i=i: tx.add_outbox(i, {"i": i}, "x", now() - 5)) for i in range(5)
    ]
    first = write(store, lambda tx: tx.claim_outbox(now(), "me", now() + LONG, 2))
    assert [r.id for r in first] == ids[:2]
    rest = write(store, lambda tx: tx.claim_outbox(now(), "me", now() + LONG, 10))
    assert [r.id for r in rest] == ids[2:]


def test_an_unreadable_outbox_row_is_claimed_marked(store: Store) -> None:
    from tests.store.rows import raw

    good = write(store, lambda tx: tx.add_outbox(1, {"ok": True}, "x", now() - 5))
    bad = write(store, lambda tx: tx.add_outbox(2, {"ok": False}, "x", now() - 5))
    write(store, lambda tx: raw(tx, f"UPDATE outbox SET payload = '[1, 2' WHERE id = {bad}"))
    rows = write(store, lambda tx: tx.claim_outbox(now(), "me", now() + LONG, 10))
    assert [r.id for r in rows] == [good, bad]
    assert rows[0] == OutboxRow(good, 1, {"ok": True})
    assert rows[1].payload == {} and rows[1].unreadable and rows[1].raw == "[1, 2"
    listed = read(store, lambda tx: tx.list_outbox(2))
    assert listed[0].unreadable and listed[0].raw == "[1, 2"


# ---------------------------------------------------------------------------------------------
# Releasing leases


def _held_work(store: Store) -> tuple[int, int]:
    def seed(tx: Transaction) -> tuple[int, int]:
        tx.add_timer(TimerRow(1, 1, 10.0, "wait"))
        tx.add_timer(TimerRow(2, 1, 10.0, "wait"))
        return (
            tx.add_outbox(1, {"task_id": 1}, "a", now() + LONG),
            tx.add_outbox(2, {"task_id": 2}, "b", now() + LONG),
        )

    ids = write(store, seed)
    write(store, lambda tx: tx.claim_due_timers(20.0, "a", now() + LONG, 1))
    write(store, lambda tx: tx.claim_due_timers(20.0, "b", now() + LONG, 1))
    assert write(store, lambda tx: tx.claim_due_timers(20.0, "c", now() + LONG, 9)) == []
    assert write(store, lambda tx: tx.claim_outbox(now(), "c", now() + LONG, 9)) == []
    return ids


def test_release_every_lease(store: Store) -> None:
    a, b = _held_work(store)
    write(store, lambda tx: tx.release_leases())
    assert read(store, lambda tx: tx.next_timer_at()) == 10.0
    assert len(write(store, lambda tx: tx.claim_due_timers(20.0, "c", now() + LONG, 9))) == 2
    assert [
        r.id for r in write(store, lambda tx: tx.claim_outbox(now(), "c", now() + LONG, 9))
    ] == [
        a,
        b,
    ]


def test_release_one_owners_leases(store: Store) -> None:
    a, _ = _held_work(store)
    write(store, lambda tx: tx.release_leases("a"))
    timers = write(store, lambda tx: tx.claim_due_timers(20.0, "c", now() + LONG, 9))
    assert len(timers) == 1
    assert [
        r.id for r in write(store, lambda tx: tx.claim_outbox(now(), "c", now() + LONG, 9))
    ] == [a]
    # The released timer now belongs to "c": "a" can no longer fire it.
    timer = timers[0]
    assert write(store, lambda tx: tx.delete_timer(timer.execution_id, 1, owner="a")) is False
    assert write(store, lambda tx: tx.delete_timer(timer.execution_id, 1, owner="c")) is True


# ---------------------------------------------------------------------------------------------
# Nonces


def test_a_nonce_is_used_once_within_its_window(store: Store) -> None:
    t = now()
    assert write(store, lambda tx: tx.use_nonce("n1", t, 300.0)) is True
    assert write(store, lambda tx: tx.use_nonce("n1", t + 1, 300.0)) is False
    assert write(store, lambda tx: tx.use_nonce("n2", t + 1, 300.0)) is True
    # After its window, a nonce may be forgotten and accepted again.
    assert write(store, lambda tx: tx.use_nonce("n1", t + 400, 300.0)) is True
    assert write(store, lambda tx: tx.use_nonce("n1", t + 401, 300.0)) is False


def test_a_nonce_of_a_rolled_back_transaction_was_not_used(store: Store) -> None:
    t = now()
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.use_nonce("n", t, 300.0) is True
        raise RuntimeError("refused later")
    assert write(store, lambda tx: tx.use_nonce("n", t, 300.0)) is True


def test_many_nonces(store: Store) -> None:
    t = now()
    with store.transaction() as tx:
        assert all(tx.use_nonce(f"n{i}", t + i / 1000, 60.0) for i in range(200))
    with store.transaction() as tx:
        assert not any(tx.use_nonce(f"n{i}", t + 1, 60.0) for i in range(200))


def test_delete_outbox_under_a_locked_execution(store: Store) -> None:
    from tests.store.rows import exec_row

    def seed(tx: Transaction) -> tuple[int, int, int, int]:
        a = tx.insert_execution(exec_row("f", "a"))
        b = tx.insert_execution(exec_row("f", "b"))
        assert a is not None and b is not None
        return (
            a,
            tx.add_outbox(a, {"n": 1}, "me", now() + LONG),
            tx.add_outbox(a, {"n": 2}, "me", now() + LONG),
            tx.add_outbox(b, {"n": 3}, "me", now() + LONG),
        )

    a, first, second, other = write(store, seed)
    with store.transaction() as tx:
        assert tx.lock_execution(a) is not None
        assert tx.delete_outbox(first) is True
        assert tx.delete_outbox(first) is False
        with pytest.raises(KeyError), tx.savepoint():
            assert tx.delete_outbox(second) is True
            raise KeyError("undone")
        assert tx.delete_outbox(second) is True  # the savepoint gave it back
        assert tx.delete_outbox(other) is True  # of an execution not locked here
        assert tx.delete_outbox(10_000) is False
        added = tx.add_outbox(a, {"n": 4}, "me", now() + LONG)
        assert tx.delete_outbox(added) is True
        assert tx.list_outbox(a) == []
    assert read(store, lambda tx: tx.list_outbox(a)) == []


def test_delete_timer_under_a_locked_execution(store: Store) -> None:
    from tests.store.rows import exec_row

    def seed(tx: Transaction) -> int:
        a = tx.insert_execution(exec_row("f", "a"))
        assert a is not None
        tx.add_timer(TimerRow(a, 1, 10.0, "wait"))
        tx.add_timer(TimerRow(a, 2, 20.0, "retry"))
        return a

    a = write(store, seed)
    with store.transaction() as tx:
        assert tx.lock_execution(a) is not None
        assert tx.delete_timer(a, 1) is True
        assert tx.delete_timer(a, 1) is False
        with pytest.raises(KeyError), tx.savepoint():
            assert tx.delete_timer(a, 2) is True
            raise KeyError("undone")
        assert tx.delete_timer(a, 2, owner="nobody") is False  # not leased to it
        assert tx.delete_timer(a, 2) is True  # the savepoint gave it back
        tx.add_timer(TimerRow(a, 3, 30.0, "wait"))
        assert tx.delete_timer(a, 3) is True
        assert tx.delete_timer(a, 9) is False
        assert tx.list_timers(a) == []
    assert read(store, lambda tx: tx.list_timers(a)) == []
