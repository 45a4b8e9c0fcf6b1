"""Store conformance: a flow's objects (schedules, aliases, published versions) and the columns
of schema version 3 (a flow's execution mode and environment, an execution's published version).

See test_conformance.py for what the suite is. The tests at the end take two stores on one URL
(replicas) and are skipped for single-engine drivers, as in test_conformance_replicas.py.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import pytest

from relayflow.store import FlowObjectRow, Store, StoreError, Transaction
from tests.store.rows import LONG, exec_row, flow_row, now, read, write

WAIT = 30.0  # the longest a step may take (far beyond any lock timeout)


def obj(
    name: str = "o1",
    kind: str = "schedule",
    flow: str = "f",
    due_at: float | None = None,
    data: str = '{"n": 1}',
) -> FlowObjectRow:
    return FlowObjectRow(flow, kind, name, data, 10.0, 11.0, due_at)


def names(rows: list[FlowObjectRow]) -> list[str]:
    return [r.name for r in rows]


# ---------------------------------------------------------------------------------------------
# The new columns


def test_flow_mode_and_environment_are_kept_and_replaced(store: Store) -> None:
    row = dataclasses.replace(flow_row(), execution_mode="Express", environment='{"a": 1}')
    write(store, lambda tx: tx.create_flow(row))
    assert read(store, lambda tx: tx.get_flow("f")) == row
    assert read(store, lambda tx: tx.list_flows("", 10)) == [row]
    again = dataclasses.replace(row, version=2, environment="")
    write(store, lambda tx: tx.put_flow(again))
    assert read(store, lambda tx: tx.get_flow("f", lock=False)) == again
    plain = flow_row("g")
    write(store, lambda tx: tx.create_flow(plain))
    assert read(store, lambda tx: tx.get_flow("g")).execution_mode == "Standard"


def test_an_executions_published_version_is_kept(store: Store) -> None:
    row = dataclasses.replace(exec_row(name="v"), published_version=7)
    new_id = write(store, lambda tx: tx.insert_execution(row))
    write(store, lambda tx: tx.insert_execution(exec_row(name="w")))
    assert read(store, lambda tx: tx.get_execution("f", "v")).published_version == 7
    assert write(store, lambda tx: tx.lock_execution(new_id)).published_version == 7
    listed = read(store, lambda tx: tx.list_executions("f", after="", limit=10))
    assert [(e.name, e.published_version) for e in listed] == [("v", 7), ("w", 0)]


# ---------------------------------------------------------------------------------------------
# Objects


def test_objects_are_created_read_listed_and_deleted(store: Store) -> None:
    def fill(tx: Transaction) -> list[bool]:
        made = [tx.create_object(obj(n)) for n in ("b", "a", "c")]
        made.append(tx.create_object(obj("a", kind="alias")))
        made.append(tx.create_object(obj("a", flow="g")))
        return made

    assert write(store, fill) == [True] * 5
    assert read(store, lambda tx: tx.get_object("f", "schedule", "a")) == obj("a")
    assert read(store, lambda tx: tx.get_object("f", "schedule", "zz")) is None
    assert read(store, lambda tx: tx.get_object("f", "version", "a")) is None
    assert names(read(store, lambda tx: tx.list_objects("f", "schedule"))) == ["a", "b", "c"]
    assert names(read(store, lambda tx: tx.list_objects("f", "schedule", "a", 1))) == ["b"]
    assert names(read(store, lambda tx: tx.list_objects("f", "alias"))) == ["a"]
    assert read(store, lambda tx: tx.list_objects("f", "version")) == []
    assert write(store, lambda tx: tx.delete_object("f", "schedule", "b")) is True
    assert write(store, lambda tx: tx.delete_object("f", "schedule", "b")) is False
    assert names(read(store, lambda tx: tx.list_objects("f", "schedule"))) == ["a", "c"]
    assert read(store, lambda tx: tx.get_object("g", "schedule", "a")) == obj("a", flow="g")
    assert read(store, lambda tx: tx.object_kinds("f")) == ["alias", "schedule"]
    assert read(store, lambda tx: tx.object_kinds("none")) == []


def test_creating_an_object_twice_keeps_the_first(store: Store) -> None:
    assert write(store, lambda tx: tx.create_object(obj(data="first"))) is True
    assert write(store, lambda tx: tx.create_object(obj(data="second"))) is False
    assert read(store, lambda tx: tx.get_object("f", "schedule", "o1")).data == "first"


def test_put_object_creates_or_replaces_and_keeps_the_creation_time(store: Store) -> None:
    assert write(store, lambda tx: tx.put_object(obj(data="one", due_at=5.0))) is True
    later = FlowObjectRow("f", "schedule", "o1", "two", 99.0, 50.0, None)
    assert write(store, lambda tx: tx.put_object(later)) is True
    found = read(store, lambda tx: tx.get_object("f", "schedule", "o1", lock=False))
    assert (found.data, found.created, found.modified, found.due_at) == ("two", 10.0, 50.0, None)


def test_the_read_only_view_refuses_object_writes(store: Store) -> None:
    write(store, lambda tx: tx.create_object(obj(due_at=1.0)))
    for change in (
        lambda tx: tx.create_object(obj("x")),
        lambda tx: tx.put_object(obj("x")),
        lambda tx: tx.delete_object("f", "schedule", "o1"),
        lambda tx: tx.claim_due_objects("schedule", now(), "me", now() + LONG, 10),
    ):
        with pytest.raises(StoreError, match="read-only"), store.reader() as tx:
            change(tx)


def test_due_objects_are_claimed_earliest_first_once(store: Store) -> None:
    t = now()

    def fill(tx: Transaction) -> None:
        tx.create_object(obj("late", due_at=t - 1))
        tx.create_object(obj("early", due_at=t - 100))
        tx.create_object(obj("later", due_at=t + 3600))
        tx.create_object(obj("never"))
        tx.create_object(obj("alias", kind="alias", due_at=t - 200))
        tx.create_object(obj("other-flow", flow="g", due_at=t - 50))

    write(store, fill)
    claim = lambda owner, limit: write(  # noqa: E731
        store, lambda tx: tx.claim_due_objects("schedule", t, owner, t + LONG, limit)
    )
    assert names(claim("a", 2)) == ["early", "other-flow"]
    assert names(claim("b", 10)) == ["late"]
    assert claim("c", 10) == []  # held, not yet due, or never due
    # Claimed ones still count for when the next one is due.
    assert read(store, lambda tx: tx.next_object_due("schedule")) == t - 100
    assert read(store, lambda tx: tx.next_object_due("alias")) == t - 200
    assert read(store, lambda tx: tx.next_object_due("version")) is None


def test_an_expired_claim_can_be_claimed_again(store: Store) -> None:
    write(store, lambda tx: tx.create_object(obj(due_at=1.0)))
    t = now()
    gone = write(store, lambda tx: tx.claim_due_objects("schedule", t, "dead", t - 1, 10))
    assert names(gone) == ["o1"]
    t = now()
    again = write(store, lambda tx: tx.claim_due_objects("schedule", t, "alive", t + LONG, 10))
    assert names(again) == ["o1"]
    # The first owner lost it: its write is refused and changes nothing.
    late = dataclasses.replace(obj(due_at=1e12), data="dead wrote")
    assert write(store, lambda tx: tx.put_object(late, owner="dead")) is False
    assert read(store, lambda tx: tx.get_object("f", "schedule", "o1")).data == '{"n": 1}'
    moved = dataclasses.replace(obj(due_at=1e12), data="alive wrote", modified=20.0)
    assert write(store, lambda tx: tx.put_object(moved, owner="alive")) is True
    found = read(store, lambda tx: tx.get_object("f", "schedule", "o1"))
    assert (found.data, found.due_at, found.modified) == ("alive wrote", 1e12, 20.0)
    # Its claim went with the write: a second write as owner finds none.
    assert write(store, lambda tx: tx.put_object(moved, owner="alive")) is False


def test_put_object_as_owner_needs_the_object_and_the_claim(store: Store) -> None:
    assert write(store, lambda tx: tx.put_object(obj(), owner="me")) is False
    assert read(store, lambda tx: tx.get_object("f", "schedule", "o1")) is None
    write(store, lambda tx: tx.create_object(obj(due_at=1.0)))
    assert write(store, lambda tx: tx.put_object(obj(data="x"), owner="me")) is False  # unclaimed
    t = now()
    write(store, lambda tx: tx.claim_due_objects("schedule", t, "me", t + LONG, 10))
    write(store, lambda tx: tx.put_object(obj(due_at=2.0)))  # a user's edit drops the claim
    assert write(store, lambda tx: tx.put_object(obj(data="x"), owner="me")) is False
    assert read(store, lambda tx: tx.get_object("f", "schedule", "o1")).due_at == 2.0


def test_release_leases_drops_object_claims(store: Store) -> None:
    def fill(tx: Transaction) -> None:
        for name in ("a", "b", "c"):
            tx.create_object(obj(name, due_at=1.0))

    write(store, fill)
    t = now()
    write(store, lambda tx: tx.claim_due_objects("schedule", t, "one", t + LONG, 2))
    write(store, lambda tx: tx.claim_due_objects("schedule", t, "two", t + LONG, 2))
    write(store, lambda tx: tx.release_leases("one"))
    t = now()
    freed = write(store, lambda tx: tx.claim_due_objects("schedule", t, "three", t + LONG, 10))
    assert names(freed) == ["a", "b"]
    assert write(store, lambda tx: tx.put_object(obj("a"), owner="one")) is False
    write(store, lambda tx: tx.release_leases())
    t = now()
    every = write(store, lambda tx: tx.claim_due_objects("schedule", t, "four", t + LONG, 10))
    assert names(every) == ["a", "b", "c"]


def test_deleting_a_flow_deletes_its_objects(store: Store) -> None:
    def fill(tx: Transaction) -> None:
        tx.create_flow(flow_row("f"))
        tx.create_flow(flow_row("g"))
        tx.create_object(obj("s", due_at=1.0))
        tx.create_object(obj("a", kind="alias"))
        tx.create_object(obj("s", flow="g", due_at=2.0))

    write(store, fill)
    assert write(store, lambda tx: tx.delete_flow("f")) is True
    assert read(store, lambda tx: tx.object_kinds("f")) == []
    assert read(store, lambda tx: tx.get_object("f", "schedule", "s")) is None
    assert read(store, lambda tx: tx.next_object_due("schedule")) == 2.0
    assert names(read(store, lambda tx: tx.list_objects("g", "schedule"))) == ["s"]


def test_objects_roll_back_with_their_transaction(store: Store) -> None:
    with pytest.raises(KeyError), store.transaction() as tx:
        tx.create_object(obj())
        raise KeyError("undo")
    assert read(store, lambda tx: tx.get_object("f", "schedule", "o1")) is None


# ---------------------------------------------------------------------------------------------
# Replicas: two stores on one URL


def test_an_object_created_on_two_replicas_at_once_is_created_once(
    replicas: tuple[Store, Store],
) -> None:
    a, b = replicas
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        with a.transaction() as tx:
            assert tx.create_object(obj(data="a")) is True
            theirs = pool.submit(write, b, lambda tx2: tx2.create_object(obj(data="b")))
            # Not a timed assertion: whether or not b got there yet, the outcome is the same.
            with pytest.raises(concurrent.futures.TimeoutError):
                theirs.result(timeout=0.2)
        assert theirs.result(timeout=WAIT) is False
    finally:
        pool.shutdown(wait=False)
    assert read(b, lambda tx: tx.get_object("f", "schedule", "o1")).data == "a"


def test_replicas_claiming_at_once_get_disjoint_objects(replicas: tuple[Store, Store]) -> None:
    a, b = replicas

    def fill(tx: Transaction) -> None:
        for i in range(6):
            tx.create_object(obj(f"s{i}", due_at=float(i)))

    write(a, fill)
    t = now()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        with a.transaction() as tx:
            mine = tx.claim_due_objects("schedule", t, "a", t + LONG, 3)
            # a has not committed: b skips what a holds instead of waiting for it.
            theirs = pool.submit(
                write, b, lambda tx2: tx2.claim_due_objects("schedule", t, "b", t + LONG, 10)
            ).result(timeout=WAIT)
    finally:
        pool.shutdown(wait=False)
    assert names(mine) == ["s0", "s1", "s2"]
    assert names(theirs) == ["s3", "s4", "s5"]
    assert write(b, lambda tx: tx.claim_due_objects("schedule", now(), "c", now() + LONG, 9)) == []
    # Each may write only what it claimed.
    assert write(b, lambda tx: tx.put_object(obj("s0"), owner="b")) is False
    assert write(a, lambda tx: tx.put_object(obj("s3"), owner="a")) is False
    assert write(b, lambda tx: tx.put_object(obj("s3"), owner="b")) is True


def test_put_objects_writes_back_what_the_owner_still_holds(store: Store) -> None:
    def fill(tx: Transaction) -> None:
        for name in ("a", "b", "c"):
            tx.create_object(obj(name, due_at=1.0))

    write(store, fill)
    t = now()
    write(store, lambda tx: tx.claim_due_objects("schedule", t, "me", t + LONG, 10))
    write(store, lambda tx: tx.put_object(obj("b", due_at=2.0)))  # b's claim is gone
    rows = [obj(n, due_at=50.0, data=f"next {n}") for n in ("c", "b", "a", "zz")]
    assert write(store, lambda tx: tx.put_objects(rows, owner="me")) == [True, False, True, False]
    found = {
        o.name: (o.data, o.due_at) for o in read(store, lambda tx: tx.list_objects("f", "schedule"))
    }
    assert found == {"a": ("next a", 50.0), "b": ('{"n": 1}', 2.0), "c": ("next c", 50.0)}
    assert (
        write(store, lambda tx: tx.put_objects(rows, owner="me")) == [False] * 4
    )  # claims dropped
    assert write(store, lambda tx: tx.put_objects([], owner="me")) == []
