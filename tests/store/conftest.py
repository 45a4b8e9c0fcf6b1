"""Fixtures of the store conformance suite: the same tests on every store driver.

`store_url` is parametrized over `STORES`: each entry makes an empty store for one test and
gives its URL. PostgreSQL gets one database per test module (made from the session's server,
`postgres_url`), emptied before each test, which is much faster than a database per test.

To run the suite against a new driver, add an entry to `STORES` that yields the URL of an empty
store of yours, then run `pytest tests/store -k <your id>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.store import Store, open_store
from tests.services import fresh_database

# Every table of the PostgreSQL store, emptied between tests.
PG_TABLES = (
    "meta, flows, flow_versions, executions, events, timers, outbox, nonces, quarantine, "
    "flow_objects, execution_links"
)


@pytest.fixture(scope="module")
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own for this test module on the session's PostgreSQL: its URL."""
    server: str = request.getfixturevalue("postgres_url")
    name = "rf_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1]).lower()
    with fresh_database(server, name) as url:
        yield url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The module's database, dropped of every table (so each test starts with no schema)."""
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PG_TABLES}")
    return pg_database


@pytest.fixture
def admin(pg_url: str) -> Iterator[Any]:
    """A connection of its own to ``pg_url``'s database, to look at and break what a store does."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    import psycopg

    url: str = request.getfixturevalue("pg_database")
    with psycopg.connect(url, autocommit=True) as conn:
        # Empty, or not made yet (the first test of the module): the driver makes it.
        if conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone() == (True,):
            conn.execute(f"TRUNCATE {PG_TABLES} RESTART IDENTITY")
    yield url


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield "memory://"


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield "sqlite:///" + str(tmp_path / "store.db")


#: The drivers under test: an id, and a generator that yields the URL of an empty store.
STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[str]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(STORES))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store, once for each driver in `STORES`."""
    yield from STORES[request.param](request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, empty store."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def replicas(store_url: str, store: Store) -> Iterator[tuple[Store, Store]]:
    """Two stores opened on one URL, standing for two replicas (skipped for single-engine drivers)."""
    if store.single_engine:
        pytest.skip(f"{type(store).__name__} serves a single engine process")
    other = open_store(store_url)
    yield store, other
    other.close()
