"""The PostgreSQL store's flow objects: schedules, aliases and published versions of a flow.

One table, `flow_objects`, keyed by (flow_name, kind, name). Replicas share it, so:

- `create_object` settles a race in the database (``ON CONFLICT DO NOTHING``): one wins;
- `claim_due_objects` takes due rows ``FOR UPDATE SKIP LOCKED``, so that replicas claiming
  together get disjoint sets, and skips rows whose claim has not run out; claims are measured
  on the database's clock, as leases are (`relayflow.store.postgres_tx`), while `due_at` is
  compared with the caller's ``now`` (an engine set it, as a timer's `fire_at`);
- `put_object` with an owner is a compare-and-set on the claim: it writes only while the row
  is still claimed by that owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from relayflow.store.postgres_sql import NOW, Array
from relayflow.store.records import FlowObjectRow

__all__: list[str] = []

_COLUMNS: Final = "flow_name, kind, name, data, created, modified, due_at"
_KEY: Final = "flow_name = %s AND kind = %s AND name = %s"
_CLAIM: Final = (
    "WITH due AS (SELECT flow_name, kind, name FROM flow_objects WHERE kind = %s "
    f"AND due_at <= %s AND (claim_until IS NULL OR claim_until < {NOW}) "
    "ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED) "
    f"UPDATE flow_objects o SET claim_owner = %s, claim_until = {NOW} + %s FROM due "
    "WHERE o.flow_name = due.flow_name AND o.kind = due.kind AND o.name = due.name "
    "RETURNING o.flow_name, o.kind, o.name, o.data, o.created, o.modified, o.due_at"
)


_PUT_CLAIMED: Final = (
    "UPDATE flow_objects o SET data = v.data, modified = v.modified, due_at = v.due_at, "
    "claim_owner = NULL, claim_until = NULL FROM unnest(%s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::float8[], %s::float8[]) AS v(flow_name, kind, name, data, modified, due_at) "
    'WHERE o.flow_name = v.flow_name COLLATE "C" AND o.kind = v.kind COLLATE "C" '
    'AND o.name = v.name COLLATE "C" AND o.claim_owner = %s '
    "RETURNING o.flow_name, o.kind, o.name"
)


class _ObjectsMixin:
    """`Transaction`'s flow-object methods on a `Buffered` PostgreSQL connection."""

    if TYPE_CHECKING:  # `Buffered`'s, which the transaction class inherits first

        def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any: ...
        def _all(self, sql: str, args: Sequence[Any] | None = None) -> list[Any]: ...
        def _write_one(self, sql: str, args: Sequence[Any] | None = None) -> Any: ...
        def _check_writable(self) -> None: ...

    def get_object(
        self, flow_name: str, kind: str, name: str, *, lock: bool = False
    ) -> FlowObjectRow | None:
        sql = f"SELECT {_COLUMNS} FROM flow_objects WHERE {_KEY}"
        row = self._one(sql + " FOR UPDATE" if lock else sql, (flow_name, kind, name))
        return FlowObjectRow(*row) if row else None

    def create_object(self, row: FlowObjectRow) -> bool:
        created = self._write_one(
            f"INSERT INTO flow_objects ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (flow_name, kind, name) DO NOTHING RETURNING 1",
            (row.flow_name, row.kind, row.name, row.data, row.created, row.modified, row.due_at),
        )
        return created is not None

    def put_object(self, row: FlowObjectRow, *, owner: str | None = None) -> bool:
        key = (row.flow_name, row.kind, row.name)
        if owner is not None:
            found = self._write_one(
                "UPDATE flow_objects SET data = %s, modified = %s, due_at = %s, "
                f"claim_owner = NULL, claim_until = NULL WHERE {_KEY} AND claim_owner = %s "
                "RETURNING 1",
                (row.data, row.modified, row.due_at, *key, owner),
            )
            return found is not None
        self._write_one(
            f"INSERT INTO flow_objects ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (flow_name, kind, name) DO UPDATE SET data = excluded.data, "
            "modified = excluded.modified, due_at = excluded.due_at, claim_owner = NULL, "
            "claim_until = NULL RETURNING 1",
            (*key, row.data, row.created, row.modified, row.due_at),
        )
        return True

    def put_objects(self, rows: Sequence[FlowObjectRow], *, owner: str) -> list[bool]:
        """`put_object` with ``owner`` for each row, in one statement (one round trip)."""
        if not rows:
            return []
        self._check_writable()
        columns = [
            Array([r.flow_name for r in rows], "text"),
            Array([r.kind for r in rows], "text"),
            Array([r.name for r in rows], "text"),
            Array([r.data for r in rows], "text"),
            Array([r.modified for r in rows], "float8"),
            Array([r.due_at for r in rows], "float8"),
        ]
        moved = {tuple(r) for r in self._all(_PUT_CLAIMED, (*columns, owner))}
        return [(r.flow_name, r.kind, r.name) in moved for r in rows]

    def delete_object(self, flow_name: str, kind: str, name: str) -> bool:
        found = self._write_one(
            f"DELETE FROM flow_objects WHERE {_KEY} RETURNING 1", (flow_name, kind, name)
        )
        return found is not None

    def list_objects(
        self, flow_name: str, kind: str, after: str = "", limit: int = 100
    ) -> list[FlowObjectRow]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM flow_objects WHERE flow_name = %s AND kind = %s "
            "AND name > %s ORDER BY name LIMIT %s",
            (flow_name, kind, after, limit),
        )
        return [FlowObjectRow(*r) for r in rows]

    def object_kinds(self, flow_name: str) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT kind FROM flow_objects WHERE flow_name = %s ORDER BY kind",
            (flow_name,),
        )
        return [r[0] for r in rows]

    def claim_due_objects(
        self, kind: str, now: float, owner: str, lease_until: float, limit: int
    ) -> list[FlowObjectRow]:
        self._check_writable()
        rows = self._all(_CLAIM, (kind, now, limit, owner, lease_until - now))
        found = [FlowObjectRow(*r) for r in rows]
        return sorted(found, key=lambda o: (o.due_at or 0.0, o.flow_name, o.name))

    def next_object_due(self, kind: str) -> float | None:
        row = self._one(
            "SELECT due_at FROM flow_objects WHERE kind = %s AND due_at IS NOT NULL "
            "ORDER BY due_at LIMIT 1",
            (kind,),
        )
        return float(row[0]) if row else None
