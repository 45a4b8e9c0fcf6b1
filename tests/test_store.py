"""The SQLite store driver, used directly through `open_store` (memory:// and a file)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relayflow.engine.model import HistoryEvent
from relayflow.store import (
    ExecutionRow,
    FlowRow,
    OutboxRow,
    Store,
    StoreError,
    TimerRow,
    Transaction,
    open_store,
)


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else "sqlite:///" + str(tmp_path / "s.db")
    opened = open_store(url)
    yield opened
    opened.close()


def flow_row(name: str = "f", version: int = 1, definition: str = "def-1") -> FlowRow:
    return FlowRow(name, f"id-{name}", definition, "desc", "FDL", "", version, 10.0, 10.0 + version)


def exec_row(
    flow: str = "f", name: str = "e1", status: str = "Running", started: float = 100.0
) -> ExecutionRow:
    return ExecutionRow(
        0,
        f"uid-{flow}-{name}",
        flow,
        name,
        f"id-{flow}",
        1,
        status,
        '{"a": 1}',
        None,
        "",
        "",
        started,
        None,
        "{}",
        "",
    )


def event(event_id: int, kind: str = "StepEntered", detail: Any = None) -> HistoryEvent:
    return HistoryEvent(event_id, 0, kind, "step", 100.0 + event_id, detail or {"n": event_id})


class _Rollback(Exception):
    pass


def peek(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    """Run ``fn`` in a write transaction that is then rolled back (to look at leases)."""
    result = None
    with pytest.raises(_Rollback), store.transaction() as tx:
        result = fn(tx)
        raise _Rollback
    return result


def write(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    with store.transaction() as tx:
        return fn(tx)


def read(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    with store.reader() as tx:
        return fn(tx)


# ---------------------------------------------------------------------------------------------
# Opening


def test_schema_creation_is_idempotent(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    first = open_store(url)
    write(first, lambda tx: tx.put_flow(flow_row()))
    second = open_store(url)  # while the first is open
    assert read(second, lambda tx: tx.get_flow("f")) == flow_row()
    second.close()
    first.close()
    third = open_store(url)
    assert read(third, lambda tx: tx.get_flow("f")) == flow_row()
    assert read(third, lambda tx: tx.flow_definition("f", 1)) == "def-1"
    third.close()


def test_commits_survive_reopening(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    s = open_store(url)
    write(s, lambda tx: tx.set_meta("token_secret", "abc"))
    execution_id = write(s, lambda tx: tx.insert_execution(exec_row()))
    write(s, lambda tx: tx.append_events(execution_id, [event(1), event(2)]))
    s.close()
    again = open_store(url)
    assert read(again, lambda tx: tx.get_meta("token_secret")) == "abc"
    assert [e.event_id for e in read(again, lambda tx: tx.list_events(execution_id, 0, 10))] == [
        1,
        2,
    ]
    again.close()


def test_relative_path_and_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///rel.db?synchronous=normal")
    write(s, lambda tx: tx.set_meta("k", "v"))
    s.close()
    assert (tmp_path / "rel.db").exists()
    upper = open_store("sqlite:///rel.db?synchronous=FULL")
    assert read(upper, lambda tx: tx.get_meta("k")) == "v"
    upper.close()


def test_memory_stores_are_private():
    a, b = open_store("memory://"), open_store("memory://")
    write(a, lambda tx: tx.put_flow(flow_row()))
    assert read(b, lambda tx: tx.get_flow("f")) is None
    assert read(a, lambda tx: tx.get_flow("f")) == flow_row()
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgres://u:pw@db/x", ["no store driver", "postgres://", "memory://", "sqlite://"]),
        ("relayflow.db", ["must be a URL", "known"]),
        ("sqlite:///x.db?bogus=1", ["unknown option", "bogus", "synchronous"]),
        ("sqlite:///x.db?synchronous=off", ["synchronous=off", "full or normal"]),
        ("sqlite://", ["needs a path"]),
        ("sqlite:///", ["needs a path"]),
        ("sqlite:////no/such/folder/anywhere/x.db", ["folder", "does not exist"]),
    ],
)
def test_bad_urls_give_a_clear_store_error(url, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    assert "pw" not in message


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a SQLite database, not even close" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        open_store("sqlite:///" + str(path))


def test_engine_lock(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    a, b = open_store(url), open_store(url)
    a.acquire_engine_lock()
    a.acquire_engine_lock()  # again by its holder: fine
    with pytest.raises(StoreError, match="another relayflow engine"):
        b.acquire_engine_lock()
    a.close()
    b.acquire_engine_lock()
    b.close()
    memory = open_store("memory://")
    memory.acquire_engine_lock()
    memory.acquire_engine_lock()
    memory.close()


# ---------------------------------------------------------------------------------------------
# Transactions


def test_transaction_commits_and_rolls_back(store):
    write(store, lambda tx: tx.set_meta("a", "1"))

    def fail(tx: Transaction) -> None:
        tx.set_meta("b", "2")
        tx.put_flow(flow_row())
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        write(store, fail)
    assert read(store, lambda tx: tx.get_meta("a")) == "1"
    assert read(store, lambda tx: tx.get_meta("b")) is None
    assert read(store, lambda tx: tx.get_flow("f")) is None
    # The store is usable after a rollback.
    write(store, lambda tx: tx.set_meta("b", "3"))
    assert read(store, lambda tx: tx.get_meta("b")) == "3"


def test_meta_values_are_replaced(store):
    write(store, lambda tx: tx.set_meta("k", "1"))
    write(store, lambda tx: tx.set_meta("k", "2"))
    assert read(store, lambda tx: tx.get_meta("k")) == "2"
    assert read(store, lambda tx: tx.get_meta("missing")) is None


def test_savepoint_rollback_undoes_only_its_writes(store):
    with store.transaction() as tx:
        tx.set_meta("before", "1")
        with pytest.raises(KeyError), tx.savepoint():
            tx.set_meta("inside", "1")
            tx.put_flow(flow_row())
            raise KeyError("undo")
        tx.set_meta("after", "1")
        assert tx.get_meta("inside") is None
    assert read(store, lambda tx: tx.get_meta("before")) == "1"
    assert read(store, lambda tx: tx.get_meta("after")) == "1"
    assert read(store, lambda tx: tx.get_meta("inside")) is None
    assert read(store, lambda tx: tx.get_flow("f")) is None


def test_nested_savepoints(store):
    with store.transaction() as tx:
        with tx.savepoint():
            tx.set_meta("outer", "1")
            with pytest.raises(KeyError), tx.savepoint():
                tx.set_meta("inner", "1")
                raise KeyError("inner only")
            tx.set_meta("outer2", "1")
        with pytest.raises(KeyError), tx.savepoint():
            tx.set_meta("gone", "1")
            with tx.savepoint():
                tx.set_meta("gone-inner", "1")
            raise KeyError("outer")
    values = read(
        store, lambda tx: {k: tx.get_meta(k) for k in ["outer", "inner", "outer2", "gone"]}
    )
    assert values == {"outer": "1", "inner": None, "outer2": "1", "gone": None}
    assert read(store, lambda tx: tx.get_meta("gone-inner")) is None


def test_a_savepoint_that_succeeds_is_kept(store):
    with store.transaction() as tx, tx.savepoint():
        tx.set_meta("k", "v")
    assert read(store, lambda tx: tx.get_meta("k")) == "v"


# ---------------------------------------------------------------------------------------------
# Flows


def test_flows_and_their_versions(store):
    write(store, lambda tx: tx.put_flow(flow_row(version=1, definition="one")))
    write(store, lambda tx: tx.put_flow(flow_row(version=2, definition="two")))
    assert read(store, lambda tx: tx.get_flow("f")) == flow_row(version=2, definition="two")
    assert read(store, lambda tx: tx.flow_definition("f", 1)) == "one"
    assert read(store, lambda tx: tx.flow_definition("f", 2)) == "two"
    assert read(store, lambda tx: tx.flow_definition("f", 3)) is None
    assert read(store, lambda tx: tx.flow_definition("g", 1)) is None
    assert read(store, lambda tx: tx.get_flow("g")) is None


def test_list_flows_by_name_after_a_token(store):
    for name in ["c", "a", "e", "b", "d"]:
        write(store, lambda tx, name=name: tx.put_flow(flow_row(name)))
    assert [f.name for f in read(store, lambda tx: tx.list_flows("", 10))] == list("abcde")
    assert [f.name for f in read(store, lambda tx: tx.list_flows("", 2))] == ["a", "b"]
    assert [f.name for f in read(store, lambda tx: tx.list_flows("b", 2))] == ["c", "d"]
    assert [f.name for f in read(store, lambda tx: tx.list_flows("bb", 10))] == ["c", "d", "e"]
    assert read(store, lambda tx: tx.list_flows("e", 10)) == []


def test_delete_flow_removes_everything_of_the_flow(store):
    def seed(tx: Transaction) -> tuple[int, int]:
        tx.put_flow(flow_row("f", 1))
        tx.put_flow(flow_row("f", 2))
        tx.put_flow(flow_row("g", 1))
        mine = tx.insert_execution(exec_row("f", "e1"))
        other = tx.insert_execution(exec_row("g", "e1"))
        for execution_id in (mine, other):
            tx.append_events(execution_id, [event(1), event(2)])
            tx.add_timer(TimerRow(execution_id, 1, 50.0, "wait"))
            tx.add_outbox(execution_id, {"task_id": 3}, "owner", 60.0)
        return mine, other

    mine, other = write(store, seed)
    assert write(store, lambda tx: tx.delete_flow("f")) is True
    assert write(store, lambda tx: tx.delete_flow("f")) is False
    assert write(store, lambda tx: tx.delete_flow("never")) is False
    assert read(store, lambda tx: tx.get_flow("f")) is None
    assert read(store, lambda tx: tx.flow_definition("f", 1)) is None
    assert read(store, lambda tx: tx.get_execution("f", "e1")) is None
    assert read(store, lambda tx: tx.list_events(mine, 0, 10)) == []
    timers = peek(store, lambda tx: tx.claim_due_timers(1000.0, "peek", 2000.0, 10))
    assert [t.execution_id for t in timers] == [other]
    outbox = peek(store, lambda tx: tx.claim_outbox(1000.0, "peek", 2000.0, 10))
    assert [o.execution_id for o in outbox] == [other]
    # The other flow is untouched.
    assert read(store, lambda tx: tx.get_flow("g")) == flow_row("g", 1)
    assert read(store, lambda tx: tx.get_execution("g", "e1")) is not None
    assert len(read(store, lambda tx: tx.list_events(other, 0, 10))) == 2


# ---------------------------------------------------------------------------------------------
# Executions


def test_insert_and_get_executions(store):
    first = write(store, lambda tx: tx.insert_execution(exec_row("f", "e1")))
    second = write(store, lambda tx: tx.insert_execution(exec_row("f", "e2")))
    third = write(store, lambda tx: tx.insert_execution(exec_row("g", "e1")))
    assert len({first, second, third}) == 3 and min(first, second, third) > 0
    row = read(store, lambda tx: tx.get_execution("f", "e1"))
    assert row == dataclasses.replace(exec_row("f", "e1"), id=first)
    assert read(store, lambda tx: tx.get_execution("f", "e3")) is None
    assert read(store, lambda tx: tx.get_execution("h", "e1")) is None
    assert write(store, lambda tx: tx.lock_execution(second)).name == "e2"
    assert write(store, lambda tx: tx.lock_execution(10_000)) is None


def test_executions_are_unique_by_flow_and_name(store):
    write(store, lambda tx: tx.insert_execution(exec_row("f", "e1")))
    assert (
        write(store, lambda tx: tx.insert_execution(exec_row("f", "e1", status="Succeeded")))
        is None
    )
    assert read(store, lambda tx: tx.get_execution("f", "e1")).status == "Running"
    assert read(store, lambda tx: tx.count_executions()) == 1
    assert write(store, lambda tx: tx.insert_execution(exec_row("f", "e2"))) is not None
    assert read(store, lambda tx: tx.count_executions()) == 2


def test_update_and_count_executions(store):
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    write(store, lambda tx: tx.insert_execution(exec_row("f", "b")))
    write(
        store,
        lambda tx: tx.update_execution(
            a,
            status="Failed",
            state='{"s": 1}',
            output='{"o": 1}',
            error="E",
            cause="C",
            stopped=200.0,
        ),
    )
    row = read(store, lambda tx: tx.get_execution("f", "a"))
    assert (row.status, row.state, row.output, row.error, row.cause, row.stopped) == (
        "Failed",
        '{"s": 1}',
        '{"o": 1}',
        "E",
        "C",
        200.0,
    )
    assert row.input == '{"a": 1}' and row.uid == "uid-f-a"
    assert read(store, lambda tx: tx.count_executions()) == 2
    assert read(store, lambda tx: tx.count_executions("Running")) == 1
    assert read(store, lambda tx: tx.count_executions("Failed")) == 1
    assert read(store, lambda tx: tx.count_executions("Stopped")) == 0


def test_list_executions_filters_and_pages(store):
    rows = [
        ("a1", "Running", 100.0),
        ("a_2", "Succeeded", 110.0),
        ("ab", "Running", 120.0),
        ("b1", "Failed", 130.0),
        ("a%", "Running", 140.0),
        ("c", "Succeeded", 150.0),
    ]

    def seed(tx: Transaction) -> None:
        for name, status, started in rows:
            tx.insert_execution(exec_row("f", name, status, started))
        tx.insert_execution(exec_row("other", "a0"))

    write(store, seed)

    def names(**kwargs: Any) -> list[str]:
        kwargs.setdefault("after", "")
        kwargs.setdefault("limit", 100)
        return [r.name for r in read(store, lambda tx: tx.list_executions("f", **kwargs))]

    everything = sorted(name for name, _, _ in rows)
    assert names() == everything
    assert names(limit=2) == everything[:2]
    assert names(after=everything[1], limit=2) == everything[2:4]
    assert names(after="c") == []
    assert names(status="Running") == sorted(["a1", "ab", "a%"])
    assert names(status="Stopped") == []
    assert names(name_prefix="a") == sorted(["a1", "a_2", "ab", "a%"])
    assert names(name_prefix="a_") == ["a_2"]
    assert names(name_prefix="a%") == ["a%"]
    assert names(name_prefix="b") == ["b1"]
    assert names(started_from=120.0) == sorted(["ab", "b1", "a%", "c"])
    assert names(started_to=120.0) == sorted(["a1", "a_2", "ab"])
    assert names(started_from=110.0, started_to=130.0, status="Running") == ["ab"]
    assert names(name_prefix="a", status="Running", limit=1) == ["a%"]
    assert names(name_prefix="a", status="Running", after="a%", limit=1) == ["a1"]


# ---------------------------------------------------------------------------------------------
# History


def test_events_page_in_order(store):
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    b = write(store, lambda tx: tx.insert_execution(exec_row("f", "b")))
    write(store, lambda tx: tx.append_events(a, [event(1, "ExecutionStarted"), event(2)]))
    write(store, lambda tx: tx.append_events(b, [event(1, detail={"x": [1, {"y": None}]})]))
    write(store, lambda tx: tx.append_events(a, [event(i) for i in range(3, 11)]))
    full = read(store, lambda tx: tx.list_events(a, 0, 100))
    assert [e.event_id for e in full] == list(range(1, 11))
    assert full[0] == event(1, "ExecutionStarted")
    assert read(store, lambda tx: tx.list_events(a, 0, 3)) == full[:3]
    assert read(store, lambda tx: tx.list_events(a, 3, 3)) == full[3:6]
    assert read(store, lambda tx: tx.list_events(a, 9, 3)) == full[9:]
    assert read(store, lambda tx: tx.list_events(a, 10, 3)) == []
    assert read(store, lambda tx: tx.list_events(b, 0, 10)) == [
        event(1, detail={"x": [1, {"y": None}]})
    ]
    assert read(store, lambda tx: tx.list_events(999, 0, 10)) == []


# ---------------------------------------------------------------------------------------------
# Timers


def test_timers_are_claimed_with_leases(store):
    def seed(tx: Transaction) -> None:
        tx.add_timer(TimerRow(1, 3, 30.0, "wait"))
        tx.add_timer(TimerRow(1, 1, 10.0, "retry"))
        tx.add_timer(TimerRow(2, 1, 20.0, "timeout"))
        tx.add_timer(TimerRow(2, 2, 500.0, "flow"))

    write(store, seed)
    assert read(store, lambda tx: tx.next_timer_at()) == 10.0
    assert write(store, lambda tx: tx.claim_due_timers(5.0, "me", 100.0, 10)) == []
    due = write(store, lambda tx: tx.claim_due_timers(25.0, "me", 100.0, 10))
    assert due == [TimerRow(1, 1, 10.0, "retry"), TimerRow(2, 1, 20.0, "timeout")]
    # Leased: not claimed again, by anyone, until the lease runs out.
    assert write(store, lambda tx: tx.claim_due_timers(50.0, "you", 200.0, 10)) == [
        TimerRow(1, 3, 30.0, "wait")
    ]
    assert write(store, lambda tx: tx.claim_due_timers(99.0, "you", 200.0, 10)) == []
    assert read(store, lambda tx: tx.next_timer_at()) == 500.0
    expired = write(store, lambda tx: tx.claim_due_timers(150.0, "you", 300.0, 10))
    assert [(t.execution_id, t.timer_id) for t in expired] == [(1, 1), (2, 1)]
    assert write(store, lambda tx: tx.delete_timer(1, 1)) is True
    assert write(store, lambda tx: tx.delete_timer(1, 1)) is False
    assert write(store, lambda tx: tx.delete_timer(9, 9)) is False


def test_claim_due_timers_respects_limit_and_order(store):
    def seed(tx: Transaction) -> None:
        for i, at in enumerate([5.0, 1.0, 4.0, 2.0, 3.0], start=1):
            tx.add_timer(TimerRow(1, i, at, "wait"))

    write(store, seed)
    first = write(store, lambda tx: tx.claim_due_timers(10.0, "me", 100.0, 2))
    assert [t.fire_at for t in first] == [1.0, 2.0]
    rest = write(store, lambda tx: tx.claim_due_timers(10.0, "me", 100.0, 10))
    assert [t.fire_at for t in rest] == [3.0, 4.0, 5.0]
    assert read(store, lambda tx: tx.next_timer_at()) is None


def test_next_timer_at_with_no_timers(store):
    assert read(store, lambda tx: tx.next_timer_at()) is None


# ---------------------------------------------------------------------------------------------
# Outbox


def test_outbox_add_claim_renew_delete(store):
    payload = {"task_id": 3, "input": {"a": [1, "x"]}, "n": None}
    first = write(store, lambda tx: tx.add_outbox(7, payload, "creator", 100.0))
    second = write(store, lambda tx: tx.add_outbox(8, {"task_id": 4}, "creator", 100.0))
    assert second > first > 0
    # Leased to its creator: nobody claims it before the lease runs out.
    assert write(store, lambda tx: tx.claim_outbox(50.0, "other", 150.0, 10)) == []
    claimed = write(store, lambda tx: tx.claim_outbox(101.0, "other", 150.0, 10))
    assert [(r.id, r.execution_id, r.payload) for r in claimed] == [
        (first, 7, payload),
        (second, 8, {"task_id": 4}),
    ]
    assert write(store, lambda tx: tx.claim_outbox(120.0, "third", 200.0, 10)) == []
    # Only the holder renews.
    write(store, lambda tx: tx.renew_outbox([first], "other", 100.0, 300.0))
    write(store, lambda tx: tx.renew_outbox([second], "creator", 100.0, 300.0))
    again = write(store, lambda tx: tx.claim_outbox(160.0, "third", 400.0, 10))
    assert [r.id for r in again] == [second]
    assert write(store, lambda tx: tx.delete_outbox(first)) is True
    assert write(store, lambda tx: tx.delete_outbox(first)) is False
    assert write(store, lambda tx: tx.claim_outbox(1000.0, "fourth", 2000.0, 10)) == [
        OutboxRow(second, 8, {"task_id": 4})
    ]


def test_outbox_claims_oldest_first_up_to_the_limit(store):
    ids = [write(store, lambda tx, i=i: tx.add_outbox(i, {"i": i}, "x", 0.0)) for i in range(5)]
    first = write(store, lambda tx: tx.claim_outbox(1.0, "me", 100.0, 2))
    assert [r.id for r in first] == ids[:2]
    rest = write(store, lambda tx: tx.claim_outbox(1.0, "me", 100.0, 10))
    assert [r.id for r in rest] == ids[2:]


def test_release_leases(store):
    def seed(tx: Transaction) -> int:
        tx.add_timer(TimerRow(1, 1, 10.0, "wait"))
        return tx.add_outbox(1, {"task_id": 1}, "crashed", 1000.0)

    outbox_id = write(store, seed)
    assert [t.timer_id for t in write(store, lambda tx: tx.claim_due_timers(20.0, "a", 999.0, 9))]
    assert write(store, lambda tx: tx.claim_due_timers(20.0, "b", 999.0, 9)) == []
    assert write(store, lambda tx: tx.claim_outbox(20.0, "b", 999.0, 9)) == []
    write(store, lambda tx: tx.release_leases())
    assert read(store, lambda tx: tx.next_timer_at()) == 10.0
    assert [t.timer_id for t in write(store, lambda tx: tx.claim_due_timers(20.0, "b", 99.0, 9))]
    assert [r.id for r in write(store, lambda tx: tx.claim_outbox(20.0, "b", 99.0, 9))] == [
        outbox_id
    ]


# ---------------------------------------------------------------------------------------------
# The read-only view


def _seed_everything(store: Store) -> dict[str, int]:
    def seed(tx: Transaction) -> dict[str, int]:
        tx.set_meta("k", "v")
        tx.put_flow(flow_row())
        execution_id = tx.insert_execution(exec_row())
        tx.append_events(execution_id, [event(1), event(2)])
        tx.add_timer(TimerRow(execution_id, 1, 10.0, "wait"))
        free = tx.add_outbox(execution_id, {"task_id": 1}, "o", 0.0)
        held = tx.add_outbox(execution_id, {"task_id": 2}, "o", 500.0)
        return {"execution": execution_id, "free": free, "held": held}

    return write(store, seed)


def _everything(store: Store, ids: dict[str, int]) -> dict[str, Any]:
    def look(tx: Transaction) -> dict[str, Any]:
        return {
            "meta": tx.get_meta("k"),
            "flow": tx.get_flow("f"),
            "versions": [tx.flow_definition("f", v) for v in (1, 2)],
            "executions": tx.list_executions("f", after="", limit=10),
            "events": tx.list_events(ids["execution"], 0, 10),
            "timers": tx.claim_due_timers(1000.0, "peek", 2000.0, 10),
            "outbox": tx.claim_outbox(1000.0, "peek", 2000.0, 10),
        }

    return peek(store, look)


READ_ONLY_WRITES: dict[str, Callable[[Transaction, dict[str, int]], Any]] = {
    "set_meta": lambda tx, ids: tx.set_meta("k", "changed"),
    "put_flow": lambda tx, ids: tx.put_flow(flow_row(version=2)),
    "delete_flow": lambda tx, ids: tx.delete_flow("f"),
    "insert_execution": lambda tx, ids: tx.insert_execution(exec_row(name="e2")),
    "update_execution": lambda tx, ids: tx.update_execution(
        ids["execution"], status="Failed", state="{}", output=None, error="", cause="", stopped=1.0
    ),
    "append_events": lambda tx, ids: tx.append_events(ids["execution"], [event(3)]),
    "add_timer": lambda tx, ids: tx.add_timer(TimerRow(ids["execution"], 2, 5.0, "wait")),
    "delete_timer": lambda tx, ids: tx.delete_timer(ids["execution"], 1),
    "claim_due_timers": lambda tx, ids: tx.claim_due_timers(100.0, "x", 5000.0, 10),
    "add_outbox": lambda tx, ids: tx.add_outbox(ids["execution"], {}, "x", 0.0),
    "delete_outbox": lambda tx, ids: tx.delete_outbox(ids["free"]),
    "claim_outbox": lambda tx, ids: tx.claim_outbox(100.0, "x", 5000.0, 10),
    "renew_outbox": lambda tx, ids: tx.renew_outbox([ids["held"]], "o", 1000.0, 5000.0),
    "release_leases": lambda tx, ids: tx.release_leases(),
}


@pytest.mark.parametrize("operation", sorted(READ_ONLY_WRITES))
def test_the_read_only_view_refuses_writes(store, operation):
    ids = _seed_everything(store)
    before = _everything(store, ids)
    with pytest.raises(StoreError, match="read-only"), store.reader() as tx:
        READ_ONLY_WRITES[operation](tx, ids)
    assert _everything(store, ids) == before
    # The store still works afterwards.
    write(store, lambda tx: tx.set_meta("after", "1"))
    assert read(store, lambda tx: tx.get_meta("after")) == "1"


def test_the_read_only_view_reads(store):
    ids = _seed_everything(store)
    with store.reader() as tx:
        assert tx.get_meta("k") == "v"
        assert tx.get_flow("f") == flow_row()
        assert tx.get_execution("f", "e1").id == ids["execution"]
        assert [e.event_id for e in tx.list_events(ids["execution"], 0, 10)] == [1, 2]
        assert tx.next_timer_at() == 10.0
        assert tx.count_executions() == 1
