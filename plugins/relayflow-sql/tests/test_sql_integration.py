"""SqlIntegration on its own: registration, settings, secrets, serviceParams, values and causes.

Statements run against SQLite files in a temporary directory; every async test runs its own
event loop with an overall time limit.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, TimeoutError

import relayflow_sql
from relayflow.cli import main
from relayflow.config import ConfigError, load_config
from relayflow.engine import Failed, Succeeded, TaskRequest
from relayflow.errors import ERROR_RUNTIME
from relayflow.plugins import PluginManager
from relayflow.testing import bounded
from relayflow_sql import SqlIntegration, SqlSettings, json_safe, mask_url, resolve_url
from relayflow_sql.errors import masked_message

TEST_TIMEOUT = 5.0


def request(params: dict[str, Any] | None, timeout: int | None = None) -> TaskRequest:
    return TaskRequest(
        flow_name="f",
        execution_name="e",
        step_name="s",
        task_id=1,
        token="t",
        resource="sql:Execute",
        pattern="requestResponse",
        input={},
        service_params=params,
        timeout_seconds=timeout,
        attempt=0,
    )


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[SqlIntegration]:
    integration = SqlIntegration(SqlSettings(databases={"app": f"sqlite:///{tmp_path}/app.db"}))
    yield integration
    integration.close()


# ---------------------------------------------------------------------------------------------
# Registration and claims


def test_the_entry_point_registers_the_sql_integration() -> None:
    points = [ep for ep in entry_points(group="relayflow") if ep.name == "sql"]
    assert [ep.value for ep in points] == ["relayflow_sql"]
    manager = PluginManager()
    manager.register(relayflow_sql, "sql")
    spec = manager.integration_specs()["sql"]
    assert spec.config_model is SqlSettings
    built = spec.factory(SqlSettings())
    assert isinstance(built, SqlIntegration)
    built.close()


def test_claims_only_its_action(sql: SqlIntegration) -> None:
    assert sql.claims("sql:Execute")
    assert not sql.claims("sql:Query")
    assert not sql.claims("acs:fc:::services/a/functions/b")
    assert sql.patterns == frozenset({"requestResponse"})


# ---------------------------------------------------------------------------------------------
# Settings


def _check(tmp_path: Path, table: str) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(table)
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_sql, "sql")
    manager.check_config(config)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a SQLAlchemy database URL"),
        ("postgresql://app:hunter2@host:port/db", "not a SQLAlchemy database URL"),
        ("nosuchdb://app:hunter2@host/db", "no installed SQLAlchemy dialect serves 'nosuchdb'"),
        ("postgresql+asyncpg://app:hunter2@host/db", "is an asyncio driver"),
        ("postgresql://app:pw@${HOST}/db", "only the password may name an environment variable"),
    ],
)
def test_a_bad_url_is_a_clear_error_naming_its_key(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _check(tmp_path, f'[integrations.sql.databases]\norders = "{url}"\n')
    text = str(caught.value)
    assert "relayflow.toml: integrations.sql.databases.orders: " in text
    assert message in text
    assert "hunter2" not in text  # the rejected URL is shown with its password masked


def test_other_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'integrations.sql.max_row'$"):
        _check(tmp_path, "[integrations.sql]\nmax_row = 5\n")
    with pytest.raises(ConfigError, match=r"integrations.sql.max_rows: input should be greater"):
        _check(tmp_path, "[integrations.sql]\nmax_rows = 0\n")
    with pytest.raises(ValidationError):
        SqlSettings(databases={"a b": "sqlite://"})
    settings = SqlSettings()
    assert (settings.databases, settings.max_rows, settings.pool_size) == ({}, 10_000, None)


def test_config_show_masks_literal_passwords_and_keeps_references(tmp_path: Path) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(
        "[integrations.sql.databases]\n"
        'orders = "postgresql+psycopg://app:hunter2@db.internal/orders"\n'
        'billing = "postgresql+psycopg://app:${BILLING_DB_PASSWORD}@db.internal/billing"\n'
    )
    result = CliRunner().invoke(main, ["config", "show", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.stdout
    databases = json.loads(result.stdout)["integrations"]["sql"]["databases"]
    assert databases == {
        "orders": "postgresql+psycopg://app:***@db.internal/orders",
        "billing": "postgresql+psycopg://app:${BILLING_DB_PASSWORD}@db.internal/billing",
    }


def test_mask_url() -> None:
    assert mask_url("postgresql://app:p%40ss@h/d") == "postgresql://app:***@h/d"
    assert mask_url("postgresql://app@h/d") == "postgresql://app@h/d"
    assert mask_url("postgresql://app:a/b@c@h:x/d") == "postgresql://app:***@h:x/d"
    assert mask_url("app:secret@h") == "***@h"


def test_a_password_reference_reads_the_environment() -> None:
    text = "postgresql+psycopg://app:${ORDERS_DB_PASSWORD}@127.0.0.1:5432/orders"
    url = resolve_url(text, {"ORDERS_DB_PASSWORD": "p@ss/w:rd"})
    assert url.password == "p@ss/w:rd"  # set on the parsed URL: no escaping needed
    assert (url.host, url.database, url.username) == ("127.0.0.1", "orders", "app")
    assert resolve_url("sqlite:///x.db", {}).database == "x.db"
    with pytest.raises(LookupError):
        resolve_url(text, {})


@bounded(seconds=TEST_TIMEOUT)
async def test_a_missing_password_variable_fails_the_task_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_SUCH_DB_PASSWORD", raising=False)
    url = "postgresql+psycopg://app:${NO_SUCH_DB_PASSWORD}@127.0.0.1:1/orders"
    sql = SqlIntegration(SqlSettings(databases={"orders": url}))
    try:
        outcome = await sql.invoke(request({"Database": "orders", "Statement": "SELECT 1"}))
    finally:
        sql.close()
    assert outcome == Failed(
        "SQL.ConfigurationError",
        "database 'orders': its password names the environment variable NO_SUCH_DB_PASSWORD, "
        "which is not set",
    )


@bounded(seconds=TEST_TIMEOUT)
async def test_a_missing_driver_fails_the_task_with_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_driver(*args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError("No module named 'psycopg'")

    monkeypatch.setattr("relayflow_sql.integration.create_engine", no_driver)
    sql = SqlIntegration(SqlSettings(databases={"app": f"sqlite:///{tmp_path}/app.db"}))
    try:
        outcome = await sql.invoke(request({"Database": "app", "Statement": "SELECT 1"}))
    finally:
        sql.close()
    assert outcome == Failed(
        "SQL.ConfigurationError",
        "database 'app': its driver is not installed: No module named 'psycopg'",
    )


# ---------------------------------------------------------------------------------------------
# serviceParams


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        (None, "serviceParams.Database is required"),
        ({"Statement": "SELECT 1"}, "serviceParams.Database is required"),
        ({"Database": "nope", "Statement": "SELECT 1"}, "serviceParams.Database 'nope' names"),
        ({"Database": 7, "Statement": "SELECT 1"}, "serviceParams.Database 7 names"),
        ({"Database": "app"}, "serviceParams.Statement is required"),
        ({"Database": "app", "Statement": "  "}, "serviceParams.Statement is required"),
        (
            {"Database": "app", "Statement": "SELECT :a", "Parameters": [1]},
            "serviceParams.Parameters must be an object of parameter values "
            "($ is the whole mapped input), not list",
        ),
        (
            {"Database": "app", "Statement": "SELECT :a, :b AS b", "Parameters": {"b": 1}},
            "serviceParams.Parameters has no value for :a, which serviceParams.Statement uses",
        ),
        (
            {"Database": "app", "Statement": "SELECT 1", "Params": {}},
            "serviceParams.Params is not a parameter of sql:Execute",
        ),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_bad_service_params_fail_with_invalid_parameter(
    sql: SqlIntegration, params: dict[str, Any] | None, cause: str
) -> None:
    outcome = await sql.invoke(request(params))
    assert isinstance(outcome, Failed)
    assert outcome.error == "SQL.InvalidParameter"
    assert outcome.cause.startswith(cause)


@bounded(seconds=TEST_TIMEOUT)
async def test_parameters_bind_by_name_and_objects_as_json_text(sql: SqlIntegration) -> None:
    outcome = await sql.invoke(
        request(
            {
                "Database": "app",
                "Statement": "SELECT :n AS n, :doc AS doc, :none AS none, :flag AS flag",
                "Parameters": {"n": 2, "doc": {"a": [1, "é"]}, "none": None, "flag": True, "x": 0},
            }
        )
    )
    assert outcome == Succeeded(
        {"Rows": [{"n": 2, "doc": '{"a":[1,"é"]}', "none": None, "flag": 1}], "RowCount": 1}
    )


@bounded(seconds=TEST_TIMEOUT)
async def test_row_count_of_statements_without_rows(sql: SqlIntegration) -> None:
    async def run(statement: str) -> Any:
        outcome = await sql.invoke(request({"Database": "app", "Statement": statement}))
        assert isinstance(outcome, Succeeded), outcome
        return outcome.output

    assert await run("CREATE TABLE t (x INTEGER)") == {"Rows": [], "RowCount": -1}
    assert await run("INSERT INTO t VALUES (1), (2), (3)") == {"Rows": [], "RowCount": 3}
    assert await run("UPDATE t SET x = x + 1 WHERE x > 1") == {"Rows": [], "RowCount": 2}


@bounded(seconds=TEST_TIMEOUT)
async def test_close_disposes_of_the_engines(sql: SqlIntegration) -> None:
    params = {"Database": "app", "Statement": "SELECT 1 AS one"}
    assert await sql.invoke(request(params)) == Succeeded({"Rows": [{"one": 1}], "RowCount": 1})
    engine = sql.engine_for("app")
    assert engine.pool.checkedin() == 1
    sql.close()
    assert engine.pool.checkedin() == 0
    with pytest.raises(RuntimeError, match="closed"):
        sql.engine_for("app")
    outcome = await sql.invoke(request(params))
    assert outcome == Failed(ERROR_RUNTIME, "the sql integration is closed")


# ---------------------------------------------------------------------------------------------
# Values and causes


class _Odd:
    def __str__(self) -> str:
        return "odd"


def test_json_safe_values() -> None:
    moment = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "at": moment,
        "day": datetime.date(2024, 5, 1),
        "time": datetime.time(8, 15, 0),
        "money": Decimal("12.50"),
        "big": Decimal("1E+3"),
        "nan": Decimal("NaN"),
        "float": 1.5,
        "inf": float("-inf"),
        "fnan": float("nan"),
        "span": datetime.timedelta(minutes=2, milliseconds=500),
        "bytes": b"\x00\xffhi",
        "view": memoryview(b"ok"),
        "id": ident,
        "list": (1, [Decimal("0.1")]),
        "set": frozenset({3}),
        "other": _Odd(),
    }
    assert json_safe(value) == {
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "time": "08:15:00",
        "money": "12.50",
        "big": "1000",
        "nan": "NaN",
        "float": 1.5,
        "inf": "-Infinity",
        "fnan": "NaN",
        "span": 120.5,
        "bytes": "AP9oaQ==",
        "view": "b2s=",
        "id": "12345678-1234-5678-1234-567812345678",
        "list": [1, ["0.1"]],
        "set": [3],
        "other": "odd",
    }
    json.dumps(json_safe(value), allow_nan=False)


class _Diag:
    message_primary = 'duplicate key value violates unique constraint "users_email_key"'


class _PsycopgLike(Exception):
    diag = _Diag()


def test_causes_keep_the_first_line_and_mask_parameter_values() -> None:
    exc = IntegrityError(
        "INSERT INTO users VALUES (%(email)s)",
        {"email": "ada@example.com"},
        _PsycopgLike(
            'duplicate key value violates unique constraint "users_email_key"\n'
            "DETAIL:  Key (email)=(ada@example.com) already exists."
        ),
    )
    assert masked_message(exc, ["ada@example.com"]) == (
        'duplicate key value violates unique constraint "users_email_key"'
    )
    plain = IntegrityError(
        "stmt", None, Exception('invalid input "abc" for (42) and x=longvalue\nLINE 1: stmt')
    )
    assert masked_message(plain, ["abc", 42, "longvalue", None, True]) == (
        'invalid input "***" for (***) and x=***'
    )
    pool = TimeoutError("QueuePool limit of size 1 overflow 0 reached, connection timed out")
    assert masked_message(pool) == (
        "QueuePool limit of size 1 overflow 0 reached, connection timed out"
    )
