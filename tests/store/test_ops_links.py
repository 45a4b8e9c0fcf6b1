"""Family links in every store driver: link_child, parent_of, children_of, and what removes them.

The same tests run on each driver of `tests/store/conftest.py` (memory, SQLite, PostgreSQL).
Deleting a flow or purging ended executions takes their links along; `relayflow store copy`
carries links across to the destination's new execution ids, in both directions between
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.store import Store, Transaction, open_store
from relayflow.store.copy import copy_urls
from tests.services import fresh_database
from tests.store.rows import exec_row, flow_row


def family(tx: Transaction) -> dict[str, int]:
    """Flows p and c; p1 started c1, c2 and c3; c1 started g1 (a grandchild); loner has none."""
    tx.put_flow(flow_row("p"))
    tx.put_flow(flow_row("c"))
    ids: dict[str, int] = {}
    for flow, name in [("p", "p1"), ("c", "c1"), ("c", "c2"), ("c", "c3"), ("c", "g1")]:
        new = tx.insert_execution(exec_row(flow, name))
        assert new is not None
        ids[name] = new
    ids["loner"] = tx.insert_execution(exec_row("p", "loner")) or 0
    for child in ("c1", "c2", "c3"):
        tx.link_child(ids["p1"], ids[child])
    tx.link_child(ids["c1"], ids["g1"])
    return ids


def names(rows: list) -> list[str]:
    return [r.name for r in rows]


def test_links_read_both_ways_in_id_order_and_page(store: Store) -> None:
    with store.transaction() as tx:
        ids = family(tx)
    with store.reader() as tx:
        assert names(tx.children_of(ids["p1"])) == ["c1", "c2", "c3"]
        assert names(tx.children_of(ids["p1"], after_id=ids["c1"], limit=1)) == ["c2"]
        assert names(tx.children_of(ids["p1"], after_id=ids["c3"])) == []
        assert names(tx.children_of(ids["c1"])) == ["g1"]
        assert tx.children_of(ids["loner"]) == []
        parent = tx.parent_of(ids["g1"])
        assert parent is not None and (parent.flow_name, parent.name) == ("c", "c1")
        assert tx.parent_of(ids["p1"]) is None and tx.parent_of(ids["loner"]) is None
        assert tx.parent_of(10**9) is None and tx.children_of(10**9) == []


def test_deleting_a_flow_drops_its_executions_links(store: Store) -> None:
    with store.transaction() as tx:
        ids = family(tx)
    with store.transaction() as tx:
        assert tx.delete_flow("c")
    with store.reader() as tx:
        assert tx.children_of(ids["p1"]) == []
    with store.transaction() as tx:
        again = tx.insert_execution(exec_row("p", "p2"))
        assert again is not None
        assert tx.parent_of(again) is None and tx.children_of(again) == []
        assert tx.delete_flow("p")
    with store.reader() as tx:
        assert tx.parent_of(ids["g1"]) is None


def test_purging_ended_executions_drops_their_links(store: Store) -> None:
    with store.transaction() as tx:
        ids = family(tx)
        for name in ("c1", "c2"):
            tx.update_execution(
                ids[name],
                status="Stopped",
                state="{}",
                output=None,
                error="",
                cause="",
                stopped=50.0,
            )
    with store.transaction() as tx:
        assert tx.purge_ended(100.0, None, 10) == 2
    with store.reader() as tx:
        assert names(tx.children_of(ids["p1"])) == ["c3"]
        assert tx.parent_of(ids["g1"]) is None  # its parent c1 went


@pytest.fixture
def pg_empty(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own."""
    name = f"rf_links_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with fresh_database(postgres_url, name) as url:
        yield url


def test_a_copy_keeps_links_under_the_new_ids(tmp_path: Path, pg_empty: str) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    store = open_store(source)
    try:
        with store.transaction() as tx:
            # Ids that the destination will not give the same rows: a copy maps them.
            tx.put_flow(flow_row("z"))
            for i in range(3):
                tx.insert_execution(exec_row("z", f"z{i}"))
            family(tx)
    finally:
        store.close()
    counts = copy_urls(source, pg_empty)
    assert counts.links == 4 and counts.summary().endswith(", 4 parent links")
    back = f"sqlite:///{tmp_path / 'b.db'}"
    assert copy_urls(pg_empty, back).links == 4
    for url in (pg_empty, back):
        copied = open_store(url)
        try:
            with copied.reader() as tx:
                p1 = tx.get_execution("p", "p1")
                c1 = tx.get_execution("c", "c1")
                g1 = tx.get_execution("c", "g1")
                assert p1 is not None and c1 is not None and g1 is not None
                assert names(tx.children_of(p1.id)) == ["c1", "c2", "c3"]
                parent = tx.parent_of(g1.id)
                assert parent is not None and parent.id == c1.id
        finally:
            copied.close()
