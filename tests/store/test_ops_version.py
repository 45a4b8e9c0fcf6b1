"""`Transaction.set_execution_version` in every store driver (a redrive onto the current definition).

The same tests run on each driver of `tests/store/conftest.py` (memory, SQLite, PostgreSQL):
the execution moves to another definition of its flow and nothing else of it changes; a locked
row read again in the same transaction shows the move; a rolled-back move leaves nothing.
"""

from __future__ import annotations

import dataclasses

import pytest

from relayflow.store import Store
from tests.store.rows import Rollback, exec_row, flow_row


def two_executions(store: Store) -> tuple[int, int]:
    """Flow f at version 3 and two executions started on its published version 1 (revision 1)."""
    with store.transaction() as tx:
        for version in (1, 2, 3):
            tx.put_flow(flow_row("f", version, f"def-{version}"))
        ids = []
        for name in ("moved", "kept"):
            new = tx.insert_execution(dataclasses.replace(exec_row("f", name), published_version=1))
            assert new is not None
            ids.append(new)
    return ids[0], ids[1]


def test_an_execution_moves_to_another_definition_and_nothing_else_changes(store: Store) -> None:
    moved, _ = two_executions(store)
    with store.transaction() as tx:
        before = tx.get_execution("f", "moved")
        tx.set_execution_version(moved, 3, 0)
    with store.transaction() as tx:
        after = tx.get_execution("f", "moved")
        other = tx.get_execution("f", "kept")
        listed = tx.list_executions("f", after="", limit=10)
    assert before is not None and after is not None and other is not None
    assert (after.flow_version, after.published_version) == (3, 0)
    assert dataclasses.replace(after, flow_version=1, published_version=1) == before
    assert (other.flow_version, other.published_version) == (1, 1)
    assert [(e.name, e.flow_version, e.published_version) for e in listed] == [
        ("kept", 1, 1),
        ("moved", 3, 0),
    ]
    with store.transaction() as tx:
        assert tx.flow_definition("f", after.flow_version) == "def-3"


def test_a_locked_row_read_again_shows_the_move(store: Store) -> None:
    moved, _ = two_executions(store)
    with store.transaction() as tx:
        locked = tx.get_execution("f", "moved", lock=True)
        assert locked is not None and locked.flow_version == 1
        tx.set_execution_version(moved, 2, 0)
        again = tx.lock_execution(moved)
        by_name = tx.get_execution("f", "moved", lock=True)
    assert again is not None and (again.flow_version, again.published_version) == (2, 0)
    assert by_name is not None and (by_name.flow_version, by_name.published_version) == (2, 0)


def test_a_rolled_back_move_leaves_nothing(store: Store) -> None:
    moved, _ = two_executions(store)
    with pytest.raises(Rollback), store.transaction() as tx:
        tx.set_execution_version(moved, 3, 0)
        raise Rollback
    with store.transaction() as tx:
        row = tx.get_execution("f", "moved")
    assert row is not None and (row.flow_version, row.published_version) == (1, 1)
