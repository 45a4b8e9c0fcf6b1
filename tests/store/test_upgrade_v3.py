"""Schema version 3 (a flow's objects, mode and environment, an execution's published version):
stores at version 2 are upgraded, on SQLite and on PostgreSQL, and carry on.

`data/release-2.db` was written by relayflow a58af8a (`data/make_release_2.py`) with the flows
and executions `test_upgrade.py` describes; `data/postgres-2.sql` is that release's PostgreSQL
schema.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Submitted, TaskRequest
from relayflow.store import FlowObjectRow, Store, open_store
from relayflow.store import postgres_schema as pg_schema
from relayflow.store.sqlite import SQLiteStore
from relayflow.store.upgrade import look, upgrade
from relayflow.store.versions import SCHEMA_VERSION
from relayflow.testing import bounded, make_engine
from tests.engine.helpers import finished
from tests.store.rows import read, write
from tests.store.test_upgrade import HANG, QUEUE, meta, shape, url

DATA = Path(__file__).parent / "data"
WAIT = 30.0


@pytest.fixture
def release_2(tmp_path: Path) -> Path:
    """A copy of the store relayflow a58af8a wrote (schema version 2)."""
    path = tmp_path / "release-2.db"
    shutil.copyfile(DATA / "release-2.db", path)
    return path


def test_a_version_2_store_is_upgraded_to_the_schema_of_a_new_one(
    release_2: Path, tmp_path: Path
) -> None:
    assert meta(release_2)["schema_version"] == "2"
    assert look(url(release_2)).after == 2  # looking changes nothing
    state = upgrade(url(release_2))
    assert (state.before, state.after) == (2, SCHEMA_VERSION)
    assert state.sentence() == f"upgraded from version 2 to {SCHEMA_VERSION}"
    new = tmp_path / "new.db"
    open_store(url(new)).close()
    assert shape(release_2) == shape(new)
    assert upgrade(url(release_2)).sentence() == f"already at version {SCHEMA_VERSION}"


def test_rows_of_a_version_2_store_read_with_the_defaults(release_2: Path) -> None:
    store = open_store(url(release_2))
    try:
        assert isinstance(store, SQLiteStore) and store.upgraded_from == 2
        flows = read(store, lambda tx: tx.list_flows("", 10))
        assert [(f.name, f.execution_mode, f.environment) for f in flows] == [
            (name, "Standard", "") for name in ("greet", "jobs", "nap", "stuck")
        ]
        done = read(store, lambda tx: tx.get_execution("greet", "done"))
        assert done.status == "Succeeded" and done.published_version == 0
        row = FlowObjectRow("nap", "alias", "live", "{}", 1.0, 1.0)
        assert write(store, lambda tx: tx.create_object(row)) is True
    finally:
        store.close()


@bounded(seconds=20)
async def test_a_version_2_store_upgraded_at_start_carries_on(release_2: Path) -> None:
    async def queue(request: TaskRequest) -> Submitted:
        return Submitted({"MessageId": str(request.task_id)})

    token = json.loads((DATA / "release-2.json").read_text())["waiting_token"]
    async with make_engine({QUEUE: queue, HANG: queue}, store=url(release_2)) as engine:
        assert meta(release_2)["schema_version"] == str(SCHEMA_VERSION)
        assert (await finished(engine, "nap", "sleeping", seconds=10)).status == "Succeeded"
        await engine.report_task_succeeded(token, {"ok": 7})
        assert (await finished(engine, "jobs", "waiting")).status == "Succeeded"


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture
def pg_version_2(pg_database: str) -> Iterator[str]:
    """The module's database at schema version 2, with a flow and an execution in it."""
    import psycopg

    from tests.store.conftest import PG_TABLES

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PG_TABLES}")
        conn.execute((DATA / "postgres-2.sql").read_text())
        conn.execute(
            "INSERT INTO flows VALUES ('f', 'id-f', 'def', '', 'FDL', '', 1, 1.0, 2.0);"
            "INSERT INTO flow_versions VALUES ('f', 1, 'def');"
            "INSERT INTO executions (uid, flow_name, name, flow_id, flow_version, status, "
            "input, output, error, cause, started, stopped, state, callback_token) VALUES "
            "('u', 'f', 'e', 'id-f', 1, 'Running', '{}', NULL, '', '', 3.0, NULL, '{}', '')"
        )
    yield pg_database


def _columns(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "ORDER BY table_name, column_name"
    ).fetchall()
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table, *rest in rows:
        found.setdefault(table, []).append(tuple(rest))
    return found


def test_replicas_opening_a_version_2_database_together_upgrade_it_once(
    pg_version_2: str,
) -> None:
    import psycopg

    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(pg_version_2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    try:
        assert not errors and len(stores) == 3
        assert sorted(getattr(s, "upgraded_from", None) or 0 for s in stores) == [0, 0, 2]
        flow = read(stores[0], lambda tx: tx.get_flow("f"))
        assert (flow.execution_mode, flow.environment) == ("Standard", "")
        assert read(stores[1], lambda tx: tx.get_execution("f", "e")).published_version == 0
        row = FlowObjectRow("f", "schedule", "s", "{}", 1.0, 1.0, 5.0)
        assert write(stores[2], lambda tx: tx.create_object(row)) is True
        assert read(stores[0], lambda tx: tx.next_object_due("schedule")) == 5.0
    finally:
        for store in stores:
            store.close()
    with psycopg.connect(pg_version_2, autocommit=True) as conn:
        upgraded = _columns(conn)
        # Each step can run again without harm (IF NOT EXISTS).
        for statement in (*pg_schema.UPGRADES[3], *pg_schema.UPGRADES[4]):
            conn.execute(statement)
        assert _columns(conn) == upgraded
        conn.execute("DROP TABLE flow_objects, flows, executions, execution_links CASCADE")
        conn.execute("TRUNCATE meta")
        for statement in pg_schema.SCHEMA:
            conn.execute(statement)
        assert _columns(conn) == upgraded  # the same as a new store's


def test_store_upgrade_brings_a_version_2_database_to_3_once(pg_version_2: str) -> None:
    state = upgrade(pg_version_2)
    assert (state.before, state.after) == (2, SCHEMA_VERSION)
    assert state.sentence() == f"upgraded from version 2 to {SCHEMA_VERSION}"
    assert upgrade(pg_version_2).sentence() == f"already at version {SCHEMA_VERSION}"
