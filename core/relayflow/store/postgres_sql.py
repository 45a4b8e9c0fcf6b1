"""The SQL of the PostgreSQL store's transactions, and its literals.

`relayflow.store.postgres_tx` runs these statements; this module holds them, the values they
share (the database's clock, the SQLSTATEs of conflicts) and `literal`, which writes a value
into SQL text. Stored JSON is read back by `relayflow.store.decoding`, as in every driver.

Why literals. The engine runs many small jobs in one transaction, and with one round trip a
statement the writer spent its time waiting: `contrib/bench/bench_engine.py throughput` went
313 transitions/s with a round trip a statement, 877 once the statements that need no answer
were held back and sent in one message with the next query, 1,226 with a batch's executions
locked in one statement, and about 1,900-2,000 with these literals instead of psycopg's
client-side quoting and with BEGIN sent with the first query (SQLite: 3,000-5,400 in the same
runs; a loaded 2-core machine, so the figures move by a third from run to run). A message of
several statements is a simple query, which takes no parameters: hence literals. The server
then parses and plans every statement; the most frequent ones are therefore prepared once on
the writer's connection and sent as ``EXECUTE name(literals)`` (`NAMED`): about 2,400 -> 2,600.
Those frequent writes then went many rows a statement, as arrays (`relayflow.store.
postgres_bulk`), and a batch's new executions without a round trip each: PostgreSQL's CPU a
step transition 262 -> 148 us, the engine's 277 -> 211 us, 1,700 -> 2,640 transitions/s
(medians of four alternating runs on a busy machine).

psycopg's pipeline mode was measured too and not kept: one transition (lock, delete, three
events, an outbox row, an update) cost 755 us pipelined against 781 us with a round trip
each, because a Sync is needed after each statement (without one the session counts as
active, not idle in a transaction, and `idle_in_transaction_session_timeout` never ends a
frozen replica's transaction: seen holding a row lock for 8 s), and psycopg forgets its
prepared statements on a ROLLBACK TO SAVEPOINT while later statements already name them
("prepared statement does not exist").

Why literals are safe here. Every connection is opened with `standard_conforming_strings=on`
and `client_encoding=UTF8`, set after any options of the user's, and the store refuses a
connection that reports anything else (`relayflow.store.postgres_url.PINNED`). With both,
the only special character inside '...' is the quote, which `literal` doubles: a backslash is
an ordinary character, and no UTF-8 multi-byte sequence contains the byte of a quote (unlike
SJIS or GBK, where quote-doubling is unsafe). NUL, which text cannot hold, is refused. Numbers
are written by Python (`repr` of a float reads back as the same float), lists as ARRAY[...].
The SQL itself is the module's own and holds no other ``%``. tests/store/
test_postgres_literals.py sends hostile text through every statement that is held back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CONFLICT_STATES",
    "EXEC_COLUMNS",
    "FLOW_COLUMNS",
    "ID_BLOCK",
    "MAX_PAYLOAD",
    "NOW",
    "render",
]

#: SQLSTATEs after which the transaction wrote nothing and may simply run again: serialization
#: failure, deadlock, lock not available (lock_timeout, NOWAIT).
CONFLICT_STATES: Final = frozenset({"40001", "40P01", "55P03"})
#: The SQLSTATE (division by zero) of a held-back write that touched fewer or more rows than
#: the transaction counted on: the checked statements below divide by whether the count is
#: right, so that a wrong count fails the message, and its COMMIT with it, in the server.
#: No other statement of the store divides.
MISSED_STATE: Final = "22012"
#: What a transaction that acted on such a wrong count raises (a `StoreConflict`).
MISSED: Final = (
    "another transaction deleted an outbox row or timer of a locked execution, or started an "
    "execution of the same name; run the transaction again"
)
#: The longest NOTIFY payload PostgreSQL takes is 8,000 bytes (less one for the terminator).
MAX_PAYLOAD: Final = 7999
#: How many outbox or execution ids a store takes from their sequence at once.
ID_BLOCK: Final = 256
# The database's clock, as epoch seconds.
NOW: Final = "extract(epoch from clock_timestamp())::float8"

EXEC_COLUMNS = (
    "id, uid, flow_name, name, flow_id, flow_version, status, input, output, error, cause, "
    "started, stopped, state, callback_token, published_version"
)
FLOW_COLUMNS = (
    "name, id, definition, description, type, role_arn, version, created, modified, "
    "execution_mode, environment"
)
FLOW_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
INSERT_EXECUTION = (
    "INSERT INTO executions (uid, flow_name, name, flow_id, flow_version, status, input, "
    "output, error, cause, started, stopped, state, callback_token, published_version) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
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
LOCK_KEY = f"SELECT {EXEC_COLUMNS} FROM executions WHERE flow_name = %s AND name = %s FOR UPDATE"
# The outbox rows ("o", execution, id) and timers ("t", execution, timer id) of executions.
_WORK = (
    "SELECT 'o', execution_id, id FROM outbox WHERE execution_id = ANY(ARRAY(SELECT id FROM e)) "
    "UNION ALL SELECT 't', execution_id, timer_id FROM timers "
    "WHERE execution_id = ANY(ARRAY(SELECT id FROM e))"
)
WORK_OF_KEY = "WITH e AS (SELECT id FROM executions WHERE flow_name = %s AND name = %s) " + _WORK
WORK_OF_KEYS = (
    f"WITH e AS (SELECT e.id FROM executions e WHERE EXISTS (SELECT 1 FROM {KEYS} "
    'WHERE e.flow_name = k.flow_name COLLATE "C" AND e.name = k.name COLLATE "C")) ' + _WORK
)
WORK_OF_ID = "WITH e AS (SELECT %s::bigint AS id) " + _WORK
LOCK_ID = f"SELECT {EXEC_COLUMNS} FROM executions WHERE id = %s FOR UPDATE"
GET_FLOW = f"SELECT {FLOW_COLUMNS} FROM flows WHERE name = %s"
FLOW_DEFINITION = "SELECT definition FROM flow_versions WHERE name = %s AND version = %s"
# The flows of executions a batch's locks did not find (the starts among its jobs read them).
FLOW_OF_NEW_KEY = (
    f"SELECT {FLOW_COLUMNS} FROM flows WHERE name = %s AND NOT EXISTS "
    "(SELECT 1 FROM executions WHERE flow_name = %s AND name = %s)"
)
FLOWS_OF_NEW_KEYS = (
    f"SELECT {FLOW_COLUMNS} FROM flows WHERE name = ANY(ARRAY(SELECT k.flow_name FROM {KEYS} "
    "WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.flow_name = k.flow_name "
    'COLLATE "C" AND e.name = k.name COLLATE "C")))'
)
# The definition an execution runs, read with it (`_PgTx.get_execution` in a reader).
DEFINITION_OF_EXECUTION = (
    "SELECT v.definition FROM flow_versions v JOIN executions e ON v.name = e.flow_name "
    "AND v.version = e.flow_version WHERE e.flow_name = %s AND e.name = %s"
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


@dataclass(frozen=True, slots=True)
class Array:
    """A list of values of one SQL type (``type``), written as a typed array literal.

    Typed, because PostgreSQL gives ``ARRAY[NULL]`` the type text[], which a statement
    expecting double precision[] (a column of stop times, say, all still NULL) refuses.
    """

    values: Sequence[Any]
    type: str


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
    if isinstance(value, Array):
        return _array(value)
    if isinstance(value, list | tuple):
        return f"ARRAY[{','.join(literal(v) for v in value)}]" if value else "'{}'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _array(array: Array) -> str:
    """`literal` of an `Array`, the same text, with a short way for the common types.

    The writer renders hundreds of thousands of these values a second.
    """
    kind, values = array.type, array.values
    if not values:
        return f"'{{}}'::{kind}[]"
    if kind == "text":
        text = ",".join(["NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in values])
        if "\x00" in text:
            literal("\x00")  # raises, in the words every other refusal has
    elif kind == "bigint":
        text = ",".join(["NULL" if v is None else str(int(v)) for v in values])
    elif kind == "float8":
        # A finite number at or above zero is its repr; `literal` writes the rest.
        text = ",".join(
            [repr(v) if type(v) is float and 0 <= v < math.inf else literal(v) for v in values]
        )
    else:
        text = ",".join([literal(v) for v in values])
    return f"ARRAY[{text}]::{kind}[]"


def check_text(*values: str | None) -> None:
    """Refuse now what `literal` would refuse when a held-back row is rendered later.

    Args:
        values: the texts of a row that may hold anything (not JSON the store wrote, which
            escapes control characters).

    Raises:
        StoreError: a string holds NUL, which PostgreSQL's text cannot.
    """
    for value in values:
        if value is not None and "\x00" in value:
            literal(value)  # raises, in the words every other refusal has


def render(sql: str, args: Sequence[Any]) -> str:
    """``sql`` with each ``%s`` replaced by its argument's literal (the SQL has no other ``%``)."""
    return sql % tuple(literal(a) for a in args)


UPDATE_EXECUTION = (
    "UPDATE executions SET status = %s, state = %s, output = %s, error = %s, cause = %s, "
    "stopped = %s WHERE id = %s"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (id, execution_id, payload, lease_owner, lease_until) "
    f"VALUES (%s, %s, %s, %s, {NOW} + %s)"
)
INSERT_TIMER = (
    "INSERT INTO timers (execution_id, timer_id, fire_at, kind) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (execution_id, timer_id) DO UPDATE SET fire_at = excluded.fire_at, "
    "kind = excluded.kind, lease_owner = NULL, lease_until = NULL"
)
INSERT_EVENT = INSERT_EVENTS_HEAD + EVENT_ROW
DELETE_OUTBOX = "DELETE FROM outbox WHERE id = %s"
DELETE_TIMER = "DELETE FROM timers WHERE execution_id = %s AND timer_id = %s"

# Many rows at once, as arrays: see `relayflow.store.postgres_bulk`.
UPDATE_EXECUTIONS: Final = (
    "UPDATE executions e SET status = u.status, state = u.state, output = u.output, "
    "error = u.error, cause = u.cause, stopped = u.stopped "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::float8[]) AS u(id, status, state, output, error, cause, stopped) WHERE e.id = u.id"
)
INSERT_EXECUTIONS: Final = (
    "INSERT INTO executions (id, uid, flow_name, name, flow_id, flow_version, status, input, "
    "output, error, cause, started, stopped, state, callback_token, published_version) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], "
    "%s::float8[], %s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (flow_name, name) DO NOTHING RETURNING 1"
)
INSERT_EVENTS: Final = (
    "INSERT INTO events (execution_id, event_id, schedule_event_id, type, step_name, time, "
    "detail) SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], "
    "%s::text[], %s::float8[], %s::text[])"
)
INSERT_OUTBOXES: Final = (
    "INSERT INTO outbox (id, execution_id, payload, lease_owner, lease_until) "
    f"SELECT i, e, p, o, {NOW} + l FROM unnest(%s::bigint[], %s::bigint[], %s::text[], "
    "%s::text[], %s::float8[]) AS n(i, e, p, o, l)"
)
INSERT_TIMERS: Final = (
    "INSERT INTO timers (execution_id, timer_id, fire_at, kind) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::text[]) "
    "ON CONFLICT (execution_id, timer_id) DO UPDATE SET fire_at = excluded.fire_at, "
    "kind = excluded.kind, lease_owner = NULL, lease_until = NULL"
)
DELETE_OUTBOXES: Final = "DELETE FROM outbox WHERE id = ANY(%s::bigint[]) RETURNING 1"
DELETE_TIMERS: Final = (
    "DELETE FROM timers t USING unnest(%s::bigint[], %s::bigint[]) AS d(e, i) "
    "WHERE t.execution_id = d.e AND t.timer_id = d.i RETURNING 1"
)


def checked(sql: str) -> str:
    """``sql``, a write returning a row for each it touches, made to fail in the server.

    It fails with `MISSED_STATE` unless it touches as many rows as its last argument says.
    """
    return f"WITH w AS ({sql}) SELECT 1 / (count(*) = %s)::int FROM w"


#: The guard of a batch that trusts what the writer remembers (`postgres_memory`): locks the
#: executions as the locking read would, and fails (`MISSED_STATE`) unless each row version is
#: still the remembered one (`xmin`, as the low 32 bits of a transaction id). It answers what
#: `TRANSACTION_ID` would (dividing by 1), so a guarded transaction needs no statement more
#: for the version of the rows it writes.
GUARD_ONE: Final = (
    "WITH g AS (SELECT 1 FROM executions WHERE id = %s AND xmin::text::bigint = %s FOR UPDATE) "
    "SELECT txid_current() / (count(*) = 1)::int FROM g"
)
GUARD_MANY: Final = (
    "WITH g AS (SELECT 1 FROM executions e JOIN unnest(%s::bigint[], %s::bigint[]) AS k(id, v) "
    "ON e.id = k.id WHERE e.xmin::text::bigint = k.v ORDER BY e.flow_name, e.name "
    "FOR UPDATE OF e) SELECT txid_current() / (count(*) = %s)::int FROM g"
)
#: This transaction's id, whose low 32 bits are the `xmin` of the rows it writes.
TRANSACTION_ID: Final = "SELECT txid_current()"

#: Around the checked deletions: PostgreSQL judged a custom plan cheaper for them at every
#: EXECUTE and so planned them anew each time (0.1 ms each, a fifth of a task report's server
#: time); their generic plan is the same index scan. Only for those two, then back to the
#: database's own setting.
GENERIC_PLANS: Final = "SET LOCAL plan_cache_mode = force_generic_plan"
DEFAULT_PLANS: Final = "SET LOCAL plan_cache_mode TO DEFAULT"

INSERT_EXECUTIONS_CHECKED: Final = checked(INSERT_EXECUTIONS)
DELETE_OUTBOXES_CHECKED: Final = checked(DELETE_OUTBOXES)
DELETE_TIMERS_CHECKED: Final = checked(DELETE_TIMERS)
#: The same for one row, the commonest case (a task's report deletes its old outbox row and
#: timer). With scalar parameters PostgreSQL settles on the generic plan by itself, so these
#: go without GENERIC_PLANS around them: two statements fewer in a report's message, which
#: took 7-10 % less time in the server when its message was replayed.
DELETE_OUTBOX_CHECKED: Final = checked(DELETE_OUTBOX + " RETURNING 1")
DELETE_TIMER_CHECKED: Final = checked(DELETE_TIMER + " RETURNING 1")

#: The writer's frequent statements, prepared once on its connection (name, parameter types)
#: and sent as ``EXECUTE name(literals)``: the server then parses and plans them once per
#: connection instead of once per statement (planning was a third of its time). They write
#: many rows at once, given as arrays (`relayflow.store.postgres_bulk`).
NAMED: Final[dict[str, tuple[str, str]]] = {
    INSERT_EXECUTIONS_CHECKED: (
        "rf_insert_executions",
        "bigint[], text[], text[], text[], text[], bigint[], text[], text[], text[], text[], "
        "text[], float8[], float8[], text[], text[], bigint[], bigint",
    ),
    UPDATE_EXECUTIONS: (
        "rf_update_executions",
        "bigint[], text[], text[], text[], text[], text[], float8[]",
    ),
    INSERT_EVENTS: (
        "rf_insert_events",
        "bigint[], bigint[], bigint[], text[], text[], float8[], text[]",
    ),
    INSERT_OUTBOXES: ("rf_insert_outboxes", "bigint[], bigint[], text[], text[], float8[]"),
    INSERT_TIMERS: ("rf_insert_timers", "bigint[], bigint[], float8[], text[]"),
    DELETE_OUTBOXES_CHECKED: ("rf_delete_outboxes", "bigint[], bigint"),
    DELETE_TIMERS_CHECKED: ("rf_delete_timers", "bigint[], bigint[], bigint"),
    DELETE_OUTBOX_CHECKED: ("rf_delete_outbox", "bigint, bigint"),
    DELETE_TIMER_CHECKED: ("rf_delete_timer", "bigint, bigint, bigint"),
    # One row of each (`postgres_bulk`): scalars cost the server less than unnest.
    UPDATE_EXECUTION: ("rf_update_execution", "text, text, text, text, text, float8, bigint"),
    INSERT_OUTBOX: ("rf_insert_outbox", "bigint, bigint, text, text, float8"),
    INSERT_TIMER: ("rf_insert_timer", "bigint, bigint, float8, text"),
    GUARD_ONE: ("rf_guard_one", "bigint, bigint"),
    GUARD_MANY: ("rf_guard_many", "bigint[], bigint[], bigint"),
    # The reads of every batch: its locks, and what its jobs read first.
    LOCK_KEY: ("rf_lock_key", "text, text"),
    WORK_OF_KEY: ("rf_work_of_key", "text, text"),
    LOCK_KEYS: ("rf_lock_keys", "text[], text[]"),
    WORK_OF_KEYS: ("rf_work_of_keys", "text[], text[]"),
    LOCK_ID: ("rf_lock_id", "bigint"),
    WORK_OF_ID: ("rf_work_of_id", "bigint"),
    GET_FLOW: ("rf_get_flow", "text"),
    FLOW_OF_NEW_KEY: ("rf_flow_of_new_key", "text, text, text"),
    FLOWS_OF_NEW_KEYS: ("rf_flows_of_new_keys", "text[], text[]"),
    FLOW_DEFINITION: ("rf_flow_definition", "text, bigint"),
}


def prepare_named() -> str:
    """The message that prepares `NAMED` on a connection."""
    statements = []
    for sql, (name, types) in NAMED.items():
        first, *rest = sql.split("%s")
        body = first + "".join(f"${i}{part}" for i, part in enumerate(rest, start=1))
        statements.append(f"PREPARE {name} ({types}) AS {body}")
    return ";\n".join(statements)


def execute_named(sql: str, args: Sequence[Any]) -> str | None:
    """``EXECUTE`` of a prepared `NAMED` statement with these arguments; None for other SQL."""
    named = NAMED.get(sql)
    if named is None:
        return None
    return f"EXECUTE {named[0]}({', '.join(literal(a) for a in args)})"
