"""The console's list on a few thousand executions: every page, filter and count is right.

On every driver (memory, SQLite, PostgreSQL): walking `list_executions` page by page (the
last name as the next `after`, as ListExecutions' NextToken) gives exactly the executions a
filter matches, in name order, and `count_matching` counts them. On SQLite both of the plans
`sqlite_operations.list_page` chooses between are run: the window plan (a start window of at
most `WINDOW_SORT_MAX` executions) and the walk in name order (the limit lowered to 50).
A store at schema version 4 gains the two indexes the list uses when it is opened.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from typing import Any

import pytest

from relayflow.store import ExecutionRow, Store, Transaction, open_store, sqlite_operations
from relayflow.store.versions import META_KEY, SCHEMA_VERSION
from tests.store.rows import exec_row, read, write

STATUSES = ("Running", "Succeeded", "Failed", "Stopped", "TimedOut")
COUNT = 2_000
PAGE = 97


def _rows() -> list[ExecutionRow]:
    rng = random.Random(17)
    rows = []
    for n in range(COUNT):
        head = rng.choice(["", "", "nightly-", "Nightly_", "a", "a-", "b"])
        name = f"{head}{rng.getrandbits(40):010x}{n}"
        status = rng.choices(STATUSES, [5, 80, 8, 5, 2])[0]
        rows.append(exec_row("f", name, status, float(rng.randrange(0, 100_000))))
    return rows


ROWS = _rows()

FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "Failed"},
    {"status": "TimedOut"},
    {"status": "Starting"},  # matches nothing
    {"name_prefix": "nightly-"},
    {"name_prefix": "a"},  # "a-..." and "a..." alike
    {"name_prefix": "a-"},
    {"name_prefix": "Nightly_"},
    {"name_prefix": "zz"},
    {"started_from": 90_000.0},
    {"started_to": 1_000.0},
    {"started_from": 40_000.0, "started_to": 41_000.0},
    {"started_from": 10_000.0, "started_to": 90_000.0},
    {"status": "Failed", "name_prefix": "nightly-"},
    {"status": "Succeeded", "started_from": 50_000.0, "started_to": 52_000.0},
    {"name_prefix": "a", "started_from": 0.0, "started_to": 70_000.0},
    {"status": "Running", "name_prefix": "b", "started_from": 20_000.0},
    {"status": "Starting", "started_from": 0.0, "started_to": 100_000.0},
]


def _expected(filters: dict[str, Any]) -> list[str]:
    def keep(r: ExecutionRow) -> bool:
        return (
            filters.get("status") in (None, r.status)
            and r.name.startswith(filters.get("name_prefix") or "")
            and r.started >= filters.get("started_from", float("-inf"))
            and r.started <= filters.get("started_to", float("inf"))
        )

    return sorted(r.name for r in ROWS if keep(r))


@pytest.fixture
def seeded(store: Store) -> Store:
    def seed(tx: Transaction) -> None:
        for row in ROWS:
            tx.insert_execution(row)
        # Another flow's executions, with the same names, never show.
        for row in ROWS[:200]:
            tx.insert_execution(exec_row("g", row.name, row.status, row.started))

    write(store, seed)
    return store


def _walk(store: Store, filters: dict[str, Any], start: str = "") -> list[str]:
    names: list[str] = []
    after = start
    while True:
        page = read(
            store, lambda tx, a=after: tx.list_executions("f", after=a, limit=PAGE, **filters)
        )
        assert all(r.flow_name == "f" for r in page)
        names += [r.name for r in page]
        if len(page) < PAGE:
            return names
        after = page[-1].name


@pytest.mark.parametrize("window_max", [20_000, 50], ids=["window-plan", "name-walk"])
def test_pages_filters_and_counts_match_the_rows(
    seeded: Store, store_url: str, window_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_url.startswith("postgresql") and window_max != 20_000:
        pytest.skip("the plan is chosen by PostgreSQL's planner: one run is enough")
    monkeypatch.setattr(sqlite_operations, "WINDOW_SORT_MAX", window_max)
    for filters in FILTERS:
        expected = _expected(filters)
        assert _walk(seeded, filters) == expected, filters
        counted = read(seeded, lambda tx, f=filters: tx.count_matching("f", **f))
        assert counted == len(expected), filters
    # A page that starts inside the prefix, and one past it, as a NextToken resumes them.
    inside = _expected({"name_prefix": "nightly-"})
    middle = inside[len(inside) // 2]
    assert _walk(seeded, {"name_prefix": "nightly-"}, middle) == [n for n in inside if n > middle]
    assert _walk(seeded, {"name_prefix": "a-"}, "b") == []


def test_counts_by_status_add_up_to_the_flow(seeded: Store) -> None:
    def counts(tx: Transaction) -> dict[str, int]:
        found = {s: tx.count_matching("f", status=s) for s in (*STATUSES, "Starting")}
        return {**found, "all": tx.count_matching("f")}

    found = read(seeded, counts)
    assert found["all"] == COUNT == sum(v for k, v in found.items() if k != "all")
    for status in STATUSES:
        assert found[status] == sum(r.status == status for r in ROWS)


INDEXES = ("executions_flow_status", "executions_flow_started")


def _indexes(url: str) -> set[str]:
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT indexname FROM pg_indexes").fetchall()
    else:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {r[0] for r in found} & set(INDEXES)


def _as_version_4(url: str) -> None:
    """Make the store at ``url`` what schema version 4 was: without the listing's indexes."""
    statements = [f"DROP INDEX {name}" for name in INDEXES]
    statements.append(f"UPDATE meta SET value = '4' WHERE key = '{META_KEY}'")
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            for statement in statements:
                db.execute(statement)
            db.commit()


def test_a_version_4_store_gains_the_listing_indexes_at_opening(store_url: str) -> None:
    if store_url == "memory://":
        pytest.skip("a memory store is always new")
    open_store(store_url).close()
    assert _indexes(store_url) == set(INDEXES)
    _as_version_4(store_url)
    assert _indexes(store_url) == set()
    store = open_store(store_url)
    try:
        assert (store.schema_version, store.upgraded_from) == (SCHEMA_VERSION, 4)
        write(store, lambda tx: tx.insert_execution(exec_row("f", "e1", "Failed", 5.0)))
        page = read(store, lambda tx: tx.list_executions("f", after="", limit=5, status="Failed"))
        assert [r.name for r in page] == ["e1"]
    finally:
        store.close()
    assert _indexes(store_url) == set(INDEXES)


def test_a_bounded_count_stops_past_its_bound(seeded: Store) -> None:
    succeeded = sum(r.status == "Succeeded" for r in ROWS)

    def counts(tx: Transaction) -> list[int]:
        return [
            tx.count_matching("f", status="Succeeded", at_most=bound)
            for bound in (0, 10, succeeded - 1, succeeded, 1_000_000)
        ] + [tx.count_matching("f", name_prefix="zz", at_most=5)]

    assert read(seeded, counts) == [1, 11, succeeded, succeeded, succeeded, 0]
