"""The PostgreSQL store's operations for running flows in production (issue 15).

Family links (which execution a task started), counts for bulk actions, the deletion of ended
executions for retention, and a store-wide lock so that one replica at a time does a job.

`purge_ended` takes the ended rows ``FOR UPDATE SKIP LOCKED``: a redrive that has locked an
ended execution keeps it, and two purges at once take disjoint rows. `try_lock` is a
transaction-level advisory lock keyed by relayflow's mark and a hash of the name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from relayflow.store import postgres_sql as q
from relayflow.store.records import ExecutionRow

__all__: list[str] = []

# The first key of relayflow's advisory locks ("RFLW"), the second is the name's hash.
_LOCK_SPACE: Final = 0x52464C57
_ENDED: Final = "stopped IS NOT NULL AND stopped < %s AND status <> 'Running'"
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
        where.append("status = %s")
        args.append(status)
    if name_prefix:
        # The range lets the (flow_name, name) index find the start and the end (names are
        # in "C" order, where no name that starts with the prefix sorts above the prefix and
        # U+10FFFF); starts_with decides.
        where.append("name >= %s AND name < %s AND starts_with(name, %s)")
        args += [name_prefix, name_prefix + "\U0010ffff", name_prefix]
    if started_from is not None:
        where.append("started >= %s")
        args.append(started_from)
    if started_to is not None:
        where.append("started <= %s")
        args.append(started_to)
    return where, args


class _OperationsMixin:
    """`Transaction`'s family, filter and retention methods on a `Buffered` connection."""

    if TYPE_CHECKING:  # `Buffered`'s, which the transaction class inherits first
        _rows: dict[int, ExecutionRow]
        _written: set[int]

        def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any: ...
        def _all(self, sql: str, args: Sequence[Any] | None = None) -> list[Any]: ...
        def _write(self, sql: str, args: Sequence[Any] | None = None) -> None: ...
        def _write_one(self, sql: str, args: Sequence[Any] | None = None) -> Any: ...
        def _check_writable(self) -> None: ...
        def _forget_rows(self) -> None: ...

    def link_child(self, parent_id: int, child_id: int) -> None:
        self._write(
            "INSERT INTO execution_links (child_id, parent_id) VALUES (%s, %s) "
            "ON CONFLICT (child_id) DO UPDATE SET parent_id = excluded.parent_id",
            (child_id, parent_id),
        )

    def parent_of(self, child_id: int) -> ExecutionRow | None:
        row = self._one(
            f"SELECT {q.EXEC_COLUMNS} FROM executions WHERE id = "
            "(SELECT parent_id FROM execution_links WHERE child_id = %s)",
            (child_id,),
        )
        return ExecutionRow(*row) if row else None

    def children_of(
        self, parent_id: int, after_id: int = 0, limit: int = 100
    ) -> list[ExecutionRow]:
        rows = self._all(
            f"SELECT {q.EXEC_COLUMNS} FROM executions WHERE id IN (SELECT child_id FROM "
            "execution_links WHERE parent_id = %s AND child_id > %s) ORDER BY id LIMIT %s",
            (parent_id, after_id, limit),
        )
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
        match = f"FROM executions WHERE {' AND '.join(['flow_name = %s', *where])}"
        sql = f"SELECT count(*) {match}"
        if at_most is not None:  # the matches past at_most + 1 are not looked at
            sql = f"SELECT count(*) FROM (SELECT 1 {match} LIMIT %s) AS matching"
            args.append(at_most + 1)
        row = self._one(sql, [flow_name, *args])
        return int(row[0])

    def count_ended(self, ended_before: float, flow_name: str | None = None) -> int:
        flow, args = (
            ("", [ended_before])
            if flow_name is None
            else (
                " AND flow_name = %s",
                [ended_before, flow_name],
            )
        )
        row = self._one(f"SELECT count(*) FROM executions WHERE {_ENDED}{flow}", args)
        return int(row[0])

    def purge_ended(self, ended_before: float, flow_name: str | None, limit: int) -> int:
        self._check_writable()
        self._forget_rows()
        flow, args = (
            ("", [ended_before])
            if flow_name is None
            else (
                " AND flow_name = %s",
                [ended_before, flow_name],
            )
        )
        ids = [
            int(r[0])
            for r in self._all(
                f"SELECT id FROM executions WHERE {_ENDED}{flow} ORDER BY stopped LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                [*args, limit],
            )
        ]
        if not ids:
            return 0
        for table in _OWNED:
            self._write(f"DELETE FROM {table} WHERE execution_id = ANY(%s)", (ids,))
        self._write(
            "DELETE FROM execution_links WHERE child_id = ANY(%s) OR parent_id = ANY(%s)",
            (ids, ids),
        )
        self._write("DELETE FROM executions WHERE id = ANY(%s)", (ids,))
        return len(ids)

    def try_lock(self, name: str) -> bool:
        row = self._write_one(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, name)
        )
        return bool(row[0])

    def set_execution_version(
        self, execution_id: int, flow_version: int, published_version: int
    ) -> None:
        self._write(
            "UPDATE executions SET flow_version = %s, published_version = %s WHERE id = %s",
            (flow_version, published_version, execution_id),
        )
        row = self._rows.get(execution_id)
        if row is not None:  # the locked row this transaction remembers moves with it
            self._rows[execution_id] = dataclasses.replace(
                row, flow_version=flow_version, published_version=published_version
            )
        self._written.add(execution_id)
