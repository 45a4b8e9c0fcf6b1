"""The SQLite store's file: made whole before anyone uses it, checked, and kept at this schema.

A new store is made only where no file exists, under a temporary name and then linked into
place, so that a crash never leaves a half-made store behind and a store that another process
made meanwhile is never replaced. An existing file must be a relayflow store: an empty file, a
file that is not a SQLite database, another program's database (told apart by the
`application_id` mark) or a write-ahead log without its database is refused in one sentence
saying what to do. The integrity check at open (`check=quick|full|off`) refuses a damaged store
at start, instead of serving it with every write failing.

The schema is `SCHEMA`; a new store records `versions.SCHEMA_VERSION` as it is made. An older
store is upgraded by the steps in `UPGRADES` (one entry per schema version), all of them and the
new version in one transaction, while this process holds the engine lock (`lock`): a crash or an
error leaves the store as it was, and no engine runs on it meanwhile.

`relayflow.store.sqlite.SQLiteStore` calls these; nothing here holds a connection open.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from relayflow.store.base import StoreError
from relayflow.store.versions import (
    META_KEY,
    SCHEMA_VERSION,
    Upgrades,
    stored_version,
    upgrade_plan,
)

__all__ = [
    "APPLICATION_ID",
    "CHECKS",
    "CREATE",
    "SCHEMA",
    "UPGRADES",
    "check_database",
    "damaged",
    "lock",
    "log_upgrade",
    "mark_store",
    "parse_url",
    "prepare",
    "read_version",
    "settle_schema",
]

#: The tables of a store at `SCHEMA_VERSION`, statements separated by semicolons.
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flows (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, definition TEXT NOT NULL, description TEXT NOT NULL,
    type TEXT NOT NULL, role_arn TEXT NOT NULL, version INTEGER NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL,
    execution_mode TEXT NOT NULL DEFAULT 'Standard', environment TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS flow_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT NOT NULL,
    PRIMARY KEY (name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, flow_name TEXT NOT NULL,
    name TEXT NOT NULL, flow_id TEXT NOT NULL, flow_version INTEGER NOT NULL,
    status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT NOT NULL,
    cause TEXT NOT NULL, started REAL NOT NULL, stopped REAL, state TEXT NOT NULL,
    callback_token TEXT NOT NULL, published_version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (flow_name, name));
CREATE INDEX IF NOT EXISTS executions_status ON executions (status);
CREATE TABLE IF NOT EXISTS events (
    execution_id INTEGER NOT NULL, event_id INTEGER NOT NULL, schedule_event_id INTEGER NOT NULL,
    type TEXT NOT NULL, step_name TEXT NOT NULL, time REAL NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (execution_id, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS timers (
    execution_id INTEGER NOT NULL, timer_id INTEGER NOT NULL, fire_at REAL NOT NULL,
    kind TEXT NOT NULL, lease_owner TEXT, lease_until REAL,
    PRIMARY KEY (execution_id, timer_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timers_due ON timers (fire_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, execution_id INTEGER NOT NULL, payload TEXT NOT NULL,
    lease_owner TEXT, lease_until REAL);
CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_seen ON nonces (seen);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, execution_id INTEGER NOT NULL,
    data TEXT NOT NULL, reason TEXT NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS flow_objects (
    flow_name TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL, due_at REAL, claim_owner TEXT,
    claim_until REAL, PRIMARY KEY (flow_name, kind, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flow_objects_due ON flow_objects (kind, due_at);
CREATE TABLE IF NOT EXISTS execution_links (
    child_id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS execution_links_parent ON execution_links (parent_id);
CREATE INDEX IF NOT EXISTS executions_stopped ON executions (stopped) WHERE stopped IS NOT NULL;
CREATE INDEX IF NOT EXISTS executions_flow_status ON executions (flow_name, status, name, started);
CREATE INDEX IF NOT EXISTS executions_flow_started ON executions (flow_name, started, status, name);
"""

#: A new store: the schema and the version it is at.
CREATE: Final = f"{SCHEMA}INSERT INTO meta (key, value) VALUES ('{META_KEY}', '{SCHEMA_VERSION}');"

#: How an older store is brought to each later version. Steps are history: never edit one
#: that was released; a schema change adds the next version here and changes `SCHEMA` alike
#: (tests/store/test_upgrade.py checks that a store upgraded from version 1 equals a new one).
UPGRADES: Final[Upgrades] = {
    # Request nonces (SignatureNonce) shared by every process on the store.
    2: (
        "CREATE TABLE nonces (key TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID",
        "CREATE INDEX nonces_seen ON nonces (seen)",
    ),
    # Issue 14: a flow's objects (schedules, aliases, published versions), the flow's mode
    # and environment, and the published version an execution runs.
    3: (
        "ALTER TABLE flows ADD COLUMN execution_mode TEXT NOT NULL DEFAULT 'Standard'",
        "ALTER TABLE flows ADD COLUMN environment TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE executions ADD COLUMN published_version INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE flow_objects (flow_name TEXT NOT NULL, kind TEXT NOT NULL, "
        "name TEXT NOT NULL, data TEXT NOT NULL, created REAL NOT NULL, modified REAL NOT NULL, "
        "due_at REAL, claim_owner TEXT, claim_until REAL, "
        "PRIMARY KEY (flow_name, kind, name)) WITHOUT ROWID",
        "CREATE INDEX flow_objects_due ON flow_objects (kind, due_at)",
    ),
    # Issue 15: which execution started which (child flows), and ended executions by their
    # end, for retention.
    4: (
        "CREATE TABLE execution_links (child_id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL)",
        "CREATE INDEX execution_links_parent ON execution_links (parent_id)",
        "CREATE INDEX executions_stopped ON executions (stopped) WHERE stopped IS NOT NULL",
    ),
    # Issue 17: the console's list at scale. A flow's executions of one status by name (and
    # their counts, from the index alone), and by start time (a started-between filter).
    5: (
        "CREATE INDEX executions_flow_status ON executions (flow_name, status, name, started)",
        "CREATE INDEX executions_flow_started ON executions (flow_name, started, status, name)",
    ),
}

log = logging.getLogger("relayflow.store")

# `PRAGMA application_id` of relayflow stores ("RFLW"), so that tools such as file(1) and the
# check at opening tell them from other SQLite databases.
APPLICATION_ID: Final = 0x52464C57

# The pragma each `check=` option runs at open; `off` runs none.
CHECKS: Final[dict[str, str]] = {
    "quick": "quick_check(1)",
    "full": "integrity_check(1)",
    "off": "",
}


def parse_url(url: str) -> tuple[Path | None, str, str]:
    """The file (None for `memory://`), `synchronous` and `check` options a store URL gives.

    Raises:
        StoreError: an option is unknown or wrong, or a file URL has no path or no folder.
    """
    parts = urlsplit(url)
    shown = url.split("?", 1)[0]  # options may be misspelt secrets: never quoted
    options = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous", "check"}
    if unknown:
        raise StoreError(
            f"unknown option {sorted(unknown)[0][:40]!r} in store URL {shown!r}; "
            "the SQLite store takes synchronous=full|normal and check=quick|full|off"
        )
    synchronous = options.get("synchronous", "full")
    if synchronous not in ("full", "normal"):
        raise StoreError(f"synchronous={synchronous} in {shown!r} must be full or normal")
    check = options.get("check", "quick")
    if check not in CHECKS:
        raise StoreError(f"check={check} in {shown!r} must be quick, full or off")
    if parts.scheme == "memory":
        return None, synchronous, check
    raw = url.split("://", 1)[1].split("?", 1)[0]
    if not raw.startswith("/") or raw == "/":
        raise StoreError(
            f"store URL {shown!r} needs a path: sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    path = Path(raw[1:]).expanduser()
    if not path.parent.exists():
        raise StoreError(f"the folder of the store {path} does not exist")
    return path, synchronous, check


def damaged(where: str, detail: str) -> str:
    """The sentence refusing the damaged store at ``where``, with SQLite's ``detail`` trimmed."""
    detail = " ".join(detail.replace("*** in database main ***", "").split())[:160]
    return (
        f"the store {where} is damaged ({detail}): restore it from a backup, or move "
        f"it and its {where}-wal file away to start a new store"
    )


def prepare(path: Path, schema: str) -> None:
    """Make a new store at a path that does not exist; refuse a file that is not a store.

    Args:
        path: the store file.
        schema: the SQL a new store is made with, statements separated by semicolons.

    Raises:
        StoreError: the file cannot be made or read, is empty or is not a SQLite database, or
            only its write-ahead log is there.
    """
    where = str(path.resolve())
    wal = Path(f"{path}-wal")
    if not path.exists():
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"the store {where} is missing but its write-ahead log {where}-wal is "
                f"there: restore the store from a backup, or delete {where}-wal and "
                f"{where}-shm to start a new store"
            )
        _create(path, schema)
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read the store {where}: {exc.strerror}") from None
    if not header:
        raise StoreError(
            f"the store {where} is an empty file, not a relayflow store: delete it to start "
            "a new store, or restore it from a backup"
        )
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise StoreError(
            f"the store {where} is not a SQLite database (its first bytes are damaged, or "
            "it is another kind of file): restore it from a backup, or move it away to "
            "start a new store"
        )


def _create(path: Path, schema: str) -> None:
    """Make a whole new store under a temporary name, then link it to ``path``."""
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        # Private from the start: the store will hold the task-token secret.
        os.close(os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("BEGIN")
            _run(db, schema)
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        try:
            os.link(temp, path)  # never replaces a store another process made meanwhile
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if not path.exists():  # a file system without hard links
                os.replace(temp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise StoreError(f"cannot create the store {path.resolve()}: {exc.strerror}") from None
    except sqlite3.Error as exc:
        raise StoreError(f"cannot create the store {path.resolve()}: {exc}") from None
    finally:
        for leftover in ("", "-journal", "-wal", "-shm"):
            Path(f"{temp}{leftover}").unlink(missing_ok=True)


def check_database(db: sqlite3.Connection, path: Path, check: str) -> None:
    """Refuse another program's database and, unless ``check`` is `off`, a damaged one.

    Args:
        db: a connection to the store file at ``path``.
        path: the store file, named in the refusal.
        check: a key of `CHECKS`.

    Raises:
        StoreError: the database is not a relayflow store, or its check found damage.
        sqlite3.DatabaseError: SQLite could not read the file far enough to tell.
    """
    mark = db.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # Stores made before the mark have none, but have relayflow's tables.
    if mark != APPLICATION_ID and not (mark == 0 and {"meta", "executions"} <= tables):
        raise StoreError(
            f"the store {path.resolve()} is a SQLite database but not a relayflow store: "
            "point [engine] store at another file (a new store is made where none exists)"
        )
    pragma = CHECKS[check]
    if pragma:
        rows = db.execute(f"PRAGMA {pragma}").fetchall()
        if rows != [("ok",)]:
            raise StoreError(damaged(str(path.resolve()), str(rows[0][0]) if rows else "no answer"))


def read_version(db: sqlite3.Connection, where: str) -> int | None:
    """The schema version of the store on ``db``; None for a database without tables yet.

    Raises:
        StoreError: the recorded version is not one relayflow writes.
    """
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
        row = db.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        return stored_version(row[0] if row else None, where)
    return None


def settle_schema(db: sqlite3.Connection, where: str) -> int | None:
    """Inside a write transaction: make an empty database a store, or upgrade an older one.

    Args:
        db: a connection inside ``BEGIN IMMEDIATE``; the caller commits, or rolls back on an
            exception (which leaves an older store exactly as it was).
        where: the store, as messages name it.

    Returns:
        The version the store was upgraded from; None when nothing needed upgrading.

    Raises:
        StoreError: the store is newer than this release, or a step failed.
    """
    found = read_version(db, where)
    if found is None:
        _run(db, CREATE)
        return None
    plan = upgrade_plan(found, UPGRADES, where)
    if not plan:
        return None
    try:
        for statement in plan:
            db.execute(statement)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (META_KEY, str(SCHEMA_VERSION)),
        )
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot upgrade the store {where} from schema version {found} to "
            f"{SCHEMA_VERSION} ({exc}); it was left at version {found}"
        ) from None
    return found


def log_upgrade(where: str, found: int) -> None:
    """Say in the log that the store was upgraded (after its transaction committed)."""
    log.info("upgraded the store %s from schema version %d to %d", where, found, SCHEMA_VERSION)


def _run(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def lock(path: Path) -> int:
    """Take ``<path>.lock`` for this process: no other engine, copy or upgrade runs meanwhile.

    Returns:
        The lock file's descriptor; closing it releases the lock.

    Raises:
        StoreError: another process holds the lock.
    """
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"another relayflow engine is running on {path} (it holds {lock_path}); "
            "stop it first, or give this one its own store"
        ) from None
    return fd


def mark_store(db: sqlite3.Connection) -> None:
    """Give a store made before the `application_id` mark existed its mark (inside a write)."""
    if db.execute("PRAGMA application_id").fetchone()[0] == 0:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
