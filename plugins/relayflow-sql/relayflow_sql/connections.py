"""What a flow's statement may do to its connection, and what a pooled connection keeps.

A pooled connection serves task after task, of every flow: whatever one statement leaves on it
(an attached file, a temporary trigger, a changed pragma, a session setting) would reach the
next task, whatever its flow. So:

- **SQLite**: every connection gets an authorizer (`sqlite3.Connection.set_authorizer`) that
  refuses what reaches another file or changes the connection: ATTACH and DETACH (and so
  VACUUM, which SQLite implements by attaching), `load_extension()`, TEMP tables, views,
  triggers and virtual tables, pragmas other than a list of reads, and the functions that
  read what an earlier statement left (`last_insert_rowid()`, `changes()`,
  `total_changes()`). A connection that comes back with another database attached or a
  temporary object anyway is closed instead of pooled again. Reading `sqlite_stmt` (the
  statements other tasks prepared on the connection) is refused too.
- **PostgreSQL**: a connection coming back to the pool is reset with `DISCARD ALL` (settings,
  role, temporary tables, prepared statements, advisory locks, LISTEN), and psycopg 3 does not
  prepare statements on the server. What the database role may reach is the database's
  business: see the README's Security section.

A refusal happens while SQLite prepares the statement, on the thread running it; the reason is
kept for that thread (`take_refusal`) so that the task fails naming what was refused instead of
SQLite's bare "not authorized".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

__all__ = ["clear_refusal", "connect_arguments", "guard", "refusal", "take_refusal"]

log = logging.getLogger("relayflow_sql")

_ELSEWHERE = "a flow's statements reach only the database file the configuration names"
_UNCHANGED = "a flow's statements do not change their connection"
_OUTLIVES = "it would outlive the task on a pooled connection"
_EARLIER = "it reads what an earlier task left on a pooled connection"

#: Pragmas a statement may read (without a value): none of them changes anything.
PRAGMA_READS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "automatic_index",
        "busy_timeout",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",  # FTS5 reads it on its own
        "database_list",
        "defer_foreign_keys",
        "encoding",
        "foreign_key_check",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "integrity_check",
        "journal_mode",
        "legacy_alter_table",
        "locking_mode",
        "max_page_count",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "quick_check",
        "read_uncommitted",  # SQLAlchemy reads it on first connect
        "recursive_triggers",
        "schema_version",
        "secure_delete",
        "synchronous",
        "table_list",
        "temp_store",
        "trusted_schema",
        "user_version",
    }
)
#: Pragmas whose argument names what to look at (a table, an index), not a value to set.
PRAGMA_LOOKUPS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
_FUNCTIONS = {
    "load_extension": f"load_extension() is not allowed: {_ELSEWHERE}",
    "fts3_tokenizer": "fts3_tokenizer() is not allowed: it deals in memory addresses",
    "last_insert_rowid": f"last_insert_rowid() is not allowed: {_EARLIER} (use RETURNING)",
    "changes": f"changes() is not allowed: {_EARLIER} (use RETURNING)",
    "total_changes": f"total_changes() is not allowed: {_EARLIER} (use RETURNING)",
}
_TEMP_OBJECTS = {
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "index",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "table",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "trigger",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "view",
}
# What a connection must not carry back to the pool: another database, a temporary object.
_LEFT_BEHIND = (
    "SELECT (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))"
    " + (SELECT count(*) FROM temp.sqlite_master)"
)

_refusals = threading.local()


def clear_refusal() -> None:
    """Forget this thread's last refusal: call before running a statement."""
    _refusals.reason = None


def take_refusal() -> str | None:
    """Why the authorizer refused this thread's last statement, or None; and forget it."""
    reason: str | None = getattr(_refusals, "reason", None)
    _refusals.reason = None
    return reason


def _pragma_refusal(name: str, value: str | None) -> str | None:
    if name in PRAGMA_LOOKUPS or (value is None and name in PRAGMA_READS):
        return None
    if name in PRAGMA_READS:
        return f"PRAGMA {name} may be read but not set: {_UNCHANGED}"
    return (
        f"PRAGMA {name} is not allowed: a flow's statements may read only the pragmas "
        "the relayflow-sql README lists"
    )


def refusal(action: int, arg1: str | None, arg2: str | None, schema: str | None) -> str | None:
    """Why SQLite's authorizer must refuse an action, or None when it may go on."""
    if action == sqlite3.SQLITE_READ:
        # sqlite_stmt lists the statements prepared on the connection: other tasks' SQL.
        if (arg1 or "").lower() == "sqlite_stmt":
            return f"reading sqlite_stmt is not allowed: {_EARLIER}"
        return None
    if action == sqlite3.SQLITE_FUNCTION:
        return _FUNCTIONS.get((arg2 or "").lower())
    if action == sqlite3.SQLITE_PRAGMA:
        return _pragma_refusal((arg1 or "").lower(), arg2)
    if action == sqlite3.SQLITE_ATTACH:
        return f"attaching a database (ATTACH, VACUUM) is not allowed: {_ELSEWHERE}"
    if action == sqlite3.SQLITE_DETACH:
        return f"DETACH is not allowed: {_ELSEWHERE}"
    kind = _TEMP_OBJECTS.get(action)
    if kind is None and action == sqlite3.SQLITE_CREATE_VTABLE and schema == "temp":
        kind = "virtual table"
    if kind is not None:
        return f"a TEMP {kind} is not allowed: {_OUTLIVES}"
    return None


def _authorize(
    action: int, arg1: str | None, arg2: str | None, schema: str | None, source: str | None
) -> int:
    reason = refusal(action, arg1, arg2, schema)
    if reason is None:
        return sqlite3.SQLITE_OK
    _refusals.reason = reason
    return sqlite3.SQLITE_DENY


def _on_sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # Extension loading stays off (sqlite3's default); the authorizer also refuses the
    # load_extension() function, so enabling it elsewhere would not reach flows.
    dbapi_connection.set_authorizer(_authorize)


def _on_sqlite_checkin(dbapi_connection: Any, record: Any) -> None:
    if dbapi_connection is None:  # already invalidated
        return
    try:
        (left,) = dbapi_connection.execute(_LEFT_BEHIND).fetchone()
    except sqlite3.Error:
        left = -1
    if left:
        # The authorizer should have made this impossible: close rather than pool it again.
        log.warning("a SQLite connection came back with state a task left on it; closed it")
        record.invalidate()


def _on_postgresql_reset(dbapi_connection: Any, record: Any, reset_state: Any) -> None:
    if reset_state.terminate_only:  # the connection is being closed anyway
        return
    dbapi_connection.rollback()
    dbapi_connection.autocommit = True  # DISCARD ALL cannot run inside a transaction block
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("DISCARD ALL")
    finally:
        cursor.close()
        dbapi_connection.autocommit = False


def connect_arguments(url: URL) -> dict[str, Any]:
    """What the driver must be told when connecting, for the limits above to hold."""
    if url.get_driver_name() == "psycopg":
        # psycopg 3 prepares a statement it has run a few times, on the server: DISCARD ALL
        # would drop those under its feet, and pg_prepared_statements would show every task
        # the statements other tasks ran on that connection.
        return {"prepare_threshold": None}
    return {}


def guard(engine: Engine) -> None:
    """Install the limits above on a new engine, before it opens its first connection."""
    backend = engine.dialect.name
    if backend == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "checkin", _on_sqlite_checkin)
    elif backend == "postgresql":
        event.listen(engine, "reset", _on_postgresql_reset)
