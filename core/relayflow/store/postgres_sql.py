"""The SQL of the PostgreSQL store's transactions, and how stored text is read back.

`relayflow.store.postgres_tx` runs these statements; this module only holds them, the values
they share (the database's clock, the SQLSTATEs of conflicts) and the readers of stored JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from relayflow import jsontext
from relayflow.errors import first_line
from relayflow.store.base import OutboxRow

__all__ = [
    "CONFLICT_STATES",
    "EXEC_COLUMNS",
    "FLOW_COLUMNS",
    "MAX_PAYLOAD",
    "NOW",
    "OUTBOX_ID_BLOCK",
    "detail",
    "outbox_row",
    "render",
]

#: SQLSTATEs after which the transaction wrote nothing and may simply run again: serialization
#: failure, deadlock, lock not available (lock_timeout, NOWAIT).
CONFLICT_STATES: Final = frozenset({"40001", "40P01", "55P03"})
#: The longest NOTIFY payload PostgreSQL takes is 8,000 bytes (less one for the terminator).
MAX_PAYLOAD: Final = 7999
#: How many outbox ids a store takes from the sequence at once.
OUTBOX_ID_BLOCK: Final = 256
# The database's clock, as epoch seconds.
NOW: Final = "extract(epoch from clock_timestamp())::float8"

EXEC_COLUMNS = (
    "id, uid, flow_name, name, flow_id, flow_version, status, input, output, error, cause, "
    "started, stopped, state, callback_token"
)
FLOW_COLUMNS = "name, id, definition, description, type, role_arn, version, created, modified"
INSERT_EXECUTION = (
    "INSERT INTO executions (uid, flow_name, name, flow_id, flow_version, status, input, "
    "output, error, cause, started, stopped, state, callback_token) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (flow_name, name) DO NOTHING RETURNING id"
)
INSERT_EVENTS_HEAD = (
    "INSERT INTO events (execution_id, event_id, schedule_event_id, type, step_name, time, "
    "detail) VALUES "
)
EVENT_ROW = "(%s, %s, %s, %s, %s, %s, %s)"
KEYS = "unnest(%s::text[], %s::text[]) AS k(flow_name, name)"
LOCK_KEYS = (
    f"SELECT {EXEC_COLUMNS} FROM executions e WHERE EXISTS (SELECT 1 FROM {KEYS} "
    'WHERE e.flow_name = k.flow_name COLLATE "C" AND e.name = k.name COLLATE "C") '
    "ORDER BY e.flow_name, e.name FOR UPDATE"
)
OUTBOX_OF_KEYS = (
    "SELECT o.execution_id, o.id FROM outbox o JOIN executions e ON e.id = o.execution_id "
    f"WHERE EXISTS (SELECT 1 FROM {KEYS} "
    'WHERE e.flow_name = k.flow_name COLLATE "C" AND e.name = k.name COLLATE "C")'
)
UPSERT_VERSION = (
    "INSERT INTO flow_versions (name, version, definition) VALUES (%s, %s, %s) "
    "ON CONFLICT (name, version) DO UPDATE SET definition = excluded.definition"
)
CLAIM_TIMERS = (
    "WITH due AS (SELECT execution_id, timer_id FROM timers WHERE fire_at <= %s "
    f"AND (lease_until IS NULL OR lease_until < {NOW}) ORDER BY fire_at LIMIT %s "
    "FOR UPDATE SKIP LOCKED) "
    f"UPDATE timers t SET lease_owner = %s, lease_until = {NOW} + %s FROM due "
    "WHERE t.execution_id = due.execution_id AND t.timer_id = due.timer_id "
    "RETURNING t.execution_id, t.timer_id, t.fire_at, t.kind"
)
CLAIM_OUTBOX = (
    "WITH free AS (SELECT id FROM outbox "
    f"WHERE lease_until IS NULL OR lease_until < {NOW} ORDER BY id LIMIT %s "
    "FOR UPDATE SKIP LOCKED) "
    f"UPDATE outbox o SET lease_owner = %s, lease_until = {NOW} + %s FROM free "
    "WHERE o.id = free.id RETURNING o.id, o.execution_id, o.payload"
)


def _unreadable(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


def detail(text: str) -> dict[str, Any]:
    """A stored event detail, or ``{"unreadable": reason}`` when it cannot be parsed."""
    try:
        value = jsontext.loads(text)
    except (ValueError, RecursionError) as exc:
        return {"unreadable": _unreadable(exc)}
    return value if isinstance(value, dict) else {"unreadable": "not a JSON object"}


def outbox_row(row_id: int, execution_id: int, text: str) -> OutboxRow:
    """An outbox row as stored; an unparseable payload comes back marked unreadable."""
    try:
        payload = jsontext.loads(text)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        return OutboxRow(row_id, execution_id, {}, _unreadable(exc), text)
    return OutboxRow(row_id, execution_id, payload)


def literal(value: Any) -> str:
    """``value`` as an SQL literal, for a server with `standard_conforming_strings` on.

    Only the types the store passes: None, booleans, numbers, strings and lists of them.

    Raises:
        StoreError: a string holds NUL, which PostgreSQL's text cannot.
        TypeError: a value of another type (a bug).
    """
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"({value})"
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value) if value >= 0 else f"({value!r})"
        return "'NaN'::float8" if math.isnan(value) else f"'{value:+}inity'::float8"
    if isinstance(value, str):
        if "\x00" in value:
            from relayflow.store.base import StoreError

            raise StoreError("PostgreSQL text cannot hold the character NUL (\\x00)")
        # With standard_conforming_strings a quote is the only character to double.
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return f"ARRAY[{','.join(literal(v) for v in value)}]" if value else "'{}'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def render(sql: str, args: Sequence[Any]) -> str:
    """``sql`` with each ``%s`` replaced by its argument's literal (the SQL has no other ``%``)."""
    return sql % tuple(literal(a) for a in args)
