"""The SQLite store's operations for running flows in production (issue 15).

Family links (which execution a task started), counts for bulk actions, and the deletion of
ended executions for retention. One engine owns a SQLite store, so `try_lock` always wins and
nothing here needs to skip rows another writer holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from relayflow.store.records import ExecutionRow

__all__: list[str] = []

#: The columns of an execution row, as `relayflow.store.sqlite` reads them.
EXEC_COLUMNS: Final = (
    "id, uid, flow_name, name, flow_id, flow_version, status, input, output, error, cause, "
    "started, stopped, state, callback_token, published_version"
)
_ENDED: Final = "stopped IS NOT NULL AND stopped < ? AND status <> 'Running'"
# Tables whose rows belong to one execution, by `execution_id`.
_OWNED: Final = ("events", "timers", "outbox", "quarantine")


def filters(
    status: str | None,
    name_prefix: str | None,
    started_from: float | None,
    started_to: float | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms and arguments of `list_executions`' filters."""
    where: list[str] = []
    args: list[Any] = []
    if status:
        where.append("status = ?")
        args.append(status)
    if name_prefix:
        where.append("name >= ? AND name < ?")
        args += [name_prefix, name_prefix + "\U0010ffff"]
    if started_from is not None:
        where.append("started >= ?")
        args.append(started_from)
    if started_to is not None:
        where.append("started <= ?")
        args.append(started_to)
    return where, args


#: A started-between filter whose window holds at most this many of the flow's executions is
#: listed from the window (the `executions_flow_started` index) and sorted by name; a wider one
#: by walking the flow's executions in name order, where a match is then near at hand.
WINDOW_SORT_MAX: Final = 20_000
# The highest character: a prefix followed by it is above every name that starts with it.
_TOP: Final = "\U0010ffff"


def _name_bounds(after: str, name_prefix: str | None, plus: str) -> tuple[list[str], list[Any]]:
    """One lower bound on the name (past ``after``, at the prefix) and the prefix's upper bound.

    One lower bound only: given ``name > ?`` and ``name >= ?`` SQLite may seek by the looser
    one and scan every name before the prefix.
    """
    if not name_prefix:
        return [f"{plus}name > ?"], [after]
    lower = (
        ([f"{plus}name > ?"], [after])
        if after >= name_prefix
        else ([f"{plus}name >= ?"], [name_prefix])
    )
    return [*lower[0], f"{plus}name < ?"], [*lower[1], name_prefix + _TOP]


def list_page(
    db: sqlite3.Connection,
    flow_name: str,
    after: str,
    limit: int,
    status: str | None,
    name_prefix: str | None,
    started_from: float | None,
    started_to: float | None,
) -> list[ExecutionRow]:
    """A page of a flow's executions by name after ``after``, with ListExecutions' filters.

    The plan is chosen here rather than by SQLite, which has no statistics to go by: with a
    start window of at most `WINDOW_SORT_MAX` executions (counted in the index, bounded), the
    window's index entries are filtered and sorted by name and only the page's rows are read;
    otherwise the flow's executions are walked in name order (by status when one is asked
    for), the start times checked on the way (``+started`` keeps SQLite off the window index).
    """
    window: list[str] = []
    window_args: list[Any] = []
    if started_from is not None:
        window.append("started >= ?")
        window_args.append(started_from)
    if started_to is not None:
        window.append("started <= ?")
        window_args.append(started_to)
    narrow = False
    if window:
        counted = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM executions INDEXED BY executions_flow_started "
            f"WHERE flow_name = ? AND {' AND '.join(window)} LIMIT ?)",
            [flow_name, *window_args, WINDOW_SORT_MAX + 1],
        ).fetchone()
        narrow = int(counted[0]) <= WINDOW_SORT_MAX
    # In the window plan the name and status terms must not pick an index ("+" hides them).
    plus = "+" if narrow else ""
    names, name_args = _name_bounds(after, name_prefix, plus)
    where = ["flow_name = ?", *names]
    args: list[Any] = [flow_name, *name_args]
    if status:
        where.append(f"{plus}status = ?")
        args.append(status)
    if narrow:
        where += window
        args += window_args
        rows = db.execute(
            f"SELECT {EXEC_COLUMNS} FROM executions WHERE id IN (SELECT id FROM executions "
            f"INDEXED BY executions_flow_started WHERE {' AND '.join(where)} ORDER BY name "
            "LIMIT ?) ORDER BY name",
            [*args, limit],
        ).fetchall()
    else:
        where += [f"+{term}" for term in window]
        args += window_args
        rows = db.execute(
            f"SELECT {EXEC_COLUMNS} FROM executions WHERE {' AND '.join(where)} "
            "ORDER BY name LIMIT ?",
            [*args, limit],
        ).fetchall()
    return [ExecutionRow(*r) for r in rows]


class _OperationsMixin:
    """`Transaction`'s family, filter and retention methods on a SQLite connection."""

    if TYPE_CHECKING:  # the transaction class's
        db: sqlite3.Connection

        def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor: ...
        def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def link_child(self, parent_id: int, child_id: int) -> None:
        self._write(
            "INSERT OR REPLACE INTO execution_links (child_id, parent_id) VALUES (?, ?)",
            (child_id, parent_id),
        )

    def parent_of(self, child_id: int) -> ExecutionRow | None:
        row = self.db.execute(
            f"SELECT {EXEC_COLUMNS} FROM executions WHERE id = "
            "(SELECT parent_id FROM execution_links WHERE child_id = ?)",
            (child_id,),
        ).fetchone()
        return ExecutionRow(*row) if row else None

    def children_of(
        self, parent_id: int, after_id: int = 0, limit: int = 100
    ) -> list[ExecutionRow]:
        rows = self.db.execute(
            f"SELECT {EXEC_COLUMNS} FROM executions WHERE id IN (SELECT child_id FROM "
            "execution_links WHERE parent_id = ? AND child_id > ?) ORDER BY id LIMIT ?",
            (parent_id, after_id, limit),
        ).fetchall()
        return [ExecutionRow(*r) for r in rows]

    def count_matching(
        self,
        flow_name: str,
        *,
        status: str | None = None,
        name_prefix: str | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
        at_most: int | None = None,
    ) -> int:
        where, args = filters(status, name_prefix, started_from, started_to)
        match = f"FROM executions WHERE {' AND '.join(['flow_name = ?', *where])}"
        sql = f"SELECT count(*) {match}"
        if at_most is not None:  # the matches past at_most + 1 are not looked at
            sql = f"SELECT count(*) FROM (SELECT 1 {match} LIMIT ?)"
            args.append(at_most + 1)
        row = self.db.execute(sql, [flow_name, *args]).fetchone()
        return int(row[0])

    def count_ended(self, ended_before: float, flow_name: str | None = None) -> int:
        flow, args = (
            ("", [ended_before])
            if flow_name is None
            else (
                " AND flow_name = ?",
                [ended_before, flow_name],
            )
        )
        row = self.db.execute(
            f"SELECT count(*) FROM executions WHERE {_ENDED}{flow}", args
        ).fetchone()
        return int(row[0])

    def purge_ended(self, ended_before: float, flow_name: str | None, limit: int) -> int:
        flow, args = (
            ("", [ended_before])
            if flow_name is None
            else (
                " AND flow_name = ?",
                [ended_before, flow_name],
            )
        )
        ids = [
            (int(r[0]),)
            for r in self.db.execute(
                f"SELECT id FROM executions WHERE {_ENDED}{flow} ORDER BY stopped LIMIT ?",
                [*args, limit],
            )
        ]
        if not ids:
            return 0
        for table in _OWNED:
            self._write_many(f"DELETE FROM {table} WHERE execution_id = ?", ids)
        self._write_many("DELETE FROM execution_links WHERE child_id = ?", ids)
        self._write_many("DELETE FROM execution_links WHERE parent_id = ?", ids)
        self._write_many("DELETE FROM executions WHERE id = ?", ids)
        return len(ids)

    def try_lock(self, name: str) -> bool:
        return True  # one engine owns a SQLite store

    def set_execution_version(
        self, execution_id: int, flow_version: int, published_version: int
    ) -> None:
        self._write(
            "UPDATE executions SET flow_version = ?, published_version = ? WHERE id = ?",
            (flow_version, published_version, execution_id),
        )
