"""The SQLite store's file: made whole before anyone uses it, checked before it is trusted.

A new store is made only where no file exists, under a temporary name and then linked into
place, so that a crash never leaves a half-made store behind and a store that another process
made meanwhile is never replaced. An existing file must be a relayflow store: an empty file, a
file that is not a SQLite database, another program's database (told apart by the
`application_id` mark) or a write-ahead log without its database is refused in one sentence
saying what to do. The integrity check at open (`check=quick|full|off`) refuses a damaged store
at start, instead of serving it with every write failing.

`relayflow.store.sqlite.SQLiteStore` calls these; nothing here holds a connection open.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Final

from relayflow.store.base import StoreError

__all__ = ["APPLICATION_ID", "CHECKS", "check_database", "damaged", "mark_store", "prepare"]

# `PRAGMA application_id` of relayflow stores ("RFLW"), so that tools such as file(1) and the
# check at opening tell them from other SQLite databases.
APPLICATION_ID: Final = 0x52464C57

# The pragma each `check=` option runs at open; `off` runs none.
CHECKS: Final[dict[str, str]] = {
    "quick": "quick_check(1)",
    "full": "integrity_check(1)",
    "off": "",
}


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
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
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


def mark_store(db: sqlite3.Connection) -> None:
    """Give a store made before the `application_id` mark existed its mark (inside a write)."""
    if db.execute("PRAGMA application_id").fetchone()[0] == 0:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
