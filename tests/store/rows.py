"""Rows and small helpers shared by the store conformance tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from relayflow.store import ExecutionRow, FlowRow, HistoryEvent, Store, Transaction

#: A lease that outlives any test.
LONG = 1000.0


def now() -> float:
    """The time to pass as ``now``: real time, since some drivers measure leases on their own clock."""
    return time.time()


def flow_row(name: str = "f", version: int = 1, definition: str = "def-1") -> FlowRow:
    return FlowRow(name, f"id-{name}", definition, "desc", "FDL", "", version, 10.0, 10.0 + version)


def exec_row(
    flow: str = "f", name: str = "e1", status: str = "Running", started: float = 100.0
) -> ExecutionRow:
    return ExecutionRow(
        0,
        f"uid-{flow}-{name}",
        flow,
        name,
        f"id-{flow}",
        1,
        status,
        '{"a": 1}',
        None,
        "",
        "",
        started,
        None,
        "{}",
        "",
    )


def event(event_id: int, kind: str = "StepEntered", detail: Any = None) -> HistoryEvent:
    return HistoryEvent(event_id, 0, kind, "step", 100.0 + event_id, detail or {"n": event_id})


class Rollback(Exception):
    """Raised to roll back a transaction on purpose."""


def peek(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    """Run ``fn`` in a write transaction that is then rolled back (to look at leases)."""
    result = None
    with pytest.raises(Rollback), store.transaction() as tx:
        result = fn(tx)
        raise Rollback
    return result


def write(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    with store.transaction() as tx:
        return fn(tx)


def read(store: Store, fn: Callable[[Transaction], Any]) -> Any:
    with store.reader() as tx:
        return fn(tx)


def in_thread(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Run ``fn`` on a thread of its own and return its result or raise its error (bounded)."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout=timeout)
    finally:
        pool.shutdown(wait=False)


def raw(tx: Transaction, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL without parameters on a transaction's own connection (to damage rows on purpose).

    Knows the SQLite and PostgreSQL transactions; a new driver adds its own connection here.
    """
    conn = getattr(tx, "db", None) or getattr(tx, "conn", None)
    if conn is None:
        pytest.skip(f"no raw SQL access to {type(tx).__name__} (add it to tests/store/rows.py)")
    cursor = conn.execute(sql)
    # (In PostgreSQL's pipeline mode the description comes only with the rows.)
    return list(cursor.fetchall()) if sql.lstrip().upper().startswith("SELECT") else []
