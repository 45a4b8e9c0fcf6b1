"""The embedded store: SQLite through the standard library, in WAL mode.

URLs:

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` — a database file. Options go in
  the query string: `?synchronous=full` (the default: a commit survives power loss) or
  `?synchronous=normal` (a commit survives a crash of the process, not of the machine), and
  `?check=quick` (the default: an integrity check at open, about a second per 500 MiB with
  the file in the page cache), `?check=full` or `?check=off`.
- `memory://` — a private in-memory database, for tests and one-off runs.

One engine process owns a SQLite store; it holds a lock file (`<db>.lock`) while it runs, so a
second engine on the same file is refused with a clear message. Describe and list calls may
read the file from other processes at any time.

A new store is made only where no file exists; an empty, damaged or foreign file is refused
with one sentence saying what to do, never silently replaced. A store written by an older
relayflow is upgraded when it is opened (see `relayflow.store.sqlite_file`); one written by a
newer relayflow is refused.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relayflow import jsontext
from relayflow.store import decoding, sqlite_file
from relayflow.store.base import (
    ExecutionRow,
    FlowRow,
    OutboxRow,
    Store,
    StoreError,
    TimerRow,
    Transaction,
)
from relayflow.store.records import HistoryEvent
from relayflow.store.sqlite_objects import _ObjectsMixin
from relayflow.store.sqlite_operations import EXEC_COLUMNS, _OperationsMixin, list_page
from relayflow.store.versions import SCHEMA_VERSION

__all__ = ["SQLiteStore"]

_EXEC_COLUMNS = EXEC_COLUMNS
_FLOW_COLUMNS = (
    "name, id, definition, description, type, role_arn, version, created, modified, "
    "execution_mode, environment"
)


class _Tx(_ObjectsMixin, _OperationsMixin, Transaction):
    def __init__(self, db: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.db = db
        self.read_only = read_only

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.db.execute("SAVEPOINT job")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO job")
            self.db.execute("RELEASE job")
            raise
        self.db.execute("RELEASE job")

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("this is a read-only view of the store")

    def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        self._check_writable()
        return self.db.execute(sql, args)

    def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._check_writable()
        self.db.executemany(sql, rows)

    # metadata
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def set_meta_if_absent(self, key: str, value: str) -> str:
        self._write("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        found = self.get_meta(key)
        assert found is not None
        return found

    def use_nonce(self, key: str, now: float, window: float) -> bool:
        self._write("DELETE FROM nonces WHERE seen < ?", (now - window,))
        cur = self._write("INSERT OR IGNORE INTO nonces (key, seen) VALUES (?, ?)", (key, now))
        return cur.rowcount > 0

    # flows
    def get_flow(self, name: str, *, lock: bool = False) -> FlowRow | None:
        # A write transaction in SQLite already excludes other writers: nothing to lock.
        row = self.db.execute(
            f"SELECT {_FLOW_COLUMNS} FROM flows WHERE name = ?", (name,)
        ).fetchone()
        return FlowRow(*row) if row else None

    def create_flow(self, row: FlowRow) -> bool:
        if self.get_flow(row.name) is not None:
            return False
        self.put_flow(row)
        return True

    def flow_versions(self, name: str) -> list[tuple[int, str]]:
        rows = self.db.execute(
            "SELECT version, definition FROM flow_versions WHERE name = ? ORDER BY version",
            (name,),
        ).fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    def put_flow(self, row: FlowRow) -> None:
        self._write(
            f"INSERT OR REPLACE INTO flows ({_FLOW_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.name,
                row.id,
                row.definition,
                row.description,
                row.type,
                row.role_arn,
                row.version,
                row.created,
                row.modified,
                row.execution_mode,
                row.environment,
            ),
        )
        self._write(
            "INSERT OR REPLACE INTO flow_versions (name, version, definition) VALUES (?, ?, ?)",
            (row.name, row.version, row.definition),
        )

    def flow_definition(self, name: str, version: int) -> str | None:
        row = self.db.execute(
            "SELECT definition FROM flow_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return row[0] if row else None

    def list_flows(self, after: str, limit: int) -> list[FlowRow]:
        rows = self.db.execute(
            f"SELECT {_FLOW_COLUMNS} FROM flows WHERE name > ? ORDER BY name LIMIT ?",
            (after, limit),
        ).fetchall()
        return [FlowRow(*r) for r in rows]

    def delete_flow(self, name: str) -> bool:
        self._check_writable()
        ids = [
            r[0] for r in self.db.execute("SELECT id FROM executions WHERE flow_name = ?", (name,))
        ]
        for table in ("events", "timers", "outbox", "quarantine"):
            self._write_many(f"DELETE FROM {table} WHERE execution_id = ?", [(i,) for i in ids])
        links = [(i, i) for i in ids]
        self._write_many("DELETE FROM execution_links WHERE child_id = ? OR parent_id = ?", links)
        self._write("DELETE FROM executions WHERE flow_name = ?", (name,))
        self._write("DELETE FROM flow_versions WHERE name = ?", (name,))
        self._write("DELETE FROM flow_objects WHERE flow_name = ?", (name,))
        return self._write("DELETE FROM flows WHERE name = ?", (name,)).rowcount > 0

    # executions
    def insert_execution(self, row: ExecutionRow) -> int | None:
        cur = self._write(
            "INSERT OR IGNORE INTO executions (uid, flow_name, name, flow_id, flow_version, "
            "status, input, output, error, cause, started, stopped, state, callback_token, "
            "published_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row.insert_values(),
        )
        return int(cur.lastrowid or 0) if cur.rowcount > 0 else None

    def get_execution(
        self, flow_name: str, name: str, *, lock: bool = False
    ) -> ExecutionRow | None:
        row = self.db.execute(
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE flow_name = ? AND name = ?",
            (flow_name, name),
        ).fetchone()
        return ExecutionRow(*row) if row else None

    def lock_execution(self, execution_id: int) -> ExecutionRow | None:
        # A write transaction in SQLite already excludes other writers.
        row = self.db.execute(
            f"SELECT {_EXEC_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        return ExecutionRow(*row) if row else None

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
            "UPDATE executions SET status = ?, state = ?, output = ?, error = ?, cause = ?, "
            "stopped = ? WHERE id = ?",
            (status, state, output, error, cause, stopped, execution_id),
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
        return list_page(
            self.db, flow_name, after, limit, status, name_prefix, started_from, started_to
        )

    def count_executions(self, status: str | None = None) -> int:
        if status is None:
            row = self.db.execute("SELECT count(*) FROM executions").fetchone()
        else:
            row = self.db.execute(
                "SELECT count(*) FROM executions WHERE status = ?", (status,)
            ).fetchone()
        return int(row[0])

    # history
    def append_events(self, execution_id: int, events: Sequence[HistoryEvent]) -> None:
        self._write_many(
            "INSERT INTO events (execution_id, event_id, schedule_event_id, type, step_name, "
            "time, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    execution_id,
                    e.event_id,
                    e.schedule_event_id,
                    e.type,
                    e.step_name,
                    e.time,
                    jsontext.dumps(e.detail) if e.detail else "{}",
                )
                for e in events
            ],
        )

    def list_events(self, execution_id: int, after: int, limit: int) -> list[HistoryEvent]:
        rows = self.db.execute(
            "SELECT event_id, schedule_event_id, type, step_name, time, detail FROM events "
            "WHERE execution_id = ? AND event_id > ? ORDER BY event_id LIMIT ?",
            (execution_id, after, limit),
        ).fetchall()
        return [HistoryEvent(r[0], r[1], r[2], r[3], r[4], decoding.detail(r[5])) for r in rows]

    def last_event_id(self, execution_id: int) -> int:
        row = self.db.execute(
            "SELECT max(event_id) FROM events WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return int(row[0] or 0)

    # quarantine
    def quarantine(self, kind: str, execution_id: int, data: str, reason: str) -> None:
        self._write(
            "INSERT INTO quarantine (kind, execution_id, data, reason, time) "
            "VALUES (?, ?, ?, ?, ?)",
            (kind, execution_id, data, reason, time.time()),
        )

    def drop_work(self, execution_id: int) -> None:
        self._write("DELETE FROM timers WHERE execution_id = ?", (execution_id,))
        self._write("DELETE FROM outbox WHERE execution_id = ?", (execution_id,))

    # timers
    def add_timer(self, row: TimerRow) -> None:
        self._write(
            "INSERT OR REPLACE INTO timers (execution_id, timer_id, fire_at, kind) "
            "VALUES (?, ?, ?, ?)",
            (row.execution_id, row.timer_id, row.fire_at, row.kind),
        )

    def delete_timer(self, execution_id: int, timer_id: int, owner: str | None = None) -> bool:
        sql = "DELETE FROM timers WHERE execution_id = ? AND timer_id = ?"
        args: tuple[Any, ...] = (execution_id, timer_id)
        if owner is not None:
            sql += " AND lease_owner = ?"
            args += (owner,)
        return self._write(sql, args).rowcount > 0

    def list_timers(self, execution_id: int) -> list[TimerRow]:
        rows = self.db.execute(
            "SELECT execution_id, timer_id, fire_at, kind FROM timers WHERE execution_id = ? "
            "ORDER BY timer_id",
            (execution_id,),
        ).fetchall()
        return [TimerRow(*r) for r in rows]

    def claim_due_timers(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[TimerRow]:
        self._check_writable()
        rows = self.db.execute(
            "SELECT execution_id, timer_id, fire_at, kind FROM timers WHERE fire_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY fire_at LIMIT ?",
            (now, now, limit),
        ).fetchall()
        self._write_many(
            "UPDATE timers SET lease_owner = ?, lease_until = ? "
            "WHERE execution_id = ? AND timer_id = ?",
            [(owner, lease_until, r[0], r[1]) for r in rows],
        )
        return [TimerRow(*r) for r in rows]

    def next_timer_at(self) -> float | None:
        row = self.db.execute(
            "SELECT fire_at FROM timers WHERE lease_until IS NULL ORDER BY fire_at LIMIT 1"
        ).fetchone()
        return float(row[0]) if row else None

    # outbox
    def add_outbox(
        self,
        execution_id: int,
        payload: dict[str, Any],
        owner: str,
        lease_until: float,
        now: float | None = None,
    ) -> int:
        cur = self._write(
            "INSERT INTO outbox (execution_id, payload, lease_owner, lease_until) "
            "VALUES (?, ?, ?, ?)",
            (execution_id, jsontext.dumps(payload), owner, lease_until),
        )
        return int(cur.lastrowid or 0)

    def delete_outbox(self, outbox_id: int) -> bool:
        return self._write("DELETE FROM outbox WHERE id = ?", (outbox_id,)).rowcount > 0

    def claim_outbox(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        self._check_writable()
        rows = self.db.execute(
            "SELECT id, execution_id, payload FROM outbox "
            "WHERE lease_until IS NULL OR lease_until < ? ORDER BY id LIMIT ?",
            (now, limit),
        ).fetchall()
        self._write_many(
            "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ?",
            [(owner, lease_until, r[0]) for r in rows],
        )
        return [decoding.outbox_row(*r) for r in rows]

    def renew_outbox(self, ids: Sequence[int], owner: str, now: float, lease_until: float) -> None:
        self._write_many(
            "UPDATE outbox SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            [(lease_until, i, owner) for i in ids],
        )

    def list_outbox(self, execution_id: int) -> list[OutboxRow]:
        rows = self.db.execute(
            "SELECT id, execution_id, payload FROM outbox WHERE execution_id = ? ORDER BY id",
            (execution_id,),
        ).fetchall()
        return [decoding.outbox_row(*r) for r in rows]

    def release_leases(self, owner: str | None = None) -> None:
        where, args = ("", ()) if owner is None else (" WHERE lease_owner = ?", (owner,))
        self._write(f"UPDATE outbox SET lease_owner = NULL, lease_until = NULL{where}", args)
        self._write(f"UPDATE timers SET lease_owner = NULL, lease_until = NULL{where}", args)
        where = "" if owner is None else " WHERE claim_owner = ?"
        self._write(f"UPDATE flow_objects SET claim_owner = NULL, claim_until = NULL{where}", args)


class SQLiteStore(Store):
    """The embedded store. See the module docstring for URLs and options.

    Opening a file store checks it first, so that a damaged store is refused at start in one
    sentence instead of being served with every write failing. A missing file becomes a new
    store made whole under a temporary name; an empty file, a file that is not a SQLite
    database, another program's database or a write-ahead log without its database is refused
    with what to do. `PRAGMA quick_check` reads every page (`?check=quick`, the default, about
    0.7 s for 500 MB in the page cache; `?check=full` runs `integrity_check`; `?check=off`
    skips it). An older store is then upgraded, a newer one refused. Making, checking and
    upgrading the file is done by `relayflow.store.sqlite_file`.
    """

    single_engine = True
    # The mark in the file's header; also here, where callers and tests have always read it.
    APPLICATION_ID = sqlite_file.APPLICATION_ID

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        """Open (or make) the store at ``url``.

        Args:
            url: `sqlite:///path.db` with options, or `memory://`.
            upgrade: bring a store written by an older relayflow to this schema (and refuse
                one written by a newer relayflow). Tools that only look at a store's version
                pass False, then call `upgrade` if they mean to.

        Raises:
            StoreError: the store cannot be made, read, checked or upgraded.
        """
        self.url = url
        self.path, self.synchronous, self.check = sqlite_file.parse_url(url)
        self.memory = self.path is None
        if self.path is not None:
            sqlite_file.prepare(self.path, sqlite_file.CREATE)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._shared: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._connections: list[sqlite3.Connection] = []
        #: The store's schema version (`relayflow.store.versions`) as it stands now.
        self.schema_version = SCHEMA_VERSION
        #: The version this opening upgraded the store from; None when it upgraded nothing.
        self.upgraded_from: int | None = None
        try:
            if self.path is not None:
                db = self._connect()
                sqlite_file.check_database(db, self.path, self.check)
                found = sqlite_file.read_version(db, self._where)
                self.schema_version = SCHEMA_VERSION if found is None else found
            if upgrade or self.memory:
                self.upgrade()
        except sqlite3.OperationalError as exc:
            self.close()
            raise StoreError(f"cannot open the store {self._where}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(self._damaged(str(exc))) from None
        except BaseException:
            self.close()
            raise

    @property
    def _where(self) -> str:
        return str(self.path.resolve()) if self.path is not None else "memory://"

    def _damaged(self, detail: str) -> str:
        return sqlite_file.damaged(self._where, detail)

    def _connect(self) -> sqlite3.Connection:
        if self.memory:
            if self._shared is None:
                self._shared = sqlite3.connect(
                    ":memory:", isolation_level=None, check_same_thread=False
                )
                self._connections.append(self._shared)
            return self._shared
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            assert self.path is not None
            try:
                db = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"cannot open the store {self._where}: {exc}") from None
            except sqlite3.DatabaseError as exc:
                raise StoreError(self._damaged(str(exc))) from None
            self._local.db = db
            self._connections.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction (BEGIN IMMEDIATE), one at a time per process."""
        db = self._connect()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        """A read transaction on this thread's connection; WAL lets it run beside writes."""
        db = self._connect()
        if self.memory:
            with self._write_lock:
                yield _Tx(db, read_only=True)
            return
        db.execute("BEGIN")
        try:
            yield _Tx(db, read_only=True)
        finally:
            db.execute("COMMIT")

    def upgrade(self) -> int | None:
        """Bring the store to this release's schema in one transaction, under the engine lock.

        Returns:
            The version the store was upgraded from; None when it was current already.

        Raises:
            StoreError: the store is newer than this release, another engine runs on it, or a
                step failed (the store is then left as it was).
        """
        held = self._lock_file is not None
        if self.schema_version < SCHEMA_VERSION and not held:
            self.acquire_engine_lock()  # no engine may write the old schema meanwhile
        try:
            with self.transaction() as tx:
                db: sqlite3.Connection = tx.db  # type: ignore[attr-defined]
                upgraded_from = sqlite_file.settle_schema(db, self._where)
                sqlite_file.mark_store(db)
        finally:
            if not held:
                self._release_engine_lock()
        self.schema_version = SCHEMA_VERSION
        if upgraded_from is not None:
            self.upgraded_from = upgraded_from
            sqlite_file.log_upgrade(self._where, upgraded_from)
        return upgraded_from

    def acquire_engine_lock(self) -> None:
        """Hold `<db>.lock` so that a second engine on the same file is refused."""
        if self.path is None or self._lock_file is not None:
            return
        self._lock_file = sqlite_file.lock(self.path)

    def _release_engine_lock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def close(self) -> None:
        """Close every connection and release the engine lock."""
        for db in self._connections:
            db.close()
        self._connections.clear()
        self._shared = None
        self._local = threading.local()
        self._release_engine_lock()
