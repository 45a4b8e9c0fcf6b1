"""The PostgreSQL store, for several engine processes (replicas) on one database.

URL: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or `postgres://`). Options in the
query string go to libpq: `?sslmode=verify-full&sslrootcert=/etc/ca.pem`, `connect_timeout`,
`keepalives_idle`, `options=-csearch_path=relayflow` and the like. `${NAME}` anywhere in the URL
is read from the environment (URL-quoted, so a password may hold any character). The password
is never printed, logged or quoted in an error: messages name the store as
`postgresql://USER@HOST:PORT/DATABASE`.

The schema is made at the first open (`relayflow.store.postgres_schema`), safely when several
replicas open an empty database at once. Needs psycopg 3: `pip install relayflow[postgresql]`.

Connections, at most five per process: one for the engine's writer thread (every
`transaction()`, one at a time), up to three for `reader()`, and one per `listen()`. Each
session ends a transaction left idle for 5 s (so that a frozen replica cannot hold its locks
for long), waits at most 2 s for a lock and 30 s for a statement.

Round trips are what a transaction costs here, so the writer holds back the statements whose
result nobody needs and sends them with the next query in one message, locks a batch's
executions in one statement (`lock_executions`) and answers its jobs' locking reads from memory
(`relayflow.store.postgres_buffer`); its frequent writes go many rows a statement
(`relayflow.store.postgres_bulk`). Why its values are written into the SQL as literals, and
why that is safe, is in `relayflow.store.postgres_sql`. The URL is read by
`relayflow.store.postgres_url`, notifications by `relayflow.store.postgres_listen`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from relayflow.errors import first_line
from relayflow.store import postgres_schema, versions
from relayflow.store.base import Listener, Store, StoreConflict, StoreError, Transaction
from relayflow.store.postgres_buffer import lost
from relayflow.store.postgres_listen import PgListener
from relayflow.store.postgres_memory import WriterMemory
from relayflow.store.postgres_sql import (
    CONFLICT_STATES,
    MISSED_STATE,
    TRANSACTION_ID,
    prepare_named,
)
from relayflow.store.postgres_tx import _PgTx
from relayflow.store.postgres_url import PINNED, parse_url

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

log = logging.getLogger("relayflow.store")

#: Connections `reader()` may hold at once (the engine reads on two threads).
READERS: Final = 3


def _psycopg(where: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            f"the PostgreSQL store {where} needs psycopg: install relayflow[postgresql]"
        ) from None
    return psycopg


class PostgresStore(Store):
    """A store on a PostgreSQL database, shared by any number of replicas.

    Args:
        url: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?libpq options]`.

    Raises:
        StoreError: the URL is wrong, psycopg is missing, the database cannot be reached, or
            its schema was written by a newer relayflow.
    """

    single_engine = False
    notifies = True
    default_lease_seconds = 10.0

    def __init__(self, url: str) -> None:
        self.where, self._password, self._params = parse_url(url)
        # The URL as it can be shown; the password lives only in the connection parameters.
        self.url = self.where
        self._psycopg = _psycopg(self.where)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(READERS)
        self._idle: list[psycopg.Connection[Any]] = []
        self._listeners: set[PgListener] = set()
        # Outbox ids taken from the sequence in blocks, for the writer (see `_PgTx.add_outbox`).
        self._outbox_ids: list[int] = []
        self._outbox_sequence = "outbox_id_seq"
        self._execution_ids: list[int] = []
        self._execution_sequence = "executions_id_seq"
        #: What the writer remembers of the executions it committed (`postgres_memory`).
        self.memory = WriterMemory()
        # The writer's connection that has `postgres_sql.NAMED` prepared.
        self._named: psycopg.Connection[Any] | None = None
        self._last_prune = float("-inf")
        self._closed = False
        self._writer: psycopg.Connection[Any] | None = self._connect()
        #: The schema version after opening; ``upgraded_from``: the one before an upgrade.
        self.schema_version = versions.SCHEMA_VERSION
        self.upgraded_from: int | None = None
        try:
            before, self.schema_version = postgres_schema.prepare(self._writer, self.where)
            if before != self.schema_version:
                self.upgraded_from = before
            row = self._writer.execute(
                "SELECT pg_get_serial_sequence('outbox', 'id'), "
                "pg_get_serial_sequence('executions', 'id')"
            ).fetchone()
            if row is not None and row[0] and row[1]:
                self._outbox_sequence, self._execution_sequence = str(row[0]), str(row[1])
        except self._psycopg.Error as exc:
            self.close()
            raise StoreError(
                f"cannot make the schema of the PostgreSQL store {self.where}: {self._reason(exc)}"
            ) from None
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # -- connections --------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn: psycopg.Connection[Any] = self._psycopg.connect(
                **self._params, autocommit=True, prepare_threshold=0
            )
        except self._psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store {self.where}: {self._reason(exc)}"
            ) from None
        for name, value in PINNED.items():
            found = conn.info.parameter_status(name)
            if found != value:
                # A proxy that drops startup options, say: the writer's literals would not be
                # safe there, so the store is not used at all.
                conn.close()
                raise StoreError(
                    f"the PostgreSQL store {self.where} reports {name}={found}; relayflow needs "
                    f"{name}={value} (a connection pooler that drops startup options cannot "
                    "be used)"
                )
        return conn

    def _reason(self, exc: BaseException) -> str:
        """Why psycopg failed, in a few words, without the password (libpq's text varies)."""
        diag = getattr(exc, "diag", None)
        text = getattr(diag, "message_primary", None) or first_line(exc)
        text = text.rsplit(" failed: ", 1)[-1]
        text = " ".join(text.replace("FATAL:", "").split()).rstrip(".")
        if self._password:
            for secret in {self._password, quote(self._password, safe="")}:
                text = text.replace(secret, "***")
        return text or type(exc).__name__

    def _reword(self, exc: Exception) -> tuple[StoreError, bool]:
        """The `StoreError` for a failed statement, and whether it dooms the transaction."""
        state = getattr(exc, "sqlstate", None)
        reason = self._reason(exc)
        if state in CONFLICT_STATES:
            return (
                StoreConflict(
                    f"the PostgreSQL store {self.where} aborted the transaction to resolve a "
                    f"conflict with another ({reason}): nothing was written, run it again"
                ),
                True,
            )
        if lost(exc):
            return (
                StoreConflict(
                    f"the connection to the PostgreSQL store {self.where} was lost before the "
                    f"commit ({reason}): nothing was written, run it again"
                ),
                True,
            )
        return StoreError(f"the PostgreSQL store {self.where} refused a statement: {reason}"), False

    def _end(self, conn: psycopg.Connection[Any], statement: str) -> None:
        """Roll back (or end a read) quietly: a connection that cannot is closed."""
        if conn.closed:
            return
        try:
            if not conn.broken:
                conn.execute(statement)
                return
        except self._psycopg.Error:
            pass
        conn.close()

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A read-write transaction on the writer's connection, one at a time.

        Its BEGIN goes to the server with the first statement that needs an answer (or with
        the statements held back at the end), and COMMIT after them.
        """
        with self._write_lock:
            if self._closed:
                raise StoreError(f"the PostgreSQL store {self.where} is closed")
            conn = self._writer
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    conn.close()
                conn = self._writer = self._connect()
            tx = _PgTx(
                conn,
                self._reword,
                buffered=True,
                prune_nonces=self._prune_due,
                outbox_ids=self._outbox_ids,
                outbox_sequence=self._outbox_sequence,
                execution_ids=self._execution_ids,
                execution_sequence=self._execution_sequence,
                begin="BEGIN",
                reconnect=self._reconnect_writer,
                named=self._name_statements(conn),
                memory=self.memory,
            )
            try:
                try:
                    yield tx
                    if tx.notices and tx.doomed is None:
                        # Sent last, just before COMMIT: PostgreSQL delivers them when it
                        # commits, once each (it drops duplicates in a transaction; so do we).
                        notices = list(dict.fromkeys(tx.notices))
                        tx._run(
                            "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS n(c, p)",
                            ([c for c, _ in notices], [p for _, p in notices]),
                        )
                    if tx.doomed is None and not tx.trusted and tx.written_keys():
                        # The version of the rows it writes (a guard answered it already).
                        tx.fetch_later(TRANSACTION_ID)
                    # An error of anything held back comes here, before COMMIT, which goes
                    # with them when it can.
                    committed = tx.doomed is None and tx.flush(commit=True)
                except StoreError:
                    # Lost with a COMMIT on its way: unknown, unless the server said why it
                    # ended the session (an error with a SQLSTATE comes before the COMMIT
                    # completes).
                    if (
                        tx.commit_sent
                        and tx.failed_state is None
                        and (tx.conn.closed or tx.conn.broken)
                    ):
                        tx.conn.close()
                        raise StoreError(
                            f"the connection to the PostgreSQL store {self.where} was lost "
                            "during COMMIT: the outcome is unknown"
                        ) from None
                    if tx.doomed is None:
                        self._abort(tx)
                        raise
                except BaseException:
                    self._abort(tx)
                    raise
                if tx.doomed is not None:
                    self._abort(tx)
                    error = type(tx.doomed)(str(tx.doomed))
                    if (
                        tx.trusted
                        and tx.failed_state == MISSED_STATE
                        and isinstance(error, StoreConflict)
                    ):
                        # The guard (or a deletion it vouched for): another replica wrote one
                        # of them since. Nothing raced this transaction: run it again now.
                        self.memory.judged(False)
                        error.retry_at_once = True
                    raise error
                if tx.begun and not committed:
                    self._commit(tx.conn)
            except BaseException:
                self.memory.forget([*tx.trusted, *tx.written_keys()])
                raise
            if tx.trusted:
                self.memory.judged(True)
            self.memory.remember(tx.written_rows())

    def _abort(self, tx: _PgTx) -> None:
        """Roll back what reached the server (nothing did before the first message)."""
        if tx.begun:
            self._end(tx.conn, "ROLLBACK")

    def _reconnect_writer(self) -> psycopg.Connection[Any]:
        """A new connection for the writer, whose connection was found dead."""
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._writer = self._connect()
        if self._named is not None:
            self._name_statements(self._writer)
        return self._writer

    def _name_statements(self, conn: psycopg.Connection[Any]) -> bool:
        """Prepare the writer's frequent statements on ``conn`` once (see `postgres_sql.NAMED`).

        psycopg's own prepared statements are off on this connection: psycopg drops all
        prepared statements (`DEALLOCATE ALL`) when it sees a ROLLBACK of its own ones.
        """
        if self._named is conn:
            return True
        conn.prepare_threshold = None
        try:
            conn.execute(prepare_named(), prepare=False)
        except self._psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise self._reword(exc)[0] from None
            log.warning("preparing statements on %s failed (%s)", self.where, self._reason(exc))
            self._named = None
            return False
        self._named = conn
        return True

    def _commit(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute("COMMIT")
        except self._psycopg.Error as exc:
            if lost(exc) or conn.closed or conn.broken:
                conn.close()
                raise StoreError(
                    f"the connection to the PostgreSQL store {self.where} was lost during "
                    f"COMMIT ({self._reason(exc)}): the outcome is unknown"
                ) from None
            self._end(conn, "ROLLBACK")
            raise self._reword(exc)[0] from None

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        """A read-only snapshot (REPEATABLE READ) on one of the readers' connections.

        Its BEGIN goes with its first query, in one round trip.
        """
        with self._slots:
            if self._closed:
                raise StoreError(f"the PostgreSQL store {self.where} is closed")
            with self._pool_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    conn.close()
                conn = self._connect()
            tx = _PgTx(
                conn,
                self._reword,
                read_only=True,
                begin="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                reconnect=lambda: self._replace(tx.conn),
            )
            ok = False
            try:
                yield tx
                ok = True
            finally:
                conn = tx.conn
                if tx.begun:
                    self._end(conn, "COMMIT" if ok else "ROLLBACK")
                if not conn.closed:
                    with self._pool_lock:
                        self._idle.append(conn)

    def _replace(self, conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
        """A new connection in place of ``conn``, which was found dead."""
        conn.close()
        return self._connect()

    def _prune_due(self, now: float) -> bool:
        """Whether `use_nonce` should forget old nonces now (once a minute is plenty)."""
        if now - self._last_prune < 60.0:
            return False
        self._last_prune = now
        return True

    # -- notifications ------------------------------------------------------------------------
    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> Listener:
        """Call ``callback`` on the event loop with each payload notified on ``channel``.

        Listening has begun when this returns. A lost connection is made again with backoff,
        then ``callback(None)`` says that notifications may have been missed.

        Raises:
            StoreError: the database cannot be reached.
        """
        listener = PgListener(self, channel, callback)
        await listener.start()
        self._listeners.add(listener)
        return listener

    async def _listen_connection(self, channel: str) -> psycopg.AsyncConnection[Any]:
        sql = self._psycopg.sql
        try:
            conn: psycopg.AsyncConnection[Any] = await self._psycopg.AsyncConnection.connect(
                **self._params, autocommit=True
            )
        except self._psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store {self.where}: {self._reason(exc)}"
            ) from None
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except self._psycopg.Error as exc:
            await conn.close()
            raise self._reword(exc)[0] from None
        return conn

    def close(self) -> None:
        """Close every connection; listeners still open are cancelled."""
        self._closed = True
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for listener in list(self._listeners):
            listener.cancel()
