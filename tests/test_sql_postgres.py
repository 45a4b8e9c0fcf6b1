"""relayflow-sql on a real PostgreSQL, through the engine: rows, RETURNING, catch, transactions,
JSON-safe types, masked causes, statement timeouts and password references.

The server is the session's `postgres_url` (tests/services.py), started once; each test works
in a schema of its own, so tests never see each other's tables. Waits are bounded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from relayflow.engine import Engine
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow.testing import event_details as history
from relayflow.testing import run_to_end as run
from relayflow_sql import SqlIntegration, SqlSettings

SECRET = "s3cr3t-parameter-value"


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections work in a fresh schema holding `customers`, with Ada in it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.customers (id serial PRIMARY KEY, "
            "email text NOT NULL UNIQUE, name text NOT NULL)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO {schema}.customers (email, name) VALUES ('ada@example.com', 'Ada')"
        )
    # psycopg 3 by name (SQLAlchemy 2.0 reads a bare postgresql:// as psycopg2); libpq's
    # `options` sets search_path for every connection the integration opens.
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{url}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture
def sql(schema_url: str) -> Iterator[SqlIntegration]:
    integration = SqlIntegration(SqlSettings(databases={"app": schema_url}))
    yield integration
    integration.close()


def engine(integration: SqlIntegration) -> Engine:
    return Engine(open_store("memory://"), integrations=[integration], poll_seconds=0.1)


def emails(url: str) -> list[str]:
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            return list(conn.scalars(sa.text("SELECT email FROM customers ORDER BY id")))
    finally:
        db.dispose()


def one_step(statement: str, parameters: str = "$") -> str:
    return fdl(f"""
    - type: task
      name: run
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: "{statement}"
        Parameters: {parameters}
    """)


SIGN_UP = fdl("""
- type: task
  name: insert
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: >-
      INSERT INTO customers (email, name) VALUES (:email, :name) RETURNING id, email, name
    Parameters: $
  outputMappings:
    - target: inserted
      source: $local.Rows
  catch:
    - errors: [SQL.IntegrityError]
      goto: duplicate
- type: task
  name: list
  action: sql:Execute
  serviceParams:
    Database: app
    Statement: SELECT email FROM customers WHERE id <= :upTo ORDER BY id
    Parameters:
      upTo: 10
  outputMappings:
    - target: customers
      source: $local.Rows
    - target: count
      source: $local.RowCount
- type: succeed
  name: done
- type: pass
  name: duplicate
  outputMappings:
    - target: outcome
      source: duplicate
""")


@bounded
async def test_insert_returning_select_and_a_unique_violation_takes_the_catch(
    sql: SqlIntegration, schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless told: let it log statements (INFO; its
    # DEBUG adds result rows, which no setting hides).
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    async with engine(sql) as eng:
        await eng.create_flow("signUp", SIGN_UP)
        ok = await run(eng, "signUp", {"email": "lin@example.com", "name": "Lin"}, "lin")
        dup = await run(eng, "signUp", {"email": "ada@example.com", "name": SECRET}, "dup")
        events = await history(eng, "signUp", "dup")
    assert ok.status == "Succeeded"
    assert ok.output == {
        "inserted": [{"id": 2, "email": "lin@example.com", "name": "Lin"}],
        "customers": [{"email": "ada@example.com"}, {"email": "lin@example.com"}],
        "count": 2,
    }
    assert (dup.status, dup.output) == ("Succeeded", {"outcome": "duplicate"})
    failed = [detail for kind, detail in events if kind == "TaskFailed"]
    # The driver's DETAIL line (`Key (email)=(ada@example.com) already exists`) is left out.
    assert failed == [
        {
            "error": "SQL.IntegrityError",
            "cause": "database 'app': duplicate key value violates unique constraint "
            '"customers_email_key"',
        }
    ]
    assert emails(schema_url) == ["ada@example.com", "lin@example.com"]
    assert "SQL.IntegrityError" in caplog.text  # logged, ...
    assert SECRET not in caplog.text  # ... without the values
    assert "INSERT INTO customers" in caplog.text  # SQLAlchemy logged the statement ...
    assert "parameters hidden" in caplog.text  # ... but not its values
    assert "ada@example.com" not in caplog.text  # the :email of the duplicate, too
    assert "already exists" not in caplog.text  # the DETAIL line


@bounded
async def test_a_failing_task_leaves_nothing_and_tasks_share_one_pool(
    sql: SqlIntegration, schema_url: str
) -> None:
    flow = fdl("""
    - type: task
      name: first
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: INSERT INTO customers (email, name) VALUES (:first, 'First')
        Parameters: $
    - type: task
      name: second
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: >-
          INSERT INTO customers (email, name) VALUES (:fresh, 'Fresh'), (:taken, 'Taken')
        Parameters: $
    """)
    shared = sql.engine_for("app")
    checkouts: list[object] = []
    event.listen(shared, "checkout", lambda *args: checkouts.append(args[0]))
    data = {"first": "bo@example.com", "fresh": "cy@example.com", "taken": "ada@example.com"}
    async with engine(sql) as eng:
        await eng.create_flow("two", flow)
        info = await run(eng, "two", data, "two")
        assert sql.engine_for("app") is shared  # one pool while the engine runs
    assert (info.status, info.error) == ("Failed", "SQL.IntegrityError")
    # The first task committed; the failing second one left nothing, not even its first row.
    assert emails(schema_url) == ["ada@example.com", "bo@example.com"]
    assert sql.engine_for("app") is not shared  # closing the engine disposed of the pool
    assert len(checkouts) == 2


@bounded
async def test_values_are_json_safe(sql: SqlIntegration) -> None:
    statement = (
        "SELECT TIMESTAMP '2024-05-01 12:30:00' AS ts, "
        "TIMESTAMPTZ '2024-05-01 12:30:00+00' AS tstz, DATE '2024-05-01' AS day, "
        "TIME '08:15:00' AS t, CAST(:amount AS numeric(10, 2)) AS amount, "
        "CAST(:id AS uuid) AS id, decode('00ff6869', 'hex') AS raw, "
        "CAST(:doc AS jsonb) AS doc, ARRAY[1.5, 2]::numeric[] AS nums, "
        "INTERVAL '1 minute 30 seconds' AS span, 'NaN'::float8 AS nan, NULL AS nothing"
    )
    flow = one_step(
        statement,
        '{amount: "12.5", id: 12345678-1234-5678-1234-567812345678, doc: {"a": [1, 2]}}',
    )
    async with engine(sql) as eng:
        await eng.create_flow("types", flow)
        info = await run(eng, "types", {}, "types")
    assert info.status == "Succeeded", info.cause
    assert info.output == {
        "Rows": [
            {
                "ts": "2024-05-01T12:30:00",
                "tstz": "2024-05-01T12:30:00+00:00",
                "day": "2024-05-01",
                "t": "08:15:00",
                "amount": "12.50",
                "id": "12345678-1234-5678-1234-567812345678",
                "raw": "AP9oaQ==",
                "doc": {"a": [1, 2]},
                "nums": ["1.5", "2"],
                "span": 90.0,
                "nan": "NaN",
                "nothing": None,
            }
        ],
        "RowCount": 1,
    }


@bounded
async def test_a_data_error_masks_the_value_and_shows_no_statement(sql: SqlIntegration) -> None:
    flow = one_step("SELECT CAST(:n AS integer) AS n")
    async with engine(sql) as eng:
        await eng.create_flow("cast", flow)
        info = await run(eng, "cast", {"n": SECRET}, "cast")
        typo = await run(eng, "cast", {"n": "1"}, "ok")
    assert info.error == "SQL.DataError"
    assert info.cause == "database 'app': invalid input syntax for type integer: \"***\""
    assert typo.output == {"Rows": [{"n": 1}], "RowCount": 1}


@bounded
async def test_a_syntax_error_is_a_programming_error(sql: SqlIntegration) -> None:
    async with engine(sql) as eng:
        await eng.create_flow("typo", one_step("SELEKT :n", "{n: 1}"))
        info = await run(eng, "typo", {}, "typo")
    assert info.error == "SQL.ProgrammingError"
    assert info.cause == "database 'app': syntax error at or near \"SELEKT\""


@bounded
async def test_statement_timeout_cancels_a_long_statement(schema_url: str) -> None:
    sql = SqlIntegration(SqlSettings(databases={"app": schema_url}, statement_timeout_seconds=0.2))
    flow = fdl("""
    - type: task
      name: slow
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: SELECT pg_sleep(5)
    """)
    try:
        async with engine(sql) as eng:
            await eng.create_flow("slow", flow)
            info = await run(eng, "slow", {}, "slow")
    finally:
        sql.close()
    assert (info.error, info.cause) == (
        "SQL.OperationalError",
        "database 'app': canceling statement due to statement timeout",
    )


@bounded
async def test_a_steps_timeout_bounds_its_statement_and_no_more(schema_url: str) -> None:
    # One pooled connection: the second task runs on the connection the first one used.
    sql = SqlIntegration(SqlSettings(databases={"app": schema_url}, pool_size=1))
    flow = fdl("""
    - type: task
      name: bounded
      action: sql:Execute
      timeoutSeconds: 30
      serviceParams:
        Database: app
        Statement: SELECT current_setting('statement_timeout') AS timeout
      outputMappings:
        - target: bounded
          source: $local.Rows[0].timeout
    - type: task
      name: unbounded
      action: sql:Execute
      serviceParams:
        Database: app
        Statement: SELECT current_setting('statement_timeout') AS timeout
      outputMappings:
        - target: unbounded
          source: $local.Rows[0].timeout
    """)
    try:
        async with engine(sql) as eng:
            await eng.create_flow("timeouts", flow)
            info = await run(eng, "timeouts", {}, "timeouts")
    finally:
        sql.close()
    # SET LOCAL ended with the first task's transaction.
    assert info.output == {"bounded": "30s", "unbounded": "0"}


@bounded
async def test_a_password_reference_is_read_from_the_environment(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sa.engine.make_url(schema_url).set(password="${RELAYFLOW_TEST_PG_PASSWORD}")
    text = url.render_as_string(hide_password=False).replace(
        "%24%7BRELAYFLOW_TEST_PG_PASSWORD%7D", "${RELAYFLOW_TEST_PG_PASSWORD}"
    )
    sql = SqlIntegration(SqlSettings(databases={"app": text}))
    monkeypatch.setenv("RELAYFLOW_TEST_PG_PASSWORD", "trust-ignores-it")
    try:
        async with engine(sql) as eng:
            await eng.create_flow("count", one_step("SELECT count(*) AS n FROM customers", "{}"))
            info = await run(eng, "count", {}, "count")
        assert sql.engine_for("app").url.password == "trust-ignores-it"
    finally:
        sql.close()
    assert info.output == {"Rows": [{"n": 1}], "RowCount": 1}


@bounded(seconds=10)
async def test_nothing_a_task_sets_on_its_connection_reaches_the_next_task(schema_url: str) -> None:
    """search_path, temp tables, advisory locks and prepared statements stayed on the pooled
    connection for every later task of every flow; connections are now reset on return."""
    sql = SqlIntegration(SqlSettings(databases={"app": schema_url}, pool_size=1))
    plants = [
        "SET search_path TO pg_catalog",
        "CREATE TEMP TABLE leak AS SELECT 1 AS v",
        "SELECT pg_advisory_lock(42)::text AS locked",
        "PREPARE spy AS SELECT 1",
        *["SELECT 1 AS one"] * 6,  # past psycopg's prepare threshold
    ]
    check = (
        "SELECT current_setting('search_path') AS path,"
        " to_regclass('pg_temp.leak') IS NULL AS no_temp,"
        " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory') AS locks,"
        " (SELECT count(*) FROM pg_prepared_statements) AS prepared"
    )
    try:
        async with engine(sql) as eng:
            for n, statement in enumerate(plants):
                await eng.create_flow(f"plant{n}", one_step(statement, "{}"))
                assert (await run(eng, f"plant{n}", {}, f"plant{n}")).status == "Succeeded"
            await eng.create_flow("check", one_step(check, "{}"))
            info = await run(eng, "check", {}, "check")
    finally:
        sql.close()
    expected_path = schema_url.rsplit("%3D", 1)[1]
    assert info.output["Rows"] == [
        {"path": expected_path, "no_temp": True, "locks": 0, "prepared": 0}
    ]
