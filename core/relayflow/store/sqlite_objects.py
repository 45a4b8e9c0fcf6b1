"""The SQLite store's flow objects: schedules, aliases and published versions of a flow.

One table, `flow_objects`, keyed by (flow_name, kind, name); the index on (kind, due_at)
serves `claim_due_objects` and `next_object_due`. A claim is an owner and a time (the caller's
clock, as with timers): one process owns a SQLite store, so a write transaction already
excludes every other writer and nothing needs locking.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relayflow.store.records import FlowObjectRow

__all__: list[str] = []

_COLUMNS = "flow_name, kind, name, data, created, modified, due_at"


class _ObjectsMixin:
    """`Transaction`'s flow-object methods for a SQLite connection (`db`)."""

    db: sqlite3.Connection

    if TYPE_CHECKING:  # the transaction's own, which refuses a read-only view

        def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor: ...

    def get_object(
        self, flow_name: str, kind: str, name: str, *, lock: bool = False
    ) -> FlowObjectRow | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM flow_objects WHERE flow_name = ? AND kind = ? AND name = ?",
            (flow_name, kind, name),
        ).fetchone()
        return FlowObjectRow(*row) if row else None

    def create_object(self, row: FlowObjectRow) -> bool:
        cur = self._write(
            f"INSERT OR IGNORE INTO flow_objects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.flow_name, row.kind, row.name, row.data, row.created, row.modified, row.due_at),
        )
        return cur.rowcount > 0

    def put_object(self, row: FlowObjectRow, *, owner: str | None = None) -> bool:
        key = (row.flow_name, row.kind, row.name)
        if owner is not None:
            cur = self._write(
                "UPDATE flow_objects SET data = ?, modified = ?, due_at = ?, claim_owner = NULL, "
                "claim_until = NULL WHERE flow_name = ? AND kind = ? AND name = ? "
                "AND claim_owner = ?",
                (row.data, row.modified, row.due_at, *key, owner),
            )
            return cur.rowcount > 0
        self._write(
            f"INSERT INTO flow_objects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (flow_name, kind, name) DO UPDATE SET data = excluded.data, "
            "modified = excluded.modified, due_at = excluded.due_at, claim_owner = NULL, "
            "claim_until = NULL",
            (*key, row.data, row.created, row.modified, row.due_at),
        )
        return True

    def delete_object(self, flow_name: str, kind: str, name: str) -> bool:
        cur = self._write(
            "DELETE FROM flow_objects WHERE flow_name = ? AND kind = ? AND name = ?",
            (flow_name, kind, name),
        )
        return cur.rowcount > 0

    def list_objects(
        self, flow_name: str, kind: str, after: str = "", limit: int = 100
    ) -> list[FlowObjectRow]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM flow_objects WHERE flow_name = ? AND kind = ? AND name > ? "
            "ORDER BY name LIMIT ?",
            (flow_name, kind, after, limit),
        ).fetchall()
        return [FlowObjectRow(*r) for r in rows]

    def object_kinds(self, flow_name: str) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT kind FROM flow_objects WHERE flow_name = ? ORDER BY kind",
            (flow_name,),
        ).fetchall()
        return [r[0] for r in rows]

    def claim_due_objects(
        self, kind: str, now: float, owner: str, lease_until: float, limit: int
    ) -> list[FlowObjectRow]:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM flow_objects WHERE kind = ? AND due_at <= ? "
            "AND (claim_until IS NULL OR claim_until < ?) ORDER BY due_at LIMIT ?",
            (kind, now, now, limit),
        ).fetchall()
        for r in rows:
            self._write(
                "UPDATE flow_objects SET claim_owner = ?, claim_until = ? "
                "WHERE flow_name = ? AND kind = ? AND name = ?",
                (owner, lease_until, r[0], r[1], r[2]),
            )
        return [FlowObjectRow(*r) for r in rows]

    def next_object_due(self, kind: str) -> float | None:
        row = self.db.execute(
            "SELECT due_at FROM flow_objects WHERE kind = ? AND due_at IS NOT NULL "
            "ORDER BY due_at LIMIT 1",
            (kind,),
        ).fetchone()
        return float(row[0]) if row else None
