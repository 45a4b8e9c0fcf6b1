"""The store conformance suite: every operation of the driver interface, on every driver.

Each test runs once per driver in `tests/store/conftest.py`'s `STORES` (memory://, a SQLite
file and PostgreSQL), through `relayflow.store.open_store`, so a driver is held to the same
behaviour as the others. The suite is in several modules:

- test_conformance.py: transactions and savepoints, metadata, flows, executions, history,
  quarantine, the read-only view;
- test_conformance_work.py: timers, the outbox, leases, claims, renewals, releases, nonces;
- test_conformance_replicas.py: two stores on one URL standing for two replicas (races, locks,
  notifications); skipped where the driver says it serves a single engine (`single_engine`).

A new driver (CockroachDB, YugabyteDB, ...): register it under its URL scheme, add an entry to
`STORES` that yields the URL of an empty store, and run `pytest tests/store -k <its id>`.
Leases are given with real time (`rows.now()`), since drivers for several replicas measure
them on the database's clock; no test depends on how fast the machine is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from relayflow.store import Store, StoreError, TimerRow, Transaction
from tests.store.rows import LONG, event, exec_row, flow_row, now, peek, raw, read, write

# ---------------------------------------------------------------------------------------------
# Transactions


def test_transaction_commits_and_rolls_back(store: Store) -> None:
    write(store, lambda tx: tx.set_meta("a", "1"))

    def fail(tx: Transaction) -> None:
        tx.set_meta("b", "2")
        tx.put_flow(flow_row())
        tx.insert_execution(exec_row())
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        write(store, fail)
    assert read(store, lambda tx: tx.get_meta("a")) == "1"
    assert read(store, lambda tx: tx.get_meta("b")) is None
    assert read(store, lambda tx: tx.get_flow("f")) is None
    assert read(store, lambda tx: tx.count_executions()) == 0
    # The store is usable after a rollback.
    write(store, lambda tx: tx.set_meta("b", "3"))
    assert read(store, lambda tx: tx.get_meta("b")) == "3"


def test_savepoint_rollback_undoes_only_its_writes(store: Store) -> None:
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


def test_nested_savepoints(store: Store) -> None:
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
    keys = ["outer", "inner", "outer2", "gone", "gone-inner"]
    values = read(store, lambda tx: {k: tx.get_meta(k) for k in keys})
    assert values == {"outer": "1", "inner": None, "outer2": "1", "gone": None, "gone-inner": None}


def test_a_savepoint_that_succeeds_is_kept(store: Store) -> None:
    with store.transaction() as tx, tx.savepoint():
        tx.set_meta("k", "v")
    assert read(store, lambda tx: tx.get_meta("k")) == "v"


def test_notifications_are_accepted_by_every_driver(store: Store) -> None:
    # Drivers that cannot notify ignore them; the others send them at commit.
    with store.transaction() as tx:
        tx.notify("relayflow_test", "payload")
        tx.set_meta("k", "v")
    assert read(store, lambda tx: tx.get_meta("k")) == "v"


# ---------------------------------------------------------------------------------------------
# Metadata


def test_meta_values_are_replaced(store: Store) -> None:
    write(store, lambda tx: tx.set_meta("k", "1"))
    write(store, lambda tx: tx.set_meta("k", "2"))
    assert read(store, lambda tx: tx.get_meta("k")) == "2"
    assert read(store, lambda tx: tx.get_meta("missing")) is None


def test_set_meta_if_absent_keeps_the_first_value(store: Store) -> None:
    assert write(store, lambda tx: tx.set_meta_if_absent("secret", "first")) == "first"
    assert write(store, lambda tx: tx.set_meta_if_absent("secret", "second")) == "first"
    assert read(store, lambda tx: tx.get_meta("secret")) == "first"
    with store.transaction() as tx:
        assert tx.set_meta_if_absent("new", "a") == "a"
        assert tx.set_meta_if_absent("new", "b") == "a"


# ---------------------------------------------------------------------------------------------
# Flows


def test_flows_and_their_versions(store: Store) -> None:
    write(store, lambda tx: tx.put_flow(flow_row(version=1, definition="one")))
    write(store, lambda tx: tx.put_flow(flow_row(version=2, definition="two")))
    assert read(store, lambda tx: tx.get_flow("f")) == flow_row(version=2, definition="two")
    assert read(store, lambda tx: tx.flow_definition("f", 1)) == "one"
    assert read(store, lambda tx: tx.flow_definition("f", 2)) == "two"
    assert read(store, lambda tx: tx.flow_definition("f", 3)) is None
    assert read(store, lambda tx: tx.flow_definition("g", 1)) is None
    assert read(store, lambda tx: tx.get_flow("g")) is None
    assert read(store, lambda tx: tx.flow_versions("f")) == [(1, "one"), (2, "two")]
    assert read(store, lambda tx: tx.flow_versions("g")) == []
    # A version written again is replaced, not doubled.
    write(store, lambda tx: tx.put_flow(flow_row(version=2, definition="two again")))
    assert read(store, lambda tx: tx.flow_versions("f")) == [(1, "one"), (2, "two again")]


def test_a_transaction_reads_its_own_flow_changes(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_flow("f") is None
        assert tx.flow_definition("f", 1) is None
        tx.put_flow(flow_row(version=1, definition="one"))
        assert tx.get_flow("f") == flow_row(version=1, definition="one")
        assert tx.flow_definition("f", 1) == "one"
        tx.put_flow(flow_row(version=1, definition="uno"))
        assert tx.flow_definition("f", 1) == "uno"
        assert tx.get_flow("f") == flow_row(version=1, definition="uno")
        assert tx.delete_flow("f") is True
        assert tx.get_flow("f") is None
        assert tx.flow_definition("f", 1) is None


def test_create_flow_refuses_a_taken_name(store: Store) -> None:
    assert write(store, lambda tx: tx.create_flow(flow_row(definition="mine"))) is True
    assert write(store, lambda tx: tx.create_flow(flow_row(version=5, definition="x"))) is False
    assert read(store, lambda tx: tx.get_flow("f")) == flow_row(definition="mine")
    assert read(store, lambda tx: tx.flow_versions("f")) == [(1, "mine")]


def test_get_flow_with_lock_reads_the_flow(store: Store) -> None:
    write(store, lambda tx: tx.put_flow(flow_row()))
    assert write(store, lambda tx: tx.get_flow("f", lock=True)) == flow_row()
    assert write(store, lambda tx: tx.get_flow("nope", lock=True)) is None


def test_list_flows_by_name_after_a_token(store: Store) -> None:
    for name in ["c", "a", "e", "B", "b", "d"]:
        write(store, lambda tx, name=name: tx.put_flow(flow_row(name)))
    # Code point order (upper case first), whatever the database's collation.
    assert [f.name for f in read(store, lambda tx: tx.list_flows("", 10))] == list("Babcde")
    assert [f.name for f in read(store, lambda tx: tx.list_flows("", 2))] == ["B", "a"]
    assert [f.name for f in read(store, lambda tx: tx.list_flows("b", 2))] == ["c", "d"]
    assert [f.name for f in read(store, lambda tx: tx.list_flows("bb", 10))] == ["c", "d", "e"]
    assert read(store, lambda tx: tx.list_flows("e", 10)) == []


def test_delete_flow_removes_everything_of_the_flow(store: Store) -> None:
    def seed(tx: Transaction) -> tuple[int, int]:
        tx.put_flow(flow_row("f", 1))
        tx.put_flow(flow_row("f", 2))
        tx.put_flow(flow_row("g", 1))
        mine = tx.insert_execution(exec_row("f", "e1"))
        other = tx.insert_execution(exec_row("g", "e1"))
        assert mine is not None and other is not None
        for execution_id in (mine, other):
            tx.append_events(execution_id, [event(1), event(2)])
            tx.add_timer(TimerRow(execution_id, 1, 50.0, "wait"))
            tx.add_outbox(execution_id, {"task_id": 3}, "owner", now() + LONG)
            tx.quarantine("state", execution_id, "{bad", "unreadable")
        return mine, other

    mine, other = write(store, seed)
    assert write(store, lambda tx: tx.delete_flow("f")) is True
    assert write(store, lambda tx: tx.delete_flow("f")) is False
    assert write(store, lambda tx: tx.delete_flow("never")) is False
    assert read(store, lambda tx: tx.get_flow("f")) is None
    assert read(store, lambda tx: tx.flow_definition("f", 1)) is None
    assert read(store, lambda tx: tx.flow_versions("f")) == []
    assert read(store, lambda tx: tx.get_execution("f", "e1")) is None
    assert read(store, lambda tx: tx.list_events(mine, 0, 10)) == []
    assert read(store, lambda tx: tx.list_timers(mine)) == []
    assert read(store, lambda tx: tx.list_outbox(mine)) == []
    kept = peek(store, lambda tx: raw(tx, "SELECT execution_id FROM quarantine"))
    assert [r[0] for r in kept] == [other]
    # The other flow is untouched.
    assert read(store, lambda tx: tx.get_flow("g")) == flow_row("g", 1)
    assert read(store, lambda tx: tx.get_execution("g", "e1")) is not None
    assert len(read(store, lambda tx: tx.list_events(other, 0, 10))) == 2
    assert len(read(store, lambda tx: tx.list_timers(other))) == 1
    assert len(read(store, lambda tx: tx.list_outbox(other))) == 1


# ---------------------------------------------------------------------------------------------
# Executions


def test_insert_and_get_executions(store: Store) -> None:
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
    assert write(store, lambda tx: tx.get_execution("g", "e1", lock=True)).id == third
    assert write(store, lambda tx: tx.get_execution("g", "e9", lock=True)) is None


def test_executions_are_unique_by_flow_and_name(store: Store) -> None:
    write(store, lambda tx: tx.insert_execution(exec_row("f", "e1")))
    assert (
        write(store, lambda tx: tx.insert_execution(exec_row("f", "e1", status="Succeeded")))
        is None
    )
    assert read(store, lambda tx: tx.get_execution("f", "e1")).status == "Running"
    assert read(store, lambda tx: tx.count_executions()) == 1
    assert write(store, lambda tx: tx.insert_execution(exec_row("f", "e2"))) is not None
    assert read(store, lambda tx: tx.count_executions()) == 2


def test_a_taken_name_leaves_the_transaction_usable(store: Store) -> None:
    write(store, lambda tx: tx.insert_execution(exec_row("f", "e1")))
    with store.transaction() as tx:
        assert tx.insert_execution(exec_row("f", "e1")) is None
        assert tx.insert_execution(exec_row("f", "e2")) is not None
        tx.set_meta("after", "yes")
    assert read(store, lambda tx: tx.get_meta("after")) == "yes"
    assert read(store, lambda tx: tx.count_executions()) == 2


def test_update_and_count_executions(store: Store) -> None:
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


def test_list_executions_filters_and_pages(store: Store) -> None:
    rows = [
        ("a1", "Running", 100.0),
        ("a_2", "Succeeded", 110.0),
        ("ab", "Running", 120.0),
        ("b1", "Failed", 130.0),
        ("a%", "Running", 140.0),
        ("c", "Succeeded", 150.0),
        ("A", "Running", 160.0),
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
    assert names(status="Running") == sorted(["a1", "ab", "a%", "A"])
    assert names(status="Stopped") == []
    assert names(name_prefix="a") == sorted(["a1", "a_2", "ab", "a%"])
    assert names(name_prefix="a_") == ["a_2"]
    assert names(name_prefix="a%") == ["a%"]
    assert names(name_prefix="b") == ["b1"]
    assert names(started_from=120.0) == sorted(["ab", "b1", "a%", "c", "A"])
    assert names(started_to=120.0) == sorted(["a1", "a_2", "ab"])
    assert names(started_from=110.0, started_to=130.0, status="Running") == ["ab"]
    assert names(name_prefix="a", status="Running", limit=1) == ["a%"]
    assert names(name_prefix="a", status="Running", after="a%", limit=1) == ["a1"]


# ---------------------------------------------------------------------------------------------
# History and quarantine


def test_events_page_in_order(store: Store) -> None:
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    b = write(store, lambda tx: tx.insert_execution(exec_row("f", "b")))
    assert read(store, lambda tx: tx.last_event_id(a)) == 0
    write(store, lambda tx: tx.append_events(a, [event(1, "ExecutionStarted"), event(2)]))
    write(store, lambda tx: tx.append_events(b, [event(1, detail={"x": [1, {"y": None}]})]))
    write(store, lambda tx: tx.append_events(a, [event(i) for i in range(3, 11)]))
    write(store, lambda tx: tx.append_events(a, []))
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
    assert read(store, lambda tx: tx.last_event_id(a)) == 10
    assert read(store, lambda tx: tx.last_event_id(999)) == 0


def test_an_unreadable_event_detail_does_not_fail_the_page(store: Store) -> None:
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    write(store, lambda tx: tx.append_events(a, [event(1), event(2), event(3)]))
    write(store, lambda tx: raw(tx, "UPDATE events SET detail = '{not json' WHERE event_id = 2"))
    write(store, lambda tx: raw(tx, "UPDATE events SET detail = '[1, 2]' WHERE event_id = 3"))
    page = read(store, lambda tx: tx.list_events(a, 0, 10))
    assert [e.event_id for e in page] == [1, 2, 3]
    assert page[0].detail == {"n": 1}
    assert set(page[1].detail) == {"unreadable"} and page[1].detail["unreadable"]
    assert page[2].detail == {"unreadable": "not a JSON object"}


def test_quarantine_and_drop_work(store: Store) -> None:
    def seed(tx: Transaction) -> tuple[int, int]:
        a = tx.insert_execution(exec_row("f", "a"))
        b = tx.insert_execution(exec_row("f", "b"))
        assert a is not None and b is not None
        for execution_id in (a, b):
            tx.add_timer(TimerRow(execution_id, 1, 50.0, "wait"))
            tx.add_timer(TimerRow(execution_id, 2, 60.0, "retry"))
            tx.add_outbox(execution_id, {"task_id": 1}, "me", now() + LONG)
        return a, b

    a, b = write(store, seed)
    with store.transaction() as tx:
        tx.quarantine("state", a, "{broken", "JSONDecodeError: at 1")
        tx.drop_work(a)
    assert read(store, lambda tx: tx.list_timers(a)) == []
    assert read(store, lambda tx: tx.list_outbox(a)) == []
    assert [t.timer_id for t in read(store, lambda tx: tx.list_timers(b))] == [1, 2]
    assert len(read(store, lambda tx: tx.list_outbox(b))) == 1
    kept = peek(
        store, lambda tx: raw(tx, "SELECT kind, execution_id, data, reason FROM quarantine")
    )
    assert [tuple(r) for r in kept] == [("state", a, "{broken", "JSONDecodeError: at 1")]


# ---------------------------------------------------------------------------------------------
# The read-only view


def _seed_everything(store: Store) -> dict[str, int]:
    def seed(tx: Transaction) -> dict[str, int]:
        tx.set_meta("k", "v")
        tx.put_flow(flow_row())
        execution_id = tx.insert_execution(exec_row())
        assert execution_id is not None
        tx.append_events(execution_id, [event(1), event(2)])
        tx.add_timer(TimerRow(execution_id, 1, 10.0, "wait"))
        free = tx.add_outbox(execution_id, {"task_id": 1}, "o", now() - 5)
        held = tx.add_outbox(execution_id, {"task_id": 2}, "o", now() + LONG)
        return {"execution": execution_id, "free": free, "held": held}

    return write(store, seed)


def _everything(store: Store, ids: dict[str, int]) -> dict[str, Any]:
    def look(tx: Transaction) -> dict[str, Any]:
        return {
            "meta": tx.get_meta("k"),
            "nonce": tx.get_meta("nonce-check"),
            "flow": tx.get_flow("f"),
            "versions": tx.flow_versions("f"),
            "executions": tx.list_executions("f", after="", limit=10),
            "events": tx.list_events(ids["execution"], 0, 10),
            "timers": tx.list_timers(ids["execution"]),
            "outbox": tx.list_outbox(ids["execution"]),
            "claimable": [r.id for r in tx.claim_outbox(now(), "peek", now() + LONG, 10)],
        }

    return peek(store, look)


READ_ONLY_WRITES: dict[str, Any] = {
    "set_meta": lambda tx, ids: tx.set_meta("k", "changed"),
    "set_meta_if_absent": lambda tx, ids: tx.set_meta_if_absent("k2", "v"),
    "use_nonce": lambda tx, ids: tx.use_nonce("n", now(), 300.0),
    "create_flow": lambda tx, ids: tx.create_flow(flow_row("g")),
    "put_flow": lambda tx, ids: tx.put_flow(flow_row(version=2)),
    "delete_flow": lambda tx, ids: tx.delete_flow("f"),
    "insert_execution": lambda tx, ids: tx.insert_execution(exec_row(name="e2")),
    "update_execution": lambda tx, ids: tx.update_execution(
        ids["execution"], status="Failed", state="{}", output=None, error="", cause="", stopped=1.0
    ),
    "append_events": lambda tx, ids: tx.append_events(ids["execution"], [event(3)]),
    "quarantine": lambda tx, ids: tx.quarantine("state", ids["execution"], "x", "y"),
    "drop_work": lambda tx, ids: tx.drop_work(ids["execution"]),
    "add_timer": lambda tx, ids: tx.add_timer(TimerRow(ids["execution"], 2, 5.0, "wait")),
    "delete_timer": lambda tx, ids: tx.delete_timer(ids["execution"], 1),
    "claim_due_timers": lambda tx, ids: tx.claim_due_timers(100.0, "x", now() + LONG, 10),
    "add_outbox": lambda tx, ids: tx.add_outbox(ids["execution"], {}, "x", 0.0),
    "delete_outbox": lambda tx, ids: tx.delete_outbox(ids["free"]),
    "claim_outbox": lambda tx, ids: tx.claim_outbox(now(), "x", now() + LONG, 10),
    "renew_outbox": lambda tx, ids: tx.renew_outbox([ids["held"]], "o", now(), now() - 5),
    "release_leases": lambda tx, ids: tx.release_leases(),
}


@pytest.mark.parametrize("operation", sorted(READ_ONLY_WRITES))
def test_the_read_only_view_refuses_writes(store: Store, operation: str) -> None:
    ids = _seed_everything(store)
    before = _everything(store, ids)
    with pytest.raises(StoreError, match="read-only"), store.reader() as tx:
        READ_ONLY_WRITES[operation](tx, ids)
    assert _everything(store, ids) == before
    # The store still works afterwards.
    write(store, lambda tx: tx.set_meta("after", "1"))
    assert read(store, lambda tx: tx.get_meta("after")) == "1"


def test_the_read_only_view_reads(store: Store) -> None:
    ids = _seed_everything(store)
    with store.reader() as tx:
        assert tx.get_meta("k") == "v"
        assert tx.get_flow("f") == flow_row()
        assert tx.get_execution("f", "e1").id == ids["execution"]
        assert [e.event_id for e in tx.list_events(ids["execution"], 0, 10)] == [1, 2]
        assert tx.next_timer_at() == 10.0
        assert tx.count_executions() == 1
        assert tx.flow_definition("f", 1) == "def-1"
        assert tx.last_event_id(ids["execution"]) == 2


def test_a_reader_beside_a_writer(store: Store) -> None:
    write(store, lambda tx: tx.set_meta("k", "old"))
    with store.transaction() as tx:
        tx.set_meta("k", "new")
        if not store.single_engine:  # SQLite's memory store shares one connection
            # Another connection does not see what is not committed yet.
            assert read(store, lambda r: r.get_meta("k")) == "old"
    assert read(store, lambda tx: tx.get_meta("k")) == "new"
