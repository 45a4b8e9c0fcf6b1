"""The `sql` integration: a task step `action: sql:Execute` runs one SQL statement.

```yaml
- type: task
  name: addOrder
  action: sql:Execute
  serviceParams:
    Database: orders
    Statement: INSERT INTO orders (id, total) VALUES (:id, :total) RETURNING id
    Parameters: $
```

Each task runs its statement in a transaction of its own, on a thread of the integration's pool
(SQLAlchemy's engines are synchronous), through the engine of its database: one SQLAlchemy
`Engine`, and so one connection pool, per configured database, made on first use and shared by
every task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from relayflow.engine import Failed, Integration, Succeeded, TaskOutcome, TaskRequest
from relayflow.errors import ERROR_RUNTIME
from relayflow_sql.connections import clear_refusal, connect_arguments, guard, take_refusal
from relayflow_sql.errors import (
    ERROR_CONFIGURATION,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_ALLOWED,
    ERROR_TOO_MANY_ROWS,
    error_name,
    masked_message,
)
from relayflow_sql.settings import EnvironmentMissing, SqlSettings, resolve_url
from relayflow_sql.values import bind_value, json_safe

__all__ = ["ACTION", "MAX_THREADS", "SqlIntegration"]

log = logging.getLogger("relayflow_sql")

#: The action name a task step gives to run a statement.
ACTION = "sql:Execute"
#: At most this many statements run at once, over all databases.
MAX_THREADS = 32
_PARAMS = ("Database", "Statement", "Parameters")


class _Refused(Exception):
    """A task that cannot run as asked: fails with ``error`` and ``cause``."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.outcome = Failed(error, cause)


class _TooManyRows(Exception):
    """More rows than `max_rows`; raised inside the transaction so that it rolls back."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One statement to run, checked: the database's name, the clause and its bound values."""

    database: str
    clause: TextClause
    binds: dict[str, Any]
    timeout_seconds: float | None


@lru_cache(maxsize=512)
def _compile(statement: str) -> tuple[TextClause, tuple[str, ...]]:
    """The statement as a text clause, and the names of its `:name` parameters."""
    clause = text(statement)
    return clause, tuple(clause.compile().params)


def _invalid(cause: str) -> _Refused:
    return _Refused(ERROR_INVALID_PARAMETER, cause)


class SqlIntegration(Integration):
    """Runs `sql:Execute` tasks against the databases of `[integrations.sql.databases]`."""

    name = "sql"
    patterns = frozenset({"requestResponse"})
    config_model = SqlSettings

    def __init__(self, settings: SqlSettings | None = None) -> None:
        self.settings = settings or SqlSettings()
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="relayflow-sql")
        self._closed = False

    def claims(self, resource: str) -> bool:
        """Only the action `sql:Execute`."""
        return resource == ACTION

    # -- engines ------------------------------------------------------------------------------

    def engine_for(self, database: str) -> Engine:
        """The shared SQLAlchemy engine of a configured database, made on first use.

        Raises:
            KeyError: no database has that name.
            EnvironmentMissing: its password names an environment variable that is not set.
            RuntimeError: the integration is closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the sql integration is closed")
            engine = self._engines.get(database)
            if engine is None:
                engine = self._engines[database] = self._create(database)
            return engine

    def _create(self, database: str) -> Engine:
        url = resolve_url(self.settings.databases[database])
        options: dict[str, Any] = {
            "hide_parameters": True,  # SQLAlchemy's logs and exception text show no values
            "pool_pre_ping": True,  # a long-lived engine outlives server restarts
        }
        if self.settings.pool_size is not None:
            options["pool_size"] = self.settings.pool_size
        connect_args = connect_arguments(url)
        timeout = self.settings.statement_timeout_seconds
        if timeout is not None and url.get_backend_name() == "sqlite":
            connect_args["timeout"] = timeout  # how long to wait for a lock
        if connect_args:
            options["connect_args"] = connect_args
        engine = create_engine(url, **options)
        guard(engine)  # before the first connection: every pooled connection is limited
        return engine

    async def aclose(self) -> None:
        """Close every pooled connection; `Engine.close` calls this.

        The integration stays usable: a later task opens its database's pool again, so one
        integration may serve an engine that is closed and started again.
        """
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.dispose()

    def close(self) -> None:
        """Dispose of every engine (closing pooled connections) and stop the threads for good.

        Tasks invoked afterwards fail with `FnF.RuntimeError`.
        """
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._closed = True
        for engine in engines:
            engine.dispose()
        self._io.shutdown(wait=False)

    # -- tasks --------------------------------------------------------------------------------

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Check the serviceParams, then run the statement on a pool thread."""
        try:
            call = self._prepare(request)
        except _Refused as refused:
            return self._failed(request, refused.outcome)
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._io, self._execute, call)
        except RuntimeError:  # the executor was shut down by close()
            outcome = Failed(ERROR_RUNTIME, "the sql integration is closed")
        return self._failed(request, outcome) if isinstance(outcome, Failed) else outcome

    def _prepare(self, request: TaskRequest) -> _Call:
        params = request.service_params or {}
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise _invalid(
                f"serviceParams.{unknown[0]} is not a parameter of {ACTION}, "
                "which takes Database, Statement and Parameters"
            )
        database = params.get("Database")
        if database is None:
            raise _invalid(
                "serviceParams.Database is required: the name of a database "
                "under [integrations.sql.databases]"
            )
        if not isinstance(database, str) or database not in self.settings.databases:
            known = ", ".join(sorted(self.settings.databases)) or "none"
            raise _invalid(
                f"serviceParams.Database {database!r} names no database of "
                f"[integrations.sql.databases] (configured: {known})"
            )
        statement = params.get("Statement")
        if not isinstance(statement, str) or not statement.strip():
            raise _invalid(
                "serviceParams.Statement is required: one SQL statement, with :name parameters"
            )
        parameters = params.get("Parameters", {})
        if not isinstance(parameters, dict):
            raise _invalid(
                "serviceParams.Parameters must be an object of parameter values "
                f"($ is the whole mapped input), not {type(parameters).__name__}"
            )
        clause, names = _compile(statement)
        missing = [name for name in names if name not in parameters]
        if missing:
            listed = ", ".join(f":{name}" for name in missing)
            raise _invalid(
                f"serviceParams.Parameters has no value for {listed}, "
                f"which serviceParams.Statement uses"
            )
        limits = [
            t for t in (self.settings.statement_timeout_seconds, request.timeout_seconds) if t
        ]
        return _Call(
            database,
            clause,
            {name: bind_value(parameters[name]) for name in names},
            min(limits) if limits else None,
        )

    def _execute(self, call: _Call) -> TaskOutcome:
        """Run one statement in its own transaction (on a pool thread)."""
        where = f"database {call.database!r}"
        try:
            engine = self.engine_for(call.database)
        except EnvironmentMissing as exc:
            return Failed(
                ERROR_CONFIGURATION,
                f"{where}: its password names the environment variable {exc.variable}, "
                "which is not set",
            )
        except RuntimeError as exc:
            return Failed(ERROR_RUNTIME, str(exc))
        except ImportError as exc:  # the URL's driver is not installed
            return Failed(ERROR_CONFIGURATION, f"{where}: its driver is not installed: {exc}")
        except Exception as exc:  # an argument the dialect refuses; the text might hold the URL
            return Failed(
                ERROR_CONFIGURATION, f"{where}: cannot make its engine: {type(exc).__name__}"
            )
        max_rows = self.settings.max_rows
        clear_refusal()
        try:
            with engine.begin() as conn:
                self._limit_time(conn, call.timeout_seconds)
                result = conn.execute(call.clause, call.binds)
                if not result.returns_rows:
                    return Succeeded({"Rows": [], "RowCount": result.rowcount})
                keys = list(result.keys())
                rows = result.fetchmany(max_rows + 1)
                if len(rows) > max_rows:
                    raise _TooManyRows
                objects = [
                    {key: json_safe(value) for key, value in zip(keys, row, strict=True)}
                    for row in rows
                ]
        except _TooManyRows:
            return Failed(
                ERROR_TOO_MANY_ROWS,
                f"{where}: the statement returned more than max_rows ({max_rows}) rows; "
                "nothing was committed",
            )
        except SQLAlchemyError as exc:
            refused = take_refusal()  # SQLite's own message only says "not authorized"
            if refused is not None:
                return Failed(ERROR_NOT_ALLOWED, f"{where}: {refused}")
            return Failed(error_name(exc), f"{where}: {masked_message(exc, call.binds.values())}")
        return Succeeded({"Rows": objects, "RowCount": len(objects)})

    @staticmethod
    def _limit_time(conn: Connection, seconds: float | None) -> None:
        # SET LOCAL lasts until the transaction ends, so a pooled connection keeps no trace.
        if seconds is not None and conn.dialect.name == "postgresql":
            milliseconds = max(1, math.ceil(seconds * 1000))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")

    @staticmethod
    def _failed(request: TaskRequest, outcome: Failed) -> Failed:
        # The cause holds no statement text and no parameter values: safe to log.
        log.info(
            "sql task %s/%s (step %s) failed: %s: %s",
            request.flow_name,
            request.execution_name,
            request.step_name,
            outcome.error,
            outcome.cause,
        )
        return outcome
