"""The PostgreSQL writer's memory of the executions it committed (`relayflow.store.postgres_memory`).

A batch on executions this writer wrote last skips their locking read: its one message starts
with a guard that locks them and fails unless their rows are the versions remembered. These
tests count the messages, change rows behind the writer's back (another replica, an admin
connection) and check that a stale memory only ever costs a run again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from relayflow.store import Store, StoreConflict, TimerRow, open_store
from relayflow.store.postgres_buffer import Buffered
from relayflow.store.postgres_memory import (
    MISSES_TO_PAUSE,
    PAUSE,
    Remembered,
    WriterMemory,
)
from tests.store.rows import LONG, event, exec_row, now, read, write

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[Any, Any]]:
    """Two stores on one database: this replica's writer and another's."""
    mine, other = open_store(pg_url), open_store(pg_url)
    yield mine, other
    mine.close()
    other.close()


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every message the writers send, as text."""
    sent: list[str] = []
    execute = Buffered._execute

    def counted(self: Buffered, text: str, *, retry: bool) -> Any:
        sent.append(text)
        return execute(self, text, retry=retry)

    monkeypatch.setattr(Buffered, "_execute", counted)
    return sent


def _update(tx: Any, execution_id: int, state: str, status: str = "Running") -> None:
    tx.update_execution(
        execution_id, status=status, state=state, output=None, error="", cause="", stopped=None
    )


def _transition(tx: Any, key: tuple[str, str], state: str, old_outbox: int | None) -> int:
    """What a task report does: lock, read, delete the old outbox row, add a new one."""
    tx.lock_executions([key])
    row = tx.get_execution(*key, lock=True)
    assert row is not None
    if old_outbox is not None:
        assert tx.delete_outbox(old_outbox) is True
    _update(tx, row.id, state)
    tx.append_events(row.id, [event(int(state))])
    return int(tx.add_outbox(row.id, {"n": state}, "me", now() + LONG))


def test_a_batch_on_what_this_writer_wrote_last_is_one_message(
    stores: tuple[Store, Store], messages: list[str]
) -> None:
    mine, _ = stores
    key = ("f", "a")
    outbox = write(mine, lambda tx: _transition_new(tx, key))
    messages.clear()
    outbox = write(mine, lambda tx: _transition(tx, key, "2", outbox))
    assert len(messages) == 1, messages
    assert "rf_guard_one" in messages[0] and messages[0].endswith("COMMIT")
    assert "rf_lock_key" not in messages[0]
    # The guard answers the transaction's id: no statement of its own for it.
    assert "SELECT txid_current()" not in messages[0]
    write(mine, lambda tx: _transition(tx, key, "3", outbox))
    assert len(messages) == 2  # the id the guard answered was the rows' version
    row = read(mine, lambda tx: tx.get_execution(*key))
    assert row.state == "3"
    assert [o.id for o in read(mine, lambda tx: tx.list_outbox(row.id))] == [
        mine.memory.recall([key])[0].outbox[0]  # type: ignore[attr-defined]
    ]
    assert mine.memory.hits == 2  # type: ignore[attr-defined]


def _transition_new(tx: Any, key: tuple[str, str]) -> int:
    tx.lock_executions([key])
    execution_id = tx.insert_execution(exec_row(*key))
    return int(tx.add_outbox(execution_id, {"n": 1}, "me", now() + LONG))


def test_a_row_another_replica_wrote_fails_the_guard_and_is_read_again(
    stores: tuple[Store, Store],
) -> None:
    mine, other = stores
    key = ("f", "a")
    first = write(mine, lambda tx: _transition_new(tx, key))
    outbox = write(other, lambda tx: _transition(tx, key, "7", first))  # behind my back
    with pytest.raises(StoreConflict) as info:
        write(mine, lambda tx: _transition(tx, key, "8", first))  # as this writer remembers
    assert info.value.retry_at_once
    assert mine.memory.recall([key]) is None  # type: ignore[attr-defined]
    assert read(mine, lambda tx: tx.get_execution(*key)).state == "7"  # nothing written
    # Run again, as the writer does: the locking read sees the other replica's row.
    write(mine, lambda tx: _transition(tx, key, "8", outbox))
    assert read(mine, lambda tx: tx.get_execution(*key)).state == "8"
    assert mine.memory.misses == 1  # type: ignore[attr-defined]


def test_an_outbox_row_deleted_behind_the_writer_fails_its_deletion(
    stores: tuple[Store, Store], admin: Any
) -> None:
    mine, _ = stores
    key = ("f", "a")
    outbox = write(mine, lambda tx: _transition_new(tx, key))
    admin.execute("DELETE FROM outbox WHERE id = %s", (outbox,))  # the row itself unchanged
    with pytest.raises(StoreConflict) as info:
        write(mine, lambda tx: _transition(tx, key, "2", outbox))
    assert info.value.retry_at_once
    row = read(mine, lambda tx: tx.get_execution(*key))
    assert row.state != "2" and read(mine, lambda tx: tx.list_events(row.id, 0, 10)) == []


def test_the_guard_waits_for_another_replicas_lock_then_sees_its_change(
    stores: tuple[Store, Store],
) -> None:
    mine, other = stores
    key = ("f", "a")
    outbox = write(mine, lambda tx: _transition_new(tx, key))
    locked, release = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def other_replica() -> None:
        with other.transaction() as tx:
            tx.lock_executions([key])
            tx.get_execution(*key, lock=True)
            tx.flush()  # type: ignore[attr-defined]
            locked.set()
            release.wait(10)
            _update(tx, tx.get_execution(*key, lock=True).id, "9")

    def my_writer() -> None:
        try:
            write(mine, lambda tx: _transition(tx, key, "2", outbox))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    holder = threading.Thread(target=other_replica)
    holder.start()
    assert locked.wait(10)
    writer = threading.Thread(target=my_writer)
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive()  # waiting for the lock, as a locking read would
    release.set()
    holder.join(10)
    writer.join(10)
    assert isinstance(outcome[0], StoreConflict) and outcome[0].retry_at_once
    assert read(mine, lambda tx: tx.get_execution(*key)).state == "9"


def test_several_executions_are_guarded_in_one_statement(
    stores: tuple[Store, Store], messages: list[str]
) -> None:
    mine, other = stores
    keys = [("f", "a"), ("f", "b")]
    with mine.transaction() as tx:
        tx.lock_executions(keys)
        ids = [tx.insert_execution(exec_row(*k)) for k in keys]
        tx.add_timer(TimerRow(ids[0], 1, 5.0, "wait"))
    messages.clear()
    with mine.transaction() as tx:
        tx.lock_executions(keys)
        assert tx.delete_timer(ids[0], 1) is True
        for execution_id in ids:
            _update(tx, execution_id, "2")
    assert len(messages) == 1 and "rf_guard_many" in messages[0]
    write(other, lambda tx: (tx.lock_executions(keys[1:]), _update(tx, ids[1], "5")))
    with pytest.raises(StoreConflict), mine.transaction() as tx:
        tx.lock_executions(keys)
        _update(tx, ids[0], "3")
    assert [r.state for r in read(mine, lambda tx: [tx.get_execution(*k) for k in keys])] == [
        "2",
        "5",
    ]
    assert read(mine, lambda tx: tx.list_timers(ids[0])) == []


def test_a_savepoint_rolled_back_keeps_the_guard_and_forgets_what_it_wrote(
    stores: tuple[Store, Store],
) -> None:
    mine, _ = stores
    key = ("f", "a")
    outbox = write(mine, lambda tx: _transition_new(tx, key))
    with mine.transaction() as tx:
        with pytest.raises(RuntimeError), tx.savepoint():
            _transition(tx, key, "2", outbox)
            raise RuntimeError("refused")
        tx.set_meta("k", "v")
    assert read(mine, lambda tx: tx.get_execution(*key)).state != "2"
    write(mine, lambda tx: _transition(tx, key, "3", outbox))
    assert read(mine, lambda tx: tx.get_execution(*key)).state == "3"


# -- the memory alone ---------------------------------------------------------------------------


def _entry(name: str, status: str = "Running") -> Remembered:
    return Remembered(exec_row("f", name, status=status), 1, (), ())


def test_the_memory_keeps_the_newest_and_no_ended_execution() -> None:
    memory = WriterMemory(capacity=2)
    memory.remember([_entry("a"), _entry("b"), _entry("c"), _entry("d", status="Succeeded")])
    assert len(memory) == 2
    assert memory.recall([("f", "a")]) is None  # the oldest went first
    assert memory.recall([("f", "b"), ("f", "c")]) is not None
    assert memory.recall([("f", "d")]) is None
    memory.remember([_entry("c", status="Failed")])  # ended: forgotten
    assert memory.recall([("f", "c")]) is None


def test_the_memory_pauses_after_many_failed_guards() -> None:
    memory = WriterMemory()
    memory.remember([_entry("a")])
    for _ in range(MISSES_TO_PAUSE - 1):
        memory.judged(False)
    assert memory.recall([("f", "a")]) is not None
    memory.judged(False)
    paused = sum(memory.recall([("f", "a")]) is None for _ in range(PAUSE))
    assert paused == PAUSE
    assert memory.recall([("f", "a")]) is not None  # trying again


def test_a_timer_deleted_under_its_lease_is_not_remembered(stores: tuple[Store, Store]) -> None:
    mine, _ = stores
    key = ("f", "a")
    with mine.transaction() as tx:
        tx.lock_executions([key])
        execution_id = tx.insert_execution(exec_row(*key))
        tx.add_timer(TimerRow(execution_id, 1, 1.0, "wait"))
    claimed = write(mine, lambda tx: tx.claim_due_timers(now(), "me", now() + LONG, 10))
    assert [t.timer_id for t in claimed] == [1]
    with mine.transaction() as tx:
        tx.lock_executions([key])
        assert tx.delete_timer(execution_id, 1, owner="me") is True
        _update(tx, execution_id, "2")
    (entry,) = mine.memory.recall([key])  # type: ignore[attr-defined]
    assert entry.timers == () and entry.row.state == "2"
