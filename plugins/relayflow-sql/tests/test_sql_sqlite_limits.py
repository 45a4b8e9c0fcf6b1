"""What a flow's statement may do on SQLite: only the configured file, nothing left on a connection.

Every test drives the integration through a real engine, as a flow would, against SQLite files
in a temporary directory. The engine's own store is a SQLite file too, so that a flow trying to
read relayflow's token secret out of it has something to find.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine, Succeeded, TaskRequest
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow.testing import run_to_end as run
from relayflow_sql import SqlIntegration, SqlSettings
from relayflow_sql.connections import PRAGMA_LOOKUPS, PRAGMA_READS

TEST_TIMEOUT = 10.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A SQLite file with `customers (id, email UNIQUE, name)` holding Ada."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE customers "
            "(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO customers VALUES (1, 'ada@example.com', 'Ada')")
    conn.close()
    return path


@pytest.fixture
def sql(database: Path) -> Iterator[SqlIntegration]:
    # One pooled connection: consecutive tasks share it, as they would under light load.
    integration = SqlIntegration(
        SqlSettings(databases={"app": f"sqlite:///{database}"}, pool_size=1)
    )
    yield integration
    integration.close()


def engine(integration: SqlIntegration, store: Path) -> Engine:
    return Engine(open_store(f"sqlite:///{store}"), integrations=[integration], poll_seconds=0.1)


def one_step(statement: str) -> str:
    """A flow of one `sql:Execute` step whose output is the statement's local."""
    return fdl(f"""
    - type: task
      name: run
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: "{statement}"
        Parameters: $
    """)


async def execute(eng: Engine, statement: str, data: dict[str, Any], name: str) -> Any:
    """Run ``statement`` as a one-step flow of its own; the execution's info."""
    await eng.create_flow(name, one_step(statement))
    return await run(eng, name, data, name)


def token_secret(store: Path) -> str:
    with sqlite3.connect(store) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()
    conn.close()
    assert row is not None
    return str(row[0])


@bounded(seconds=TEST_TIMEOUT)
async def test_attach_of_relayflows_store_is_refused(sql: SqlIntegration, tmp_path: Path) -> None:
    store = tmp_path / "relayflow.db"
    async with engine(sql, store) as eng:
        attach = await execute(eng, "ATTACH DATABASE :f AS store", {"f": str(store)}, "attach")
        steal = await execute(
            eng, "SELECT value FROM store.meta WHERE key = 'token_secret'", {}, "steal"
        )
        after = await execute(eng, "SELECT name FROM customers", {}, "after")
    secret = token_secret(store)
    assert secret not in str(steal.output) + str(steal.cause)
    assert steal.status == "Failed"
    assert (attach.status, attach.error) == ("Failed", "SQL.NotAllowed")
    assert attach.cause == (
        "database 'app': attaching a database (ATTACH, VACUUM) is not allowed: "
        "a flow's statements reach only the database file the configuration names"
    )
    # The refusal failed that task only: the pooled connection serves the next one.
    assert (after.status, after.output) == ("Succeeded", {"Rows": [{"name": "Ada"}], "RowCount": 1})


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("VACUUM INTO :f", "attaching a database (ATTACH, VACUUM) is not allowed"),
        ("VACUUM", "attaching a database (ATTACH, VACUUM) is not allowed"),
        ("DETACH DATABASE main", "DETACH is not allowed"),
        ("SELECT load_extension(:f)", "load_extension() is not allowed"),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_statements_that_reach_other_files_are_refused(
    sql: SqlIntegration, tmp_path: Path, statement: str, refused: str
) -> None:
    target = tmp_path / "copy.db"
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        info = await execute(eng, statement, {"f": str(target)}, "reach")
    assert not target.exists()
    assert (info.status, info.error) == ("Failed", "SQL.NotAllowed")
    assert info.cause.startswith(f"database 'app': {refused}")


@bounded(seconds=TEST_TIMEOUT)
async def test_a_pragma_that_changes_the_connection_is_refused(
    sql: SqlIntegration, tmp_path: Path, database: Path
) -> None:
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        # Left on the pooled connection, query_only would break every later write of every flow.
        lock = await execute(eng, "PRAGMA query_only = ON", {}, "lock")
        write = await execute(
            eng, "INSERT INTO customers (email, name) VALUES ('bo@example.com', 'Bo')", {}, "write"
        )
        elsewhere = await execute(eng, "PRAGMA temp_store_directory = '/tmp'", {}, "dir")
        unlisted = await execute(eng, "PRAGMA wal_checkpoint", {}, "checkpoint")
    assert write.status == "Succeeded", write.cause
    assert (lock.status, lock.error) == ("Failed", "SQL.NotAllowed")
    assert lock.cause == (
        "database 'app': PRAGMA query_only may be read but not set: "
        "a flow's statements do not change their connection"
    )
    assert elsewhere.error == "SQL.NotAllowed"
    assert elsewhere.cause.startswith("database 'app': PRAGMA temp_store_directory is not allowed")
    assert unlisted.error == "SQL.NotAllowed"
    assert unlisted.cause.startswith("database 'app': PRAGMA wal_checkpoint is not allowed")


@bounded(seconds=TEST_TIMEOUT)
async def test_pragmas_that_only_read_are_allowed(sql: SqlIntegration, tmp_path: Path) -> None:
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        columns = await execute(eng, "PRAGMA table_info(customers)", {}, "columns")
        keys = await execute(eng, "PRAGMA foreign_keys", {}, "keys")
        listed = await execute(
            eng, "SELECT name FROM pragma_table_info('customers') ORDER BY cid", {}, "listed"
        )
    assert columns.status == "Succeeded"
    assert [row["name"] for row in columns.output["Rows"]] == ["id", "email", "name"]
    assert keys.output == {"Rows": [{"foreign_keys": 0}], "RowCount": 1}
    assert [row["name"] for row in listed.output["Rows"]] == ["id", "email", "name"]


@pytest.mark.parametrize(
    ("plant", "refused"),
    [
        (
            "CREATE TEMP TABLE leak AS SELECT email AS v FROM customers",
            "a TEMP table is not allowed",
        ),
        (
            "CREATE TEMP VIEW leak AS SELECT email AS v FROM customers",
            "a TEMP view is not allowed",
        ),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_temporary_objects_do_not_outlive_their_task(
    sql: SqlIntegration, tmp_path: Path, plant: str, refused: str
) -> None:
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        planted = await execute(eng, plant, {}, "plant")
        read = await execute(eng, "SELECT v FROM leak", {}, "read")
    assert (read.status, read.error) == ("Failed", "SQL.OperationalError")
    assert read.cause == "database 'app': no such table: leak"
    assert (planted.status, planted.error) == ("Failed", "SQL.NotAllowed")
    assert planted.cause.startswith(f"database 'app': {refused}")


@bounded(seconds=TEST_TIMEOUT)
async def test_a_temporary_trigger_cannot_spy_on_later_tasks(
    sql: SqlIntegration, tmp_path: Path, database: Path
) -> None:
    spy = (
        "CREATE TEMP TRIGGER spy AFTER INSERT ON main.customers "
        "BEGIN UPDATE customers SET name = 'spied' WHERE id = NEW.id; END"
    )
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        planted = await execute(eng, spy, {}, "plant")
        await execute(
            eng, "INSERT INTO customers (email, name) VALUES ('bo@example.com', 'Bo')", {}, "bo"
        )
    with sqlite3.connect(database) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM customers ORDER BY id")]
    conn.close()
    assert names == ["Ada", "Bo"]
    assert (planted.status, planted.error) == ("Failed", "SQL.NotAllowed")
    assert planted.cause.startswith("database 'app': a TEMP trigger is not allowed")


@bounded(seconds=TEST_TIMEOUT)
async def test_what_an_earlier_task_left_cannot_be_read(
    sql: SqlIntegration, tmp_path: Path
) -> None:
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        await execute(
            eng, "INSERT INTO customers (email, name) VALUES ('bo@example.com', 'Bo')", {}, "bo"
        )
        rowid = await execute(eng, "SELECT last_insert_rowid() AS id", {}, "rowid")
        changes = await execute(eng, "SELECT total_changes() AS n", {}, "changes")
    assert (rowid.status, rowid.error) == ("Failed", "SQL.NotAllowed")
    assert rowid.cause == (
        "database 'app': last_insert_rowid() is not allowed: it reads what an earlier task "
        "left on a pooled connection (use RETURNING)"
    )
    assert changes.error == "SQL.NotAllowed"


@bounded(seconds=TEST_TIMEOUT)
async def test_other_tasks_statements_cannot_be_listed(sql: SqlIntegration, tmp_path: Path) -> None:
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        await execute(eng, "SELECT 'hunter2' AS pin", {}, "pin")
        listed = await execute(eng, "SELECT sql FROM sqlite_stmt", {}, "listed")
    assert "hunter2" not in str(listed.output)
    assert (listed.status, listed.error) == ("Failed", "SQL.NotAllowed")
    assert listed.cause == (
        "database 'app': reading sqlite_stmt is not allowed: "
        "it reads what an earlier task left on a pooled connection"
    )


@bounded(seconds=TEST_TIMEOUT)
async def test_a_connection_left_with_an_attached_database_is_not_pooled_again(
    sql: SqlIntegration, tmp_path: Path
) -> None:
    # Whatever slips past the authorizer, a connection returned with another database attached
    # or a temporary object is closed rather than handed to the next task.
    other = tmp_path / "other.db"
    pool = sql.engine_for("app")
    with pool.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        raw.set_authorizer(None)
        raw.execute(f"ATTACH DATABASE '{other}' AS other")
        raw.execute("CREATE TEMP TABLE leak (v)")
    async with engine(sql, tmp_path / "relayflow.db") as eng:
        left = await execute(
            eng,
            "SELECT name FROM pragma_database_list WHERE name NOT IN ('main', 'temp') "
            "UNION ALL SELECT name FROM sqlite_temp_master",
            {},
            "left",
        )
    assert left.status == "Succeeded", left.cause
    assert left.output == {"Rows": [], "RowCount": 0}


@bounded(seconds=TEST_TIMEOUT)
async def test_every_listed_pragma_reads(sql: SqlIntegration) -> None:
    # The README lists these: each must be a real pragma that SQLite lets a statement read.
    for name in sorted(PRAGMA_READS):
        outcome = await sql.invoke(direct(f"PRAGMA {name}"))
        assert isinstance(outcome, Succeeded), (name, outcome)
    for name in sorted(PRAGMA_LOOKUPS):
        outcome = await sql.invoke(direct(f"PRAGMA {name}(customers)"))
        assert isinstance(outcome, Succeeded), (name, outcome)


def direct(statement: str) -> TaskRequest:
    """A task request for `sql:Execute` on `app`, without an engine."""
    return TaskRequest(
        flow_name="f",
        execution_name="e",
        step_name="s",
        task_id=1,
        token="t",
        resource="sql:Execute",
        pattern="requestResponse",
        input={},
        service_params={"Database": "app", "Statement": statement},
        timeout_seconds=None,
        attempt=0,
    )


def test_the_readme_lists_the_pragmas_a_statement_may_read() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### SQLite", 1)[1].split("### PostgreSQL", 1)[0]
    listed = set(re.findall(r"`(\w+)`", section.split("Pragmas a statement may read", 1)[1]))
    assert not (PRAGMA_READS | PRAGMA_LOOKUPS) - listed
