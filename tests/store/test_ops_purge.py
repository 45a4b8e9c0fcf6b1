"""Retention's store operations in every driver: count_ended, purge_ended and try_lock.

The same tests run on each driver of `tests/store/conftest.py` (memory, SQLite, PostgreSQL).
With two stores on one PostgreSQL database (the `replicas` fixture): a purge skips the ended
row another transaction holds (as a redrive does), two purges at once take disjoint rows, and
the store-wide lock is held by one transaction at a time.
"""

from __future__ import annotations

import dataclasses
import threading

from relayflow.store import Store, TimerRow, Transaction
from tests.store.rows import LONG, event, exec_row, flow_row, in_thread, now, raw, read, write

#: (flow, name, status, stopped): three ended long ago, one recently, two running.
ROWS = [
    ("a", "old1", "Succeeded", 100.0),
    ("a", "old2", "Failed", 120.0),
    ("b", "old3", "Stopped", 110.0),
    ("a", "new1", "TimedOut", 500.0),
    ("a", "run1", "Running", None),
    ("b", "run2", "Running", None),
]


def fill(tx: Transaction) -> dict[str, int]:
    """The `ROWS`, each with two events, a timer and an outbox row; run1 is old2's child."""
    tx.put_flow(flow_row("a"))
    tx.put_flow(flow_row("b"))
    ids: dict[str, int] = {}
    for flow, name, status, stopped in ROWS:
        row = dataclasses.replace(exec_row(flow, name), status=status, stopped=stopped)
        new = tx.insert_execution(row)
        assert new is not None
        ids[name] = new
        tx.append_events(new, [event(1), event(2)])
        tx.add_timer(TimerRow(new, 1, 10_000.0, "wait"))
        tx.add_outbox(new, {"kind": "task"}, "owner", now() + LONG)
        tx.quarantine("state", new, "{", "unreadable")
    tx.link_child(ids["old2"], ids["run1"])
    tx.link_child(ids["run2"], ids["old3"])
    return ids


def left(tx: Transaction) -> set[str]:
    return {
        row.name for flow in ("a", "b") for row in tx.list_executions(flow, after="", limit=100)
    }


def test_count_and_purge_by_time_and_flow_keep_running_and_recent(store: Store) -> None:
    ids = write(store, fill)
    with store.reader() as tx:
        assert tx.count_ended(200.0) == 3
        assert tx.count_ended(200.0, "a") == 2
        assert tx.count_ended(200.0, "b") == 1
        assert tx.count_ended(1000.0) == 4  # running ones never count
        assert tx.count_ended(100.0) == 0  # strictly before
        assert tx.count_ended(1000.0, "ghost") == 0
    assert write(store, lambda tx: tx.purge_ended(200.0, "a", 100)) == 2
    assert read(store, left) == {"old3", "new1", "run1", "run2"}
    assert write(store, lambda tx: tx.purge_ended(200.0, None, 100)) == 1
    assert write(store, lambda tx: tx.purge_ended(200.0, None, 100)) == 0
    assert read(store, left) == {"new1", "run1", "run2"}
    with store.reader() as tx:
        for gone in ("old1", "old2", "old3"):
            assert tx.list_events(ids[gone], 0, 100) == []
            assert tx.list_timers(ids[gone]) == []
            assert tx.list_outbox(ids[gone]) == []
        # What stays keeps its own rows; links to what went are gone, both ways.
        assert len(tx.list_events(ids["run1"], 0, 100)) == 2
        assert len(tx.list_timers(ids["run1"])) == 1 and len(tx.list_outbox(ids["run1"])) == 1
        assert tx.parent_of(ids["run1"]) is None
        assert tx.children_of(ids["run2"]) == []


def test_purge_takes_the_oldest_end_first_and_stops_at_the_limit(store: Store) -> None:
    write(store, fill)
    assert write(store, lambda tx: tx.purge_ended(1000.0, None, 2)) == 2
    assert read(store, left) == {"old2", "new1", "run1", "run2"}  # old1 (100), old3 (110) went
    assert write(store, lambda tx: tx.purge_ended(1000.0, None, 1)) == 1
    assert read(store, left) == {"new1", "run1", "run2"}


def test_purged_rows_leave_no_quarantined_data(store: Store) -> None:
    ids = write(store, fill)
    write(store, lambda tx: tx.purge_ended(200.0, None, 100))
    with store.transaction() as tx:
        rows = raw(tx, "SELECT execution_id FROM quarantine")
    assert sorted(r[0] for r in rows) == sorted(ids[n] for n in ("new1", "run1", "run2"))


def test_try_lock_is_granted_on_its_own(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.try_lock("relayflow.retention") is True
        assert tx.try_lock("relayflow.retention") is True  # again, in the same transaction
        assert tx.try_lock("another") is True


# -- two stores on one PostgreSQL database ----------------------------------------------------


def test_a_purge_skips_a_row_another_transaction_holds(replicas: tuple[Store, Store]) -> None:
    first, second = replicas
    ids = write(first, fill)
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction() as tx:
            assert tx.lock_execution(ids["old2"]) is not None  # as a redrive locks it
            locked.set()
            release.wait(10)
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        # Not blocked by the held row: it is skipped, the others go.
        assert in_thread(lambda: write(second, lambda tx: tx.purge_ended(200.0, None, 100))) == 2
        assert read(second, left) == {"old2", "new1", "run1", "run2"}
    finally:
        release.set()
        holder.join(10)
    assert done.is_set()
    assert write(second, lambda tx: tx.purge_ended(200.0, None, 100)) == 1
    assert read(second, left) == {"new1", "run1", "run2"}


def test_two_purges_at_once_take_different_rows(replicas: tuple[Store, Store]) -> None:
    first, second = replicas
    write(first, fill)
    taken, release = threading.Event(), threading.Event()
    counts: list[int] = []

    def purge_and_wait() -> None:
        with first.transaction() as tx:
            counts.append(tx.purge_ended(200.0, None, 2))
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=purge_and_wait)
    holder.start()
    try:
        assert taken.wait(10)
        counts.append(in_thread(lambda: write(second, lambda tx: tx.purge_ended(200.0, None, 100))))
    finally:
        release.set()
        holder.join(10)
    assert counts == [2, 1]
    assert read(first, left) == {"new1", "run1", "run2"}


def test_the_store_wide_lock_is_one_transactions_at_a_time(
    replicas: tuple[Store, Store],
) -> None:
    first, second = replicas
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction() as tx:
            assert tx.try_lock("relayflow.retention") is True
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        assert (
            in_thread(lambda: write(second, lambda tx: tx.try_lock("relayflow.retention"))) is False
        )
        # Another name is another lock.
        assert in_thread(lambda: write(second, lambda tx: tx.try_lock("other"))) is True
    finally:
        release.set()
        holder.join(10)
    # Released when the holding transaction ended.
    assert write(second, lambda tx: tx.try_lock("relayflow.retention")) is True
