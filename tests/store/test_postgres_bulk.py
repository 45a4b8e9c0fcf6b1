"""The PostgreSQL writer's gathered writes (`relayflow.store.postgres_bulk`) and held-back starts.

The writer sends a run of frequent writes as one statement per table, in a fixed order, and
inserts a new execution whose name the batch's `lock_executions` did not find without a round
trip. These tests check that the result is what the calls' own order gives, that a savepoint
rolled back drops only its rows, and that a start raced by another replica is run again.
"""

from __future__ import annotations

from typing import Any

import pytest

from relayflow.store import HistoryEvent, Store, StoreConflict, StoreError, TimerRow, open_store
from relayflow.store.postgres_bulk import Bulk
from tests.store.rows import LONG, event, exec_row, now, read, write

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def store(store_url: str) -> Any:
    if not store_url.startswith("postgresql"):
        pytest.skip("what only the PostgreSQL writer does")
    opened = open_store(store_url)
    yield opened
    opened.close()


def _update(tx: Any, execution_id: int, state: str, status: str = "Running") -> None:
    tx.update_execution(
        execution_id, status=status, state=state, output=None, error="", cause="", stopped=None
    )


def test_a_run_of_writes_gives_what_the_calls_order_gives(store: Store) -> None:
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    old = write(store, lambda tx: tx.add_outbox(a, {"old": 1}, "me", now() + LONG))
    write(store, lambda tx: tx.add_timer(TimerRow(a, 1, 5.0, "wait")))
    with store.transaction() as tx:
        tx.lock_executions([("f", "a")])
        _update(tx, a, '{"n": 1}')
        tx.append_events(a, [event(1), event(2)])
        assert tx.delete_outbox(old) is True
        new = tx.add_outbox(a, {"new": 1}, "me", now() + LONG)
        gone = tx.add_outbox(a, {"gone": 1}, "me", now() + LONG)
        assert tx.delete_outbox(gone) is True  # added, then deleted, in one run
        assert tx.delete_timer(a, 1) is True
        tx.add_timer(TimerRow(a, 1, 9.0, "again"))  # deleted, then added again
        tx.add_timer(TimerRow(a, 2, 7.0, "wait"))
        tx.add_timer(TimerRow(a, 2, 8.0, "moved"))  # the last one counts
        _update(tx, a, '{"n": 2}', status="Succeeded")
    found = read(store, lambda tx: tx.get_execution("f", "a"))
    assert (found.state, found.status) == ('{"n": 2}', "Succeeded")
    assert [o.id for o in read(store, lambda tx: tx.list_outbox(a))] == [new]
    assert [(t.timer_id, t.fire_at, t.kind) for t in read(store, lambda tx: tx.list_timers(a))] == [
        (1, 9.0, "again"),
        (2, 8.0, "moved"),
    ]
    assert [e.event_id for e in read(store, lambda tx: tx.list_events(a, 0, 10))] == [1, 2]


def test_a_savepoint_rolled_back_drops_only_its_rows(store: Store) -> None:
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    with store.transaction() as tx:
        with tx.savepoint():
            tx.append_events(a, [event(1)])
        with pytest.raises(KeyError), tx.savepoint():
            tx.append_events(a, [event(2)])
            _update(tx, a, '{"undone": 1}')
            raise KeyError("undone")
        with tx.savepoint():
            tx.append_events(a, [event(3)])
    assert [e.event_id for e in read(store, lambda tx: tx.list_events(a, 0, 10))] == [1, 3]
    assert read(store, lambda tx: tx.get_execution("f", "a")).state == "{}"


def test_nul_is_refused_by_the_call_that_gives_it(store: Store) -> None:
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    with store.transaction() as tx:
        with pytest.raises(StoreError, match="NUL"), tx.savepoint():
            tx.append_events(a, [HistoryEvent(1, 0, "StepEntered", "a\x00b", 1.0, {})])
        with pytest.raises(StoreError, match="NUL"), tx.savepoint():
            _update(tx, a, "a\x00b")
        tx.append_events(a, [event(2)])
    assert [e.event_id for e in read(store, lambda tx: tx.list_events(a, 0, 10))] == [2]


def test_a_start_of_a_name_the_batch_did_not_find_is_held_back(store: Store) -> None:
    with store.transaction() as tx:
        tx.lock_executions([("f", "new"), ("f", "twice")])
        new = tx.insert_execution(exec_row("f", "new"))
        assert new is not None and tx.lock_execution(new).name == "new"  # from memory
        _update(tx, new, '{"started": 1}')
        first = tx.insert_execution(exec_row("f", "twice"))
        assert tx.insert_execution(exec_row("f", "twice", status="Other")) is None
        assert tx.get_execution("f", "twice", lock=True).id == first
    assert read(store, lambda tx: tx.get_execution("f", "new")).state == '{"started": 1}'
    assert read(store, lambda tx: tx.count_executions()) == 2


def test_a_start_raced_by_another_replica_is_run_again(store: Store, store_url: str) -> None:
    other = open_store(store_url)
    try:
        conflict = pytest.raises(StoreConflict, match="run the transaction again")
        with conflict, store.transaction() as tx:
            tx.lock_executions([("f", "raced")])
            # Another replica starts the same name and commits first.
            write(other, lambda tx2: tx2.insert_execution(exec_row("f", "raced")))
            assert tx.insert_execution(exec_row("f", "raced", status="Mine")) is not None
            tx.set_meta("acted", "on a wrong answer")
        assert read(store, lambda tx: tx.get_meta("acted")) is None
        # Run again, the batch finds theirs.
        with store.transaction() as tx:
            tx.lock_executions([("f", "raced")])
            assert tx.insert_execution(exec_row("f", "raced", status="Mine")) is None
        assert read(store, lambda tx: tx.get_execution("f", "raced")).status == "Running"
    finally:
        other.close()


def test_a_bulk_keeps_a_timer_added_after_its_deletion_for_a_later_run() -> None:
    first, later = Bulk(), Bulk()
    first.timers_deleted[1, 1] = None
    assert first.conflicts((1, 1)) and not first.conflicts((1, 2))
    later.timers[1, 1] = (1, 1, 2.0, "wait")
    assert first.absorb(later) is False
    later.timers.clear()
    later.events.append((1, 1, 0, "t", "s", 1.0, "{}"))
    assert first.absorb(later) is True and first.events == later.events


def test_one_row_goes_as_scalars_and_several_as_arrays() -> None:
    from relayflow.store.postgres_sql import execute_named, render

    def named(sql: str, args: Any) -> str:
        return execute_named(sql, args) or render(sql, args)

    def heads(bulk: Bulk) -> list[str]:
        return [text.partition("(")[0] for text in bulk.statements(named)]

    one = Bulk()
    one.updates[7] = ("Running", "{}", None, "", "", None)
    one.outbox.append((3, 7, "{}", "me", 10.0))
    one.timers[7, 2] = (7, 2, 5.0, "timeout")
    one.outbox_deleted.append(2)
    one.timers_deleted[7, 1] = None
    assert heads(one) == [
        "EXECUTE rf_update_execution",
        "EXECUTE rf_insert_outbox",
        "EXECUTE rf_insert_timer",
        "EXECUTE rf_delete_outbox",
        "EXECUTE rf_delete_timer",
    ]
    two = Bulk()
    two.updates.update({7: one.updates[7], 8: one.updates[7]})
    two.outbox += [(3, 7, "{}", "me", 10.0), (4, 8, "{}", "me", 10.0)]
    two.timers.update({(7, 2): (7, 2, 5.0, "timeout"), (8, 2): (8, 2, 5.0, "timeout")})
    two.outbox_deleted += [1, 2]
    two.timers_deleted.update({(7, 1): None, (8, 1): None})
    assert heads(two) == [
        "EXECUTE rf_update_executions",
        "EXECUTE rf_insert_outboxes",
        "EXECUTE rf_insert_timers",
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "EXECUTE rf_delete_outboxes",
        "EXECUTE rf_delete_timers",
        "SET LOCAL plan_cache_mode TO DEFAULT",
    ]


def test_typed_arrays_are_written_as_literal_writes_their_values() -> None:
    from relayflow.store.postgres_sql import Array, literal

    assert literal(Array(["it's", None, ""], "text")) == "ARRAY['it''s',NULL,'']::text[]"
    assert literal(Array([3, -4, None], "bigint")) == "ARRAY[3,-4,NULL]::bigint[]"
    assert literal(Array([0.5, -2.5, None], "float8")) == "ARRAY[0.5,(-2.5),NULL]::float8[]"
    assert literal(Array([], "float8")) == "'{}'::float8[]"
    # The float8 short way writes each value as `literal` does, whatever its kind.
    odd = [1e300, 5e-324, -0.0, 0.0, 7, -7, float("nan"), float("inf"), float("-inf"), None]
    inner = ",".join(literal(v) for v in odd)
    assert literal(Array(odd, "float8")) == f"ARRAY[{inner}]::float8[]"
    with pytest.raises(StoreError, match="NUL"):
        literal(Array(["a\x00b"], "text"))


def test_commit_goes_with_the_last_message_once_the_transaction_has_sent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_commit_alone(conn: Any) -> None:
        raise AssertionError("COMMIT was sent alone")

    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    monkeypatch.setattr(store, "_commit", no_commit_alone)
    with store.transaction() as tx:
        tx.lock_executions([("f", "a")])
        tx.append_events(a, [event(1)])
        _update(tx, a, '{"n": 1}')
    assert read(store, lambda tx: tx.get_execution("f", "a")).state == '{"n": 1}'
    assert [e.event_id for e in read(store, lambda tx: tx.list_events(a, 0, 10))] == [1]


def test_a_connection_lost_with_the_commit_on_its_way_has_an_unknown_outcome(
    store: Store,
) -> None:
    with pytest.raises(StoreError, match="outcome is unknown") as info, store.transaction() as tx:
        tx.get_meta("k")  # sent: the COMMIT goes with what follows
        tx.set_meta("k", "v")
        execute = tx._execute  # type: ignore[attr-defined]

        def lose(text: str, *, retry: bool) -> Any:
            if text.endswith("COMMIT"):
                tx.conn.close()  # type: ignore[attr-defined]
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return execute(text, retry=retry)

        tx._execute = lose  # type: ignore[attr-defined]
    assert not isinstance(info.value, StoreConflict)
    write(store, lambda tx: tx.set_meta("k", "again"))  # a new connection
    assert read(store, lambda tx: tx.get_meta("k")) == "again"


def test_without_prepared_statements_the_same_writes_go_as_plain_sql(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayflow.store.postgres import PostgresStore

    monkeypatch.setattr(PostgresStore, "_name_statements", lambda self, conn: False)
    with store.transaction() as tx:
        tx.lock_executions([("f", "a"), ("f", "b")])
        a = tx.insert_execution(exec_row("f", "a"))
        tx.append_events(a, [event(1)])
        row_id = tx.add_outbox(a, {"n": 1}, "me", now() + LONG)
        tx.add_timer(TimerRow(a, 1, 5.0, "wait"))
    with store.transaction() as tx:
        tx.lock_executions([("f", "a")])
        assert tx.delete_outbox(row_id) is True and tx.delete_timer(a, 1) is True
        _update(tx, a, '{"n": 2}', status="Succeeded")
    assert read(store, lambda tx: tx.get_execution("f", "a")).status == "Succeeded"
    assert read(store, lambda tx: (tx.list_outbox(a), tx.list_timers(a))) == ([], [])


def test_a_reader_reads_an_execution_with_its_flow_and_definition_at_once(store: Store) -> None:
    from tests.store.rows import flow_row

    def fill(tx: Any) -> None:
        tx.create_flow(flow_row("f", 1, "def-1"))
        tx.insert_execution(exec_row("f", "a"))

    write(store, fill)
    with store.reader() as tx:
        assert tx.get_execution("f", "none") is None
        found = tx.get_execution("f", "a")
        sends = tx._send  # type: ignore[attr-defined]
        tx._send = lambda *a, **k: pytest.fail("a second round trip")  # type: ignore[attr-defined]
        assert found is not None and found.name == "a"
        assert tx.get_flow("f") == flow_row("f", 1, "def-1")
        assert tx.flow_definition("f", 1) == "def-1"
        tx._send = sends  # type: ignore[attr-defined]
        assert tx.flow_definition("f", 2) is None  # not the execution's: read


def test_the_batch_locks_read_the_flows_of_new_names_for_its_starts(store: Store) -> None:
    from tests.store.rows import flow_row

    def fill(tx: Any) -> None:
        for name in ("f", "g"):
            tx.create_flow(flow_row(name))
        tx.insert_execution(exec_row("g", "old"))

    write(store, fill)
    for keys in ([("f", "new")], [("f", "new"), ("g", "old"), ("none", "x")]):
        with store.transaction() as tx:
            tx.lock_executions(keys)
            sends = tx._send  # type: ignore[attr-defined]
            tx._send = lambda *a, **k: pytest.fail("a round trip")  # type: ignore[attr-defined]
            assert tx.get_flow("f") == flow_row("f")  # from memory
            tx._send = sends  # type: ignore[attr-defined]
            assert tx.get_flow("g") == flow_row("g")  # its execution exists: read
            assert tx.get_flow("none") is None


def test_checked_deletions_keep_one_generic_plan_and_leave_the_setting_as_it_was(
    store: Store,
) -> None:
    """The deletions run with PostgreSQL's generic plan (planned once, not at every EXECUTE),
    and the rest of the transaction with the database's own plan_cache_mode.

    Several rows' deletions (arrays) are given that plan by `GENERIC_PLANS`; one row's
    (scalars) settle on it by themselves after the five custom plans PostgreSQL tries first.
    """
    a = write(store, lambda tx: tx.insert_execution(exec_row("f", "a")))
    plans: list[Any] = []
    for n in range(8):
        rows = [
            write(
                store, lambda tx, n=n, k=k: tx.add_outbox(a, {"n": n, "k": k}, "me", now() + LONG)
            )
            for k in range(3)
        ]
        for k in range(3):
            write(store, lambda tx, n=n, k=k: tx.add_timer(TimerRow(a, 10 * n + k, 5.0, "wait")))
        store.memory.clear()  # type: ignore[attr-defined]  # the locking read: it sees them
        with store.transaction() as tx:  # two rows of each: the array statements
            tx.lock_executions([("f", "a")])
            assert tx.delete_outbox(rows[0]) is True and tx.delete_outbox(rows[1]) is True
            assert tx.delete_timer(a, 10 * n) is True and tx.delete_timer(a, 10 * n + 1) is True
            tx.flush()  # type: ignore[attr-defined]
            assert tx._all("SHOW plan_cache_mode") == [("auto",)]  # type: ignore[attr-defined]
        store.memory.clear()  # type: ignore[attr-defined]
        with store.transaction() as tx:  # one row of each: the scalar statements
            tx.lock_executions([("f", "a")])
            assert tx.delete_outbox(rows[2]) is True and tx.delete_timer(a, 10 * n + 2) is True
            tx.flush()  # type: ignore[attr-defined]
            assert tx._all("SHOW plan_cache_mode") == [("auto",)]  # type: ignore[attr-defined]
            plans = tx._all(  # type: ignore[attr-defined]
                "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE name LIKE 'rf_delete_%' ORDER BY name"
            )
    found = {name: (generic, custom) for name, generic, custom in plans}
    assert sorted(found) == [
        "rf_delete_outbox",
        "rf_delete_outboxes",
        "rf_delete_timer",
        "rf_delete_timers",
    ]
    for name in ("rf_delete_outboxes", "rf_delete_timers"):
        assert found[name][1] == 0 and found[name][0] >= 8, found
    for name in ("rf_delete_outbox", "rf_delete_timer"):
        assert found[name][1] <= 5 and found[name][0] >= 3, found
    with store.transaction() as tx:  # the other one-row statements settle the same way
        plans = tx._all(  # type: ignore[attr-defined]
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE name IN ('rf_insert_outbox', 'rf_insert_timer')"
        )
    assert len(plans) == 2 and all(custom <= 5 and generic >= 3 for _, generic, custom in plans)
    assert read(store, lambda tx: (tx.list_outbox(a), tx.list_timers(a))) == ([], [])
