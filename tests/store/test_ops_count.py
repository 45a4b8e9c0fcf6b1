"""`Transaction.count_matching` on every driver: it counts what `list_executions` would list."""

from __future__ import annotations

from typing import Any

import pytest

from relayflow.store import Store, Transaction
from tests.store.rows import exec_row, read, write

ROWS = [
    ("a1", "Running", 100.0),
    ("a_2", "Succeeded", 110.0),
    ("ab", "Running", 120.0),
    ("b1", "Failed", 130.0),
    ("a-3", "Failed", 140.0),
    ("c", "Stopped", 150.0),
    ("A", "Running", 160.0),
]

FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "Running"},
    {"status": "Stopped"},
    {"status": "TimedOut"},
    {"name_prefix": "a"},
    {"name_prefix": "a_"},
    {"name_prefix": "A"},
    {"name_prefix": "zz"},
    {"started_from": 120.0},
    {"started_to": 120.0},
    {"started_from": 200.0},
    {"started_from": 110.0, "started_to": 140.0, "status": "Failed"},
    {"status": "Running", "name_prefix": "a", "started_to": 110.0},
]


@pytest.fixture
def seeded(store: Store) -> Store:
    def seed(tx: Transaction) -> None:
        for name, status, started in ROWS:
            tx.insert_execution(exec_row("f", name, status, started))
        # Another flow's executions never count.
        tx.insert_execution(exec_row("other", "a0"))
        tx.insert_execution(exec_row("f2", "a1", "Failed", 130.0))

    write(store, seed)
    return store


def test_count_matching_agrees_with_list_executions(seeded: Store):
    def both(tx: Transaction) -> list[tuple[int, int]]:
        return [
            (tx.count_matching("f", **f), len(tx.list_executions("f", after="", limit=100, **f)))
            for f in FILTERS
        ]

    for filters, (counted, listed) in zip(FILTERS, read(seeded, both), strict=True):
        assert counted == listed, filters


def test_count_matching_by_hand(seeded: Store):
    def count(**filters: Any) -> int:
        return int(read(seeded, lambda tx: tx.count_matching("f", **filters)))

    assert count() == 7
    assert count(status="Failed") == 2
    assert count(name_prefix="a") == 4
    assert count(started_from=110.0, started_to=140.0) == 4
    assert read(seeded, lambda tx: tx.count_matching("nothing")) == 0
