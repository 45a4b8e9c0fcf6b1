"""SqlIntegration driven by the real engine, on a SQLite file: rows, RETURNING, catch, transactions.

Every test builds `Engine(open_store("memory://"), integrations=[SqlIntegration(...)])` on its
own event loop, with a SQLite database in a temporary directory, and is bounded: nothing waits
for more than a few seconds. The same behaviours on PostgreSQL: tests/test_sql_postgres.py.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from relayflow.engine import Engine
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow.testing import event_details as history
from relayflow.testing import run_to_end as run
from relayflow_sql import SqlIntegration, SqlSettings

TEST_TIMEOUT = 10.0
SECRET = "s3cr3t-parameter-value"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """A SQLite file with `customers (id, email UNIQUE, name)` holding Ada."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE customers "
            "(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO customers VALUES (1, 'ada@example.com', 'Ada')")
    yield path


@pytest.fixture
def sql(database: Path) -> Iterator[SqlIntegration]:
    integration = SqlIntegration(SqlSettings(databases={"app": f"sqlite:///{database}"}))
    yield integration
    integration.close()


def engine(integration: SqlIntegration) -> Engine:
    return Engine(open_store("memory://"), integrations=[integration], poll_seconds=0.1)


def emails(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT email FROM customers ORDER BY id")]


SELECT = fdl("""
- type: task
  name: find
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: SELECT id, email, name FROM customers WHERE id >= :since ORDER BY id
    Parameters:
      since: $.since
  outputMappings:
    - target: customers
      source: $local.Rows
    - target: count
      source: $local.RowCount
""")


@bounded(seconds=TEST_TIMEOUT)
async def test_select_returns_rows_as_objects(sql: SqlIntegration) -> None:
    async with engine(sql) as eng:
        await eng.create_flow("find", SELECT)
        info = await run(eng, "find", {"since": 0}, "all")
        none = await run(eng, "find", {"since": 99}, "none")
    assert info.status == "Succeeded"
    assert info.output == {
        "customers": [{"id": 1, "email": "ada@example.com", "name": "Ada"}],
        "count": 1,
    }
    assert none.output == {"customers": [], "count": 0}


SIGN_UP = fdl("""
- type: task
  name: insert
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: >-
      INSERT INTO customers (email, name) VALUES (:email, :name) RETURNING id, email
    Parameters: $
  outputMappings:
    - target: inserted
      source: $local
  catch:
    - errors: [SQL.IntegrityError]
      goto: duplicate
- type: succeed
  name: done
- type: pass
  name: duplicate
  outputMappings:
    - target: outcome
      source: duplicate
""")


@bounded(seconds=TEST_TIMEOUT)
async def test_insert_returning_and_a_unique_violation_takes_the_catch(
    sql: SqlIntegration, database: Path
) -> None:
    async with engine(sql) as eng:
        await eng.create_flow("signUp", SIGN_UP)
        ok = await run(eng, "signUp", {"email": "lin@example.com", "name": "Lin"}, "lin")
        dup = await run(eng, "signUp", {"email": "ada@example.com", "name": SECRET}, "dup")
        events = await history(eng, "signUp", "dup")
    assert ok.status == "Succeeded"
    assert ok.output == {
        "inserted": {"Rows": [{"id": 2, "email": "lin@example.com"}], "RowCount": 1}
    }
    assert dup.status == "Succeeded"
    assert dup.output == {"outcome": "duplicate"}
    failed = [detail for kind, detail in events if kind == "TaskFailed"]
    assert failed == [
        {
            "error": "SQL.IntegrityError",
            "cause": "database 'app': UNIQUE constraint failed: customers.email",
        }
    ]
    assert emails(database) == ["ada@example.com", "lin@example.com"]


TWO_STEPS = fdl("""
- type: task
  name: first
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: INSERT INTO customers (email, name) VALUES (:email, 'First')
    Parameters:
      email: $.first
- type: task
  name: second
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: >-
      INSERT INTO customers (email, name)
      VALUES (:fresh, 'Fresh'), (:taken, 'Taken')
    Parameters:
      fresh: $.fresh
      taken: $.taken
""")


@bounded(seconds=TEST_TIMEOUT)
async def test_each_task_is_its_own_transaction_and_shares_the_pool(
    sql: SqlIntegration, database: Path
) -> None:
    shared = sql.engine_for("app")
    checkouts: list[object] = []
    event.listen(shared, "checkout", lambda *args: checkouts.append(args[0]))
    async with engine(sql) as eng:
        await eng.create_flow("two", TWO_STEPS)
        data = {"first": "bo@example.com", "fresh": "cy@example.com", "taken": "ada@example.com"}
        info = await run(eng, "two", data, "two")
        assert sql.engine_for("app") is shared  # one pool while the engine runs
    assert (info.status, info.error) == ("Failed", "SQL.IntegrityError")
    # The first task committed; the failing second one left nothing, not even its first row.
    assert emails(database) == ["ada@example.com", "bo@example.com"]
    assert sql.engine_for("app") is not shared  # closing the engine disposed of the pool
    assert len(checkouts) == 2  # both tasks took a connection from the same engine's pool


@bounded(seconds=TEST_TIMEOUT)
async def test_too_many_rows_fails_and_rolls_back(database: Path) -> None:
    sql = SqlIntegration(SqlSettings(databases={"app": f"sqlite:///{database}"}, max_rows=1))
    flow = fdl("""
    - type: task
      name: insertTwo
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: >-
          INSERT INTO customers (email, name) VALUES ('a@x', 'A'), ('b@x', 'B') RETURNING id
    """)
    try:
        async with engine(sql) as eng:
            await eng.create_flow("many", flow)
            info = await run(eng, "many", {}, "many")
    finally:
        sql.close()
    assert (info.status, info.error) == ("Failed", "SQL.TooManyRows")
    assert "max_rows (1)" in info.cause
    assert emails(database) == ["ada@example.com"]


@bounded(seconds=TEST_TIMEOUT)
async def test_parameter_values_reach_neither_causes_nor_logs(
    sql: SqlIntegration, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless told: let it log statements (INFO; its
    # DEBUG adds result rows, which no setting hides).
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    flow = fdl("""
    - type: task
      name: bad
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: INSERT INTO customers (id, email, name) VALUES (1, :email, :name)
        Parameters: $
    - type: task
      name: typo
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: INSERT INTO nowhere (email) VALUES (:email)
        Parameters: $
    """)
    async with engine(sql) as eng:
        await eng.create_flow("leak", flow)
        unique = await run(eng, "leak", {"email": SECRET, "name": SECRET}, "unique")
        events = await history(eng, "leak", "unique")
    assert unique.error == "SQL.IntegrityError"
    assert SECRET not in unique.cause
    assert "INSERT" not in unique.cause
    failed = [detail for kind, detail in events if kind == "TaskFailed"]
    assert failed and all(SECRET not in str(detail) for detail in failed)
    assert "SQL.IntegrityError" in caplog.text  # the failure was logged ...
    assert SECRET not in caplog.text  # ... without the values
    assert "INSERT INTO customers" in caplog.text  # SQLAlchemy logged the statement ...
    assert "parameters hidden" in caplog.text  # ... but not its values


@bounded(seconds=TEST_TIMEOUT)
async def test_a_syntax_error_is_a_programming_error_without_the_statement(
    sql: SqlIntegration,
) -> None:
    flow = fdl("""
    - type: task
      name: typo
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: SELEKT email FROM customers WHERE name = :name
        Parameters: $
    """)
    async with engine(sql) as eng:
        await eng.create_flow("typo", flow)
        info = await run(eng, "typo", {"name": SECRET}, "typo")
    assert info.error == "SQL.OperationalError"  # sqlite3 reports syntax errors so
    assert info.cause == "database 'app': near \"SELEKT\": syntax error"


@bounded(seconds=TEST_TIMEOUT)
async def test_an_unknown_database_fails_with_invalid_parameter(sql: SqlIntegration) -> None:
    flow = fdl("""
    - type: task
      name: lost
      action: sql:Execute
      serviceParams:
        Database: $.db
        Statement: SELECT 1 AS one
    """)
    async with engine(sql) as eng:
        await eng.create_flow("lost", flow)
        info = await run(eng, "lost", {"db": "orders"}, "lost")
    assert (info.status, info.error) == ("Failed", "SQL.InvalidParameter")
    assert info.cause == (
        "serviceParams.Database 'orders' names no database of [integrations.sql.databases] "
        "(configured: app)"
    )
