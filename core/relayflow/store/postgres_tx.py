"""Reads and writes of one PostgreSQL transaction (`relayflow.store.postgres`'s `Transaction`).

Leases are measured on the database's clock, so that every replica agrees on when one runs
out: a claim or renewal reads its ``lease_until - now`` as a duration and stores the database's
`clock_timestamp()` plus that duration; "expired" means before the database's clock. Timers
are due by the caller's ``now`` (their ``fire_at`` was set by an engine's clock).

An error that aborted the transaction (a deadlock, a serialization failure, a lock timeout, a
lost connection) is raised as `StoreConflict` and dooms the transaction: every later call
raises it again without touching the database, and the transaction can only roll back, even if
the caller caught the first one in a savepoint.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from relayflow import jsontext
from relayflow.errors import first_line
from relayflow.store.base import (
    ExecutionRow,
    FlowRow,
    OutboxRow,
    StoreConflict,
    StoreError,
    TimerRow,
    Transaction,
)
from relayflow.store.records import HistoryEvent

if TYPE_CHECKING:
    import psycopg

__all__ = ["CONFLICT_STATES", "detail", "outbox_row"]

#: SQLSTATEs after which the transaction wrote nothing and may simply run again: serialization
#: failure, deadlock, lock not available (lock_timeout, NOWAIT).
CONFLICT_STATES: Final = frozenset({"40001", "40P01", "55P03"})
#: The longest NOTIFY payload PostgreSQL takes is 8,000 bytes (less one for the terminator).
MAX_PAYLOAD: Final = 7999
#: How many outbox ids a store takes from the sequence at once.
OUTBOX_ID_BLOCK: Final = 64
# The database's clock, as epoch seconds.
NOW: Final = "extract(epoch from clock_timestamp())::float8"

_EXEC_COLUMNS = (
    "id, uid, flow_name, name, flow_id, flow_version, status, input, output, error, cause, "
    "started, stopped, state, callback_token"
)
_FLOW_COLUMNS = "name, id, definition, description, type, role_arn, version, created, modified"
_INSERT_EXECUTION = (
    "INSERT INTO executions (uid, flow_name, name, flow_id, flow_version, status, input, "
    "output, error, cause, started, stopped, state, callback_token) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (flow_name, name) DO NOTHING RETURNING id"
)
_INSERT_EVENT = (
    "INSERT INTO events (execution_id, event_id, schedule_event_id, type, step_name, time, "
    "detail) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_KEYS = "unnest(%s::text[], %s::text[]) AS k(flow_name, name)"
_LOCK_KEYS = (
    f"SELECT {_EXEC_COLUMNS} FROM executions e WHERE EXISTS (SELECT 1 FROM {_KEYS} "
    'WHERE e.flow_name = k.flow_name COLLATE "C" AND e.name = k.name COLLATE "C") '
    "ORDER BY e.flow_name, e.name FOR UPDATE"
)
_OUTBOX_OF_KEYS = (
    "SELECT o.execution_id, o.id FROM outbox o JOIN executions e ON e.id = o.execution_id "
    f"WHERE EXISTS (SELECT 1 FROM {_KEYS} "
    'WHERE e.flow_name = k.flow_name COLLATE "C" AND e.name = k.name COLLATE "C")'
)
_INSERT_EVENTS = (
    "INSERT INTO events (execution_id, event_id, schedule_event_id, type, step_name, time, "
    "detail) SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], "
    "%s::float8[], %s::text[])"
)
_UPSERT_VERSION = (
    "INSERT INTO flow_versions (name, version, definition) VALUES (%s, %s, %s) "
    "ON CONFLICT (name, version) DO UPDATE SET definition = excluded.definition"
)
_CLAIM_TIMERS = (
    "WITH due AS (SELECT execution_id, timer_id FROM timers WHERE fire_at <= %s "
    f"AND (lease_until IS NULL OR lease_until < {NOW}) ORDER BY fire_at LIMIT %s "
    "FOR UPDATE SKIP LOCKED) "
    f"UPDATE timers t SET lease_owner = %s, lease_until = {NOW} + %s FROM due "
    "WHERE t.execution_id = due.execution_id AND t.timer_id = due.timer_id "
    "RETURNING t.execution_id, t.timer_id, t.fire_at, t.kind"
)
_CLAIM_OUTBOX = (
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


class _PgTx(Transaction):
    """One transaction on one psycopg connection (autocommit; BEGIN and COMMIT are the store's).

    The writer's statements whose result nobody needs (events, state updates, new outbox rows
    and timers, savepoints) wait in a buffer and go to the server together with the next
    statement whose result is needed, in one round trip (pipeline mode), or before COMMIT.
    Between calls nothing is left half-sent: the session is idle in its transaction, where
    `idle_in_transaction_session_timeout` ends a replica frozen mid-transaction. An error of
    a buffered statement comes back with a later call, so a database error there dooms the
    whole transaction (it cannot be told which savepoint it belonged to).

    Args:
        conn: the connection, inside BEGIN.
        reword: turns a psycopg error into the `StoreError` to raise (and says whether it
            dooms the transaction).
        read_only: refuse writes (the reader's view).
        buffered: hold back statements whose results are not needed (the writer).
        prune_nonces: asked by `use_nonce` whether it is time to forget old nonces.
        outbox_ids: new outbox ids, taken from the end; `_fill_ids` adds a block when empty.
        outbox_sequence: the sequence outbox ids come from.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        reword: Callable[[Exception], tuple[StoreError, bool]],
        *,
        read_only: bool = False,
        buffered: bool = False,
        prune_nonces: Callable[[float], bool] | None = None,
        outbox_ids: list[int] | None = None,
        outbox_sequence: str = "outbox_id_seq",
    ) -> None:
        self.conn = conn
        self._cur = conn.cursor()
        self._reword = reword
        self.read_only = read_only
        self._buffered = buffered
        # Held-back statements: SQL, arguments, and whether it must touch exactly one row.
        self._pending: list[tuple[str, Sequence[Any] | None, bool]] = []
        # The outbox rows of executions this transaction has locked, by id: their execution.
        self._outbox_rows: dict[int, int] = {}
        self._locked: set[int] = set()  # the executions whose outbox rows are known
        # Execution rows this transaction has locked, by id, and their ids by (flow, name).
        self._rows: dict[int, ExecutionRow] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._sends = 0  # how many times the buffer went out
        self._mogrify: Callable[[str, Sequence[Any] | None], str] | None = None
        self._prune_nonces = prune_nonces
        self._outbox_ids = outbox_ids if outbox_ids is not None else []
        self._outbox_sequence = outbox_sequence
        self.doomed: StoreError | None = None
        self.notices: list[tuple[str, str]] = []
        self._depth = 0

    # -- plumbing -----------------------------------------------------------------------------
    def _failed(self, exc: Exception, *, buffered: bool = False) -> StoreError:
        error, dooms = self._reword(exc)
        if (dooms or buffered) and self.doomed is None:
            self.doomed = error
        return error

    def _run(self, sql: str, args: Sequence[Any] | None = None) -> None:
        """A statement whose result is not needed: held back in the writer, else run now."""
        if self.doomed is not None:
            raise self.doomed
        if self._buffered:
            self._pending.append((sql, args, False))
            return
        try:
            self._cur.execute(sql, args)
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            raise self._failed(exc) from None

    def _send(self, queries: Sequence[tuple[str, Sequence[Any] | None]] = ()) -> list[list[Any]]:
        """Send the held-back statements and ``queries`` at once; the queries' rows.

        They go as one message of several statements, with their values written in (a simple
        query): one round trip, one wakeup of the server, whatever their number.
        """
        pending, self._pending = self._pending, []
        try:
            cur = self.conn.cursor()
            if not pending and len(queries) <= 1:
                if queries:  # alone: as a prepared statement
                    cur.execute(*queries[0])
                    return [cur.fetchall()]
                return []
            self._sends += 1 if pending else 0
            texts = [self._render(sql, args) for sql, args, _ in pending]
            texts += [self._render(sql, args) for sql, args in queries]
            cur.execute(";\n".join(texts), prepare=False)
            missed = 0
            for _, _, one_row in pending:
                if one_row and cur.rowcount != 1:
                    missed += 1
                cur.nextset()
            results = []
            for _ in queries:
                results.append(cur.fetchall())
                cur.nextset()
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            raise self._failed(exc, buffered=bool(pending)) from None
        if missed:
            # An outbox row said to be deleted was gone after all (see `delete_outbox`):
            # this transaction acted on a wrong answer, so it must not commit.
            self.doomed = StoreConflict(
                "an outbox row of a locked execution was deleted by another transaction; "
                "run the transaction again"
            )
            raise self.doomed
        return results

    def _render(self, sql: str, args: Sequence[Any] | None) -> str:
        if self._mogrify is None:
            import psycopg

            self._mogrify = psycopg.ClientCursor(self.conn).mogrify
        return self._mogrify(sql, args) if args else sql

    def flush(self) -> None:
        """Send every held-back statement now (before COMMIT, say).

        Raises:
            StoreError: one of them failed (the transaction is doomed).
        """
        if self.doomed is not None:
            raise self.doomed
        self._send()

    def _fetch(self, sql: str, args: Sequence[Any] | None, many: bool) -> Any:
        if self.doomed is not None:
            raise self.doomed
        rows = self._send([(sql, args)])[0]
        return rows if many else (rows[0] if rows else None)

    def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        """The first row of a statement's result (None without one)."""
        return self._fetch(sql, args, False)

    def _all(self, sql: str, args: Sequence[Any] | None = None) -> list[Any]:
        """Every row of a statement's result."""
        rows: list[Any] = self._fetch(sql, args, True)
        return rows

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("this is a read-only view of the store")

    def _forget_outbox(self, execution_id: int) -> None:
        self._locked.discard(execution_id)
        for outbox_id in [k for k, v in self._outbox_rows.items() if v == execution_id]:
            del self._outbox_rows[outbox_id]

    def _write(self, sql: str, args: Sequence[Any] | None = None) -> None:
        self._check_writable()
        self._run(sql, args)

    def _write_one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        self._check_writable()
        return self._one(sql, args)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._depth += 1
        name = f"rf{self._depth}"
        notices = len(self.notices)
        self._run(f"SAVEPOINT {name}")
        # Where the SAVEPOINT waits in the buffer, while the buffer has not been sent.
        sends, index = self._sends, len(self._pending) - 1
        try:
            yield
        except BaseException:
            del self.notices[notices:]
            if self.doomed is None:
                self._roll_back_to(name, sends, index)
            raise
        finally:
            self._depth -= 1
        if self._buffered and self._sends == sends and self.doomed is None:
            # Nothing of it was sent: its statements simply go without the savepoint.
            del self._pending[index]
        else:
            self._run(f"RELEASE SAVEPOINT {name}")

    def _roll_back_to(self, name: str, sends: int, index: int) -> None:
        self._forget_rows()  # what it knew may have been undone
        if self._buffered and self._sends == sends:
            del self._pending[index:]  # nothing of it was sent: forget it
            return
        self._pending.clear()  # what it wrote since the last send: never sent
        try:
            # Outside any pipeline: psycopg drops its prepared statements on seeing a
            # ROLLBACK, which must not happen while statements naming them are in flight.
            self._cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self._cur.execute(f"RELEASE SAVEPOINT {name}")
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            self._failed(exc, buffered=True)

    # -- metadata -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_meta_if_absent(self, key: str, value: str) -> str:
        row = self._write_one(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING "
            "RETURNING value",
            (key, value),
        )
        if row is not None:
            return str(row[0])
        # Another transaction's value won; a new statement sees it once it has committed.
        found = self.get_meta(key)
        assert found is not None
        return found

    def use_nonce(self, key: str, now: float, window: float) -> bool:
        self._check_writable()
        if self._prune_nonces is not None and self._prune_nonces(now):
            self._write("DELETE FROM nonces WHERE seen < %s", (now - window,))
        # A nonce seen before the window counts as new: it replaces the old row.
        row = self._write_one(
            "INSERT INTO nonces (key, seen) VALUES (%s, %s) ON CONFLICT (key) "
            "DO UPDATE SET seen = excluded.seen WHERE nonces.seen < %s RETURNING 1",
            (key, now, now - window),
        )
        return row is not None

    # -- flows --------------------------------------------------------------------------------
    def get_flow(self, name: str, *, lock: bool = False) -> FlowRow | None:
        sql = f"SELECT {_FLOW_COLUMNS} FROM flows WHERE name = %s"
        row = self._one(sql + " FOR UPDATE" if lock else sql, (name,))
        return FlowRow(*row) if row else None

    def create_flow(self, row: FlowRow) -> bool:
        created = self._write_one(
            f"INSERT INTO flows ({_FLOW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING 1",
            _flow_values(row),
        )
        if created is None:
            return False
        self._write(_UPSERT_VERSION, (row.name, row.version, row.definition))
        return True

    def put_flow(self, row: FlowRow) -> None:
        self._write(
            f"INSERT INTO flows ({_FLOW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET id = excluded.id, "
            "definition = excluded.definition, description = excluded.description, "
            "type = excluded.type, role_arn = excluded.role_arn, version = excluded.version, "
            "created = excluded.created, modified = excluded.modified",
            _flow_values(row),
        )
        self._write(_UPSERT_VERSION, (row.name, row.version, row.definition))

    def flow_versions(self, name: str) -> list[tuple[int, str]]:
        rows = self._all(
            "SELECT version, definition FROM flow_versions WHERE name = %s ORDER BY version",
            (name,),
        )
        return [(int(r[0]), r[1]) for r in rows]

    def flow_definition(self, name: str, version: int) -> str | None:
        row = self._one(
            "SELECT definition FROM flow_versions WHERE name = %s AND version = %s",
            (name, version),
        )
        return row[0] if row else None

    def list_flows(self, after: str, limit: int) -> list[FlowRow]:
        rows = self._all(
            f"SELECT {_FLOW_COLUMNS} FROM flows WHERE name > %s ORDER BY name LIMIT %s",
            (after, limit),
        )
        return [FlowRow(*r) for r in rows]

    def delete_flow(self, name: str) -> bool:
        self._check_writable()
        self._forget_rows()
        # The flow, then its executions in the engine's lock order, as every command locks
        # them: a command on another replica either finishes first or finds nothing.
        self._all("SELECT 1 FROM flows WHERE name = %s FOR UPDATE", (name,))
        ids = [
            int(r[0])
            for r in self._all(
                "SELECT id FROM executions WHERE flow_name = %s ORDER BY name FOR UPDATE", (name,)
            )
        ]
        if ids:
            for table in ("events", "timers", "outbox", "quarantine"):
                self._write(f"DELETE FROM {table} WHERE execution_id = ANY(%s)", (ids,))
            self._write("DELETE FROM executions WHERE id = ANY(%s)", (ids,))
        self._write("DELETE FROM flow_versions WHERE name = %s", (name,))
        deleted = self._write_one("DELETE FROM flows WHERE name = %s RETURNING 1", (name,))
        return deleted is not None

    # -- executions ---------------------------------------------------------------------------
    def insert_execution(self, row: ExecutionRow) -> int | None:
        found = self._write_one(
            _INSERT_EXECUTION,
            (
                row.uid,
                row.flow_name,
                row.name,
                row.flow_id,
                row.flow_version,
                row.status,
                row.input,
                row.output,
                row.error,
                row.cause,
                row.started,
                row.stopped,
                row.state,
                row.callback_token,
            ),
        )
        return int(found[0]) if found else None

    def get_execution(
        self, flow_name: str, name: str, *, lock: bool = False
    ) -> ExecutionRow | None:
        if lock and (flow_name, name) in self._by_key:
            return self._rows[self._by_key[flow_name, name]]
        sql = f"SELECT {_EXEC_COLUMNS} FROM executions WHERE flow_name = %s AND name = %s"
        row = self._one(sql + " FOR UPDATE" if lock else sql, (flow_name, name))
        if row is None:
            return None
        found = ExecutionRow(*row)
        if lock and self._buffered:
            self._keep(found)
        return found

    def lock_executions(self, keys: Sequence[tuple[str, str]]) -> None:
        """Lock these executions (flow, name) now, in this order, in one round trip.

        A hint from the engine at the start of a batch: the locking reads of its jobs are then
        answered from memory (`lock_execution`, `get_execution` with ``lock``), and so are
        `delete_outbox`'s of their outbox rows. Keys must come sorted (the engine's lock order);
        unknown ones are skipped.
        """
        if not keys or not self._buffered:
            return
        flows, names = [k[0] for k in keys], [k[1] for k in keys]
        rows, outbox = self._send(
            [
                (_LOCK_KEYS, (flows, names)),
                # A statement of its own: it runs once the locks are held, and sees what
                # the transactions it waited for committed.
                (_OUTBOX_OF_KEYS, (flows, names)),
            ]
        )
        for row in rows:
            self._keep(ExecutionRow(*row))
        for execution_id, outbox_id in outbox:
            self._outbox_rows[int(outbox_id)] = int(execution_id)

    def _keep(self, row: ExecutionRow) -> None:
        """Remember a row this transaction has locked (and so nobody else changes)."""
        self._rows[row.id] = row
        self._by_key[row.flow_name, row.name] = row.id
        self._locked.add(row.id)

    def _forget_rows(self) -> None:
        """Forget every remembered row: a savepoint rolled back may have changed them."""
        self._rows.clear()
        self._by_key.clear()
        self._outbox_rows.clear()
        self._locked.clear()

    def lock_execution(self, execution_id: int) -> ExecutionRow | None:
        if execution_id in self._rows:
            return self._rows[execution_id]
        lock = (f"SELECT {_EXEC_COLUMNS} FROM executions WHERE id = %s FOR UPDATE", (execution_id,))
        if not self._buffered:
            row = self._one(*lock)
            return ExecutionRow(*row) if row else None
        # With the lock, the ids of its outbox rows, read after the lock is held (a statement
        # of its own sees what committed meanwhile): while this transaction holds the lock,
        # nobody else deletes them, and `delete_outbox` answers without a round trip.
        if self.doomed is not None:
            raise self.doomed
        rows, ids = self._send(
            [lock, ("SELECT array_agg(id) FROM outbox WHERE execution_id = %s", (execution_id,))]
        )
        if not rows:
            return None
        found = ExecutionRow(*rows[0])
        self._keep(found)
        for outbox_id in ids[0][0] or ():
            self._outbox_rows[int(outbox_id)] = execution_id
        return found

    def update_execution(
        self,
        execution_id: int,
        *,
        status: str,
        state: str,
        output: str | None,
        error: str,
        cause: str,
        stopped: float | None,
    ) -> None:
        self._write(
            "UPDATE executions SET status = %s, state = %s, output = %s, error = %s, "
            "cause = %s, stopped = %s WHERE id = %s",
            (status, state, output, error, cause, stopped, execution_id),
        )
        row = self._rows.get(execution_id)
        if row is not None:
            self._rows[execution_id] = dataclasses.replace(
                row,
                status=status,
                state=state,
                output=output,
                error=error,
                cause=cause,
                stopped=stopped,
            )

    def list_executions(
        self,
        flow_name: str,
        *,
        after: str,
        limit: int,
        status: str | None = None,
        name_prefix: str | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
    ) -> list[ExecutionRow]:
        where = ["flow_name = %s", "name > %s"]
        args: list[Any] = [flow_name, after]
        if status:
            where.append("status = %s")
            args.append(status)
        if name_prefix:
            # The range lets the (flow_name, name) index find the start; starts_with decides.
            where.append("name >= %s AND starts_with(name, %s)")
            args += [name_prefix, name_prefix]
        if started_from is not None:
            where.append("started >= %s")
            args.append(started_from)
        if started_to is not None:
            where.append("started <= %s")
            args.append(started_to)
        rows = self._all(
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE {' AND '.join(where)} "
            "ORDER BY name LIMIT %s",
            [*args, limit],
        )
        return [ExecutionRow(*r) for r in rows]

    def count_executions(self, status: str | None = None) -> int:
        if status is None:
            row = self._one("SELECT count(*) FROM executions", ())
        else:
            row = self._one("SELECT count(*) FROM executions WHERE status = %s", (status,))
        return int(row[0])

    # -- history ------------------------------------------------------------------------------
    def append_events(self, execution_id: int, events: Sequence[HistoryEvent]) -> None:
        if not events:
            return
        if len(events) <= 16:
            for e in events:
                self._write(
                    _INSERT_EVENT,
                    (
                        execution_id,
                        e.event_id,
                        e.schedule_event_id,
                        e.type,
                        e.step_name,
                        e.time,
                        jsontext.dumps(e.detail) if e.detail else "{}",
                    ),
                )
            return
        # Many events in one statement (one array a column) rather than one each.
        self._write(
            _INSERT_EVENTS,
            (
                execution_id,
                [e.event_id for e in events],
                [e.schedule_event_id for e in events],
                [e.type for e in events],
                [e.step_name for e in events],
                [e.time for e in events],
                [jsontext.dumps(e.detail) if e.detail else "{}" for e in events],
            ),
        )

    def list_events(self, execution_id: int, after: int, limit: int) -> list[HistoryEvent]:
        rows = self._all(
            "SELECT event_id, schedule_event_id, type, step_name, time, detail FROM events "
            "WHERE execution_id = %s AND event_id > %s ORDER BY event_id LIMIT %s",
            (execution_id, after, limit),
        )
        return [HistoryEvent(r[0], r[1], r[2], r[3], r[4], detail(r[5])) for r in rows]

    def last_event_id(self, execution_id: int) -> int:
        row = self._one("SELECT max(event_id) FROM events WHERE execution_id = %s", (execution_id,))
        return int(row[0] or 0)

    # -- quarantine ---------------------------------------------------------------------------
    def quarantine(self, kind: str, execution_id: int, data: str, reason: str) -> None:
        self._write(
            "INSERT INTO quarantine (kind, execution_id, data, reason, time) "
            "VALUES (%s, %s, %s, %s, %s)",
            (kind, execution_id, data, reason, time.time()),
        )

    def drop_work(self, execution_id: int) -> None:
        self._forget_outbox(execution_id)
        self._write("DELETE FROM timers WHERE execution_id = %s", (execution_id,))
        self._write("DELETE FROM outbox WHERE execution_id = %s", (execution_id,))

    # -- timers -------------------------------------------------------------------------------
    def add_timer(self, row: TimerRow) -> None:
        self._write(
            "INSERT INTO timers (execution_id, timer_id, fire_at, kind) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (execution_id, timer_id) DO UPDATE SET fire_at = excluded.fire_at, "
            "kind = excluded.kind, lease_owner = NULL, lease_until = NULL",
            (row.execution_id, row.timer_id, row.fire_at, row.kind),
        )

    def delete_timer(self, execution_id: int, timer_id: int, owner: str | None = None) -> bool:
        if owner is None:
            found = self._write_one(
                "DELETE FROM timers WHERE execution_id = %s AND timer_id = %s RETURNING 1",
                (execution_id, timer_id),
            )
        else:
            found = self._write_one(
                "DELETE FROM timers WHERE execution_id = %s AND timer_id = %s "
                "AND lease_owner = %s RETURNING 1",
                (execution_id, timer_id, owner),
            )
        return found is not None

    def claim_due_timers(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[TimerRow]:
        self._check_writable()
        rows = self._all(_CLAIM_TIMERS, (now, limit, owner, lease_until - now))
        return sorted((TimerRow(*r) for r in rows), key=lambda t: (t.fire_at, t.execution_id))

    def list_timers(self, execution_id: int) -> list[TimerRow]:
        rows = self._all(
            "SELECT execution_id, timer_id, fire_at, kind FROM timers WHERE execution_id = %s "
            "ORDER BY timer_id",
            (execution_id,),
        )
        return [TimerRow(*r) for r in rows]

    def next_timer_at(self) -> float | None:
        # A timer whose lease ran out (its claimer died) is due again.
        row = self._one(
            "SELECT fire_at FROM timers "
            f"WHERE lease_until IS NULL OR lease_until < {NOW} ORDER BY fire_at LIMIT 1",
            (),
        )
        return float(row[0]) if row else None

    # -- outbox -------------------------------------------------------------------------------
    def add_outbox(
        self,
        execution_id: int,
        payload: dict[str, Any],
        owner: str,
        lease_until: float,
        now: float | None = None,
    ) -> int:
        self._check_writable()
        if not self._outbox_ids:
            self._fill_ids()
        outbox_id = self._outbox_ids.pop()
        lease = lease_until - (time.time() if now is None else now)
        self._run(
            "INSERT INTO outbox (id, execution_id, payload, lease_owner, lease_until) "
            f"VALUES (%s, %s, %s, %s, {NOW} + %s)",
            (outbox_id, execution_id, jsontext.dumps(payload), owner, lease),
        )
        if execution_id in self._locked:
            self._outbox_rows[outbox_id] = execution_id
        return outbox_id

    def _fill_ids(self) -> None:
        """Take a block of outbox ids, so that adding a row need not wait for its id."""
        rows = self._all(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
            (self._outbox_sequence, OUTBOX_ID_BLOCK),
        )
        # Popped from the end: kept in descending order, the ids come out ascending.
        self._outbox_ids[:] = sorted((int(r[0]) for r in rows), reverse=True)

    def delete_outbox(self, outbox_id: int) -> bool:
        self._check_writable()
        if self._outbox_rows.pop(outbox_id, None) is not None:
            if self.doomed is not None:
                raise self.doomed
            # Known to be there (its execution is locked): deleted with the next round trip,
            # which checks that it did delete one row and dooms the transaction if not.
            self._pending.append(("DELETE FROM outbox WHERE id = %s", (outbox_id,), True))
            return True
        deleted = self._write_one("DELETE FROM outbox WHERE id = %s RETURNING 1", (outbox_id,))
        return deleted is not None

    def claim_outbox(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        self._check_writable()
        rows = self._all(_CLAIM_OUTBOX, (limit, owner, lease_until - now))
        return [outbox_row(*r) for r in sorted(rows)]

    def renew_outbox(self, ids: Sequence[int], owner: str, now: float, lease_until: float) -> None:
        if not ids:
            return
        self._write(
            f"UPDATE outbox SET lease_until = {NOW} + %s WHERE id = ANY(%s) AND lease_owner = %s",
            (lease_until - now, list(ids), owner),
        )

    def list_outbox(self, execution_id: int) -> list[OutboxRow]:
        rows = self._all(
            "SELECT id, execution_id, payload FROM outbox WHERE execution_id = %s ORDER BY id",
            (execution_id,),
        )
        return [outbox_row(*r) for r in rows]

    def release_leases(self, owner: str | None = None) -> None:
        args: tuple[str, ...] = ()
        if owner is None:
            where = " WHERE lease_owner IS NOT NULL"
        else:
            where, args = " WHERE lease_owner = %s", (owner,)
        self._write(f"UPDATE outbox SET lease_owner = NULL, lease_until = NULL{where}", args)
        self._write(f"UPDATE timers SET lease_owner = NULL, lease_until = NULL{where}", args)

    # -- notifications ------------------------------------------------------------------------
    def notify(self, channel: str, payload: str) -> None:
        self._check_writable()
        if len(payload.encode()) > MAX_PAYLOAD:
            raise StoreError(
                f"a notification on {channel[:60]!r} of {len(payload.encode())} bytes is "
                f"longer than PostgreSQL's {MAX_PAYLOAD}"
            )
        self.notices.append((channel, payload))


def _flow_values(row: FlowRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.id,
        row.definition,
        row.description,
        row.type,
        row.role_arn,
        row.version,
        row.created,
        row.modified,
    )


def _is_psycopg(exc: BaseException) -> bool:
    # psycopg is imported lazily by the store; its errors all derive from psycopg.Error.
    import psycopg

    return isinstance(exc, psycopg.Error)
