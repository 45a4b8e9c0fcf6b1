"""What running executions wait on, on what, and since when.

The operations are a part of `Engine` (it inherits `WaitingOperations`). `waiting_of` reads
one execution's open work from its stored state and the definition it runs: each open task
attempt (a task's result, a callback, a child flow's end) and each wait step's or retry's
timer, with when it began and when it ends by itself. `DescribeExecution` with
`IncludeWaiting` answers it for one execution, `list_waiting` (`ListWaitingWork`) for every
running execution of one flow or of all of them.

Listing reads, never writes: an execution whose state or definition cannot be read answers
nothing, and the listing goes on with the others.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from relayflow.engine.arguments import page_size
from relayflow.engine.flowindex import FlowIndex
from relayflow.engine.snapshot import load_state
from relayflow.engine.versions import flow_not_exists
from relayflow.errors import EngineError
from relayflow.fdl import TaskStep, load_flow
from relayflow.limits import DefinitionLimits
from relayflow.results import Page, WaitingWork

if TYPE_CHECKING:
    from relayflow.engine.model import ExecutionState, Scope
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = [
    "DEFAULT_WAITING_PAGE",
    "MAX_OLDER_THAN_SECONDS",
    "MAX_WAITING_PAGE",
    "SCAN_BUDGET",
    "WaitingOperations",
    "waiting_of",
]

log = logging.getLogger("relayflow.engine")

#: ListWaitingWork's page size when no `Limit` is given.
DEFAULT_WAITING_PAGE = 100
#: ListWaitingWork's largest `Limit`.
MAX_WAITING_PAGE = 1000
#: The largest `OlderThanSeconds`: 366 days, longer than any execution may run.
MAX_OLDER_THAN_SECONDS = 366 * 24 * 3600
#: How many flows and running executions one page reads at most. A page may then hold fewer
#: items than its `Limit` (even none) with a `NextToken`: the caller goes on from there. This
#: keeps each request short however many executions are parked.
SCAN_BUDGET = 1000
#: The longest `NextToken` accepted.
MAX_TOKEN_CHARS = 1024

# Timers that are waiting work of their own; `timeout` belongs to a task (its due time),
# `flow` to the whole execution and `continue` is the engine's own bookkeeping.
_LISTED_TIMERS = frozenset({"wait", "retry"})
# Stored definitions passed the budgets in force when they were made: read them generously.
_STORED_LIMITS = DefinitionLimits(
    max_bytes=1 << 30, max_depth=1024, max_alias_nodes=1 << 20, max_problems=1
)
_CACHE_ENTRIES = 64
_CACHE_TEXT_BYTES = 4 << 20
_TOKEN_PREFIX = "w1."
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")
_LIST_BATCH = 200


class _FlowCache:
    """Step lists of flow versions by (flow id, version), least recently used first.

    Reads run on several reader threads at once, so every use of the dict holds the lock;
    loading a definition does not (two threads may load the same one; the second is dropped).
    """

    def __init__(self, entries: int, text_bytes: int) -> None:
        self._entries = entries
        self._text_bytes = text_bytes
        self._lock = threading.Lock()
        self._indexes: OrderedDict[tuple[str, int], tuple[FlowIndex, int]] = OrderedDict()
        self._size = 0

    def index(self, tx: Transaction, row: ExecutionRow) -> FlowIndex | None:
        """The step lists of the version ``row`` runs; None when it is gone.

        Raises:
            DefinitionError: the stored definition cannot be loaded.
        """
        key = (row.flow_id, row.flow_version)
        with self._lock:
            cached = self._indexes.get(key)
            if cached is not None:
                self._indexes.move_to_end(key)
                return cached[0]
        text = tx.flow_definition(row.flow_name, row.flow_version)
        if text is None:
            return None
        flow = load_flow(text, f"{row.flow_name} v{row.flow_version}", limits=_STORED_LIMITS)
        index = FlowIndex.build(flow)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = (index, len(text))
                self._size += len(text)
            while len(self._indexes) > 1 and (
                len(self._indexes) > self._entries or self._size > self._text_bytes
            ):
                self._size -= self._indexes.popitem(last=False)[1][1]
        return index


_FLOWS = _FlowCache(_CACHE_ENTRIES, _CACHE_TEXT_BYTES)


class _Entry(NamedTuple):
    """One piece of open work, with the scope that holds it (its place in the listing)."""

    scope: int
    work: WaitingWork
    since: float | None


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _open_scopes(state: ExecutionState) -> dict[int, tuple[str, Scope]]:
    """Scope id -> (kind, scope) for every scope waiting on a task or a listed timer.

    A scope runs one step at a time, and that step waits on one thing: an open task attempt
    or a wait or retry timer, so the scope id names the piece of work.
    """
    found: dict[int, tuple[str, Scope]] = {}
    for task_id, scope_id in state.tasks.items():
        scope = state.scopes.get(scope_id)
        if scope is not None and scope.run is not None and scope.run.task == task_id:
            found[scope_id] = ("task", scope)
    for timer_id, entry in state.timers.items():
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] not in _LISTED_TIMERS:
            continue
        scope = state.scopes.get(entry[1])
        if scope is not None and scope.run is not None and scope.run.timer == timer_id:
            found[scope.id] = (str(entry[0]), scope)
    return found


def _event_time(tx: Transaction, row: ExecutionRow, event_id: int) -> float | None:
    """When an event of the execution's history happened (None when it is not there)."""
    events = tx.list_events(row.id, event_id - 1, 1)
    return events[0].time if events and events[0].event_id == event_id else None


def _entries(tx: Transaction, row: ExecutionRow) -> list[_Entry]:
    """The open work of one running execution, by scope id; [] when it cannot be read."""
    if row.status != "Running":
        return []
    try:
        state = load_state(row.state)
        if state.done:
            return []
        scopes = _open_scopes(state)
        if not scopes:
            return []
        index = _FLOWS.index(tx, row)
        if index is None:
            return []
        due = {t.timer_id: t.fire_at for t in tx.list_timers(row.id)}
        return [_entry(tx, row, index, due, sid, *scopes[sid]) for sid in sorted(scopes)]
    except Exception as exc:  # one unreadable execution must not fail a listing
        log.debug("cannot say what %s/%s waits on: %s", row.flow_name, row.name, exc)
        return []


def _entry(
    tx: Transaction,
    row: ExecutionRow,
    index: FlowIndex,
    due: dict[int, float],
    scope_id: int,
    kind: str,
    scope: Scope,
) -> _Entry:
    run = scope.run
    assert run is not None
    step = index.lists[scope.key][scope.pc]
    task = step if isinstance(step, TaskStep) else None
    resource = pattern = ""
    if task is not None:
        resource = str(task.resource_arn) if task.resource_arn is not None else task.action or ""
        pattern = task.pattern
    since: float | None = run.since or None
    timeout: int | None = None
    ends: float | None = None
    if kind == "task":
        attempt = run.attempt + 1
        if since is None:  # a state written before `since` was kept: the attempt's event
            since = _event_time(tx, row, run.task or 0)
        if run.timeout_timer is not None:
            ends = due.get(run.timeout_timer)
        if ends is not None and since is not None:
            timeout = round(ends - since)
        elif task is not None and run.timeout_timer is not None:
            timeout = task.timeout_seconds
    else:
        ends = due.get(run.timer) if run.timer is not None else None
        if kind == "wait":
            attempt = 0
            if since is None:  # the timer started as the step was entered
                since = _event_time(tx, row, run.entered)
        else:  # retry: the pause before the attempt that comes next
            attempt = run.attempt + 2
    work = WaitingWork(
        row.flow_name,
        row.name,
        step.name,
        kind,
        resource,
        pattern,
        attempt,
        _time(since),
        timeout,
        _time(ends),
    )
    return _Entry(scope_id, work, since)


def waiting_of(tx: Transaction, row: ExecutionRow) -> tuple[WaitingWork, ...]:
    """What one execution waits on now (nothing once it has ended, or when it is unreadable)."""
    return tuple(e.work for e in _entries(tx, row))


# -- paging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cursor:
    """Where a page ended: in ``flow``, at ``execution`` ("" for the flow's start).

    ``scope`` -1: that execution is done and the next page starts after it; otherwise the
    next page goes on inside it, with the work of scopes after ``scope``.
    """

    flow: str
    execution: str = ""
    scope: int = -1

    def encode(self) -> str:
        text = json.dumps([self.flow, self.execution, self.scope], separators=(",", ":"))
        return _TOKEN_PREFIX + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _bad_token(why: str) -> EngineError:
    return EngineError.of(
        "InvalidArgument", f"NextToken is not one ListWaitingWork gave ({why}); start without it"
    )


def _decode(token: str, flow_name: str | None) -> _Cursor | None:
    """The cursor a NextToken holds; None for ""."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(_TOKEN_PREFIX):
        raise _bad_token("wrong form")
    body = token[len(_TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        value = json.loads(raw.decode())
    except (binascii.Error, ValueError, RecursionError):
        raise _bad_token("not readable") from None
    if not (isinstance(value, list) and len(value) == 3):
        raise _bad_token("wrong form")
    flow, execution, scope = value
    if not isinstance(flow, str) or not _NAME.fullmatch(flow):
        raise _bad_token("wrong flow name")
    if not isinstance(execution, str) or (execution and not _NAME.fullmatch(execution)):
        raise _bad_token("wrong execution name")
    if isinstance(scope, bool) or not isinstance(scope, int) or not -1 <= scope < 1 << 53:
        raise _bad_token("wrong position")
    if flow_name is not None and flow != flow_name:
        raise _bad_token(f"it lists flow '{flow}', not '{flow_name[:128]}'")
    return _Cursor(flow, execution, scope)


class _Lister:
    """One page of ListWaitingWork, read in one read transaction."""

    def __init__(self, tx: Transaction, size: int, now: float, older_than: float | None) -> None:
        self.tx = tx
        self.size = size
        self.now = now
        self.older_than = older_than
        self.items: list[WaitingWork] = []
        self.scanned = 0

    def wanted(self, entry: _Entry) -> bool:
        if self.older_than is None:
            return True
        return entry.since is not None and self.now - entry.since >= self.older_than

    def take(self, row: ExecutionRow, after_scope: int) -> int | None:
        """Add the execution's work; the last scope taken when the page filled up inside it."""
        self.scanned += 1
        found = [e for e in _entries(self.tx, row) if e.scope > after_scope and self.wanted(e)]
        room = self.size - len(self.items)
        self.items.extend(e.work for e in found[:room])
        return found[room - 1].scope if len(found) > room else None

    def full(self) -> bool:
        return len(self.items) >= self.size or self.scanned >= SCAN_BUDGET

    def flow(self, flow: str, start: _Cursor | None) -> _Cursor | None:
        """List one flow's running executions from ``start``; where the page ended, if it did."""
        after = start.execution if start is not None else ""
        if start is not None and start.scope >= 0:
            row = self.tx.get_execution(flow, start.execution)
            if row is not None:
                stopped = self.take(row, start.scope)
                if stopped is not None:
                    return _Cursor(flow, row.name, stopped)
        while True:
            if self.full():
                return _Cursor(flow, after)
            want = min(_LIST_BATCH, SCAN_BUDGET - self.scanned)
            rows = self.tx.list_executions(flow, after=after, limit=want, status="Running")
            for row in rows:
                stopped = self.take(row, -1)
                if stopped is not None:
                    return _Cursor(flow, row.name, stopped)
                after = row.name
                if self.full():
                    return _Cursor(flow, after)
            if len(rows) < want:
                return None

    def flows(self, start: _Cursor | None) -> Iterator[str]:
        """Every flow name from ``start``'s on, in name order."""
        after = ""
        if start is not None:
            if self.tx.get_flow(start.flow) is not None:
                yield start.flow
            after = start.flow
        while True:
            rows = self.tx.list_flows(after, _LIST_BATCH)
            for row in rows:
                yield row.name
            if len(rows) < _LIST_BATCH:
                return
            after = rows[-1].name


class WaitingOperations:
    """ListWaitingWork, as an `Engine` method."""

    _runtime: Runtime

    async def list_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        limit: int | None = None,
        next_token: str = "",
    ) -> Page[WaitingWork]:
        """A page of what running executions wait on (ListWaitingWork, relayflow's own).

        Work comes by flow name, execution name, then in the order the execution opened it.

        Args:
            flow_name: only this flow's executions; None for every flow's.
            older_than: only work that has waited at least this many seconds (0 to 366 days).
            limit: the page's size, 1 to `MAX_WAITING_PAGE` (default `DEFAULT_WAITING_PAGE`).
            next_token: the previous page's `next_token`, to go on from there.

        A page reads at most `SCAN_BUDGET` flows and executions, so it may hold fewer items
        than ``limit``, even none, and still have a `next_token`: the listing ends when
        `next_token` is "".

        Raises:
            EngineError: `InvalidArgument` for a bad limit, age or token; `FlowNotExists`.
        """
        size = page_size(limit, DEFAULT_WAITING_PAGE, MAX_WAITING_PAGE, "Limit")
        if older_than is not None and (
            isinstance(older_than, bool)
            or not isinstance(older_than, int | float)
            or not 0 <= older_than <= MAX_OLDER_THAN_SECONDS
        ):
            raise EngineError.of(
                "InvalidArgument",
                f"OlderThanSeconds must be from 0 to {MAX_OLDER_THAN_SECONDS}, got {older_than!r}",
            )
        start = _decode(next_token, flow_name)
        clock = self._runtime.clock

        def page(tx: Transaction) -> Page[WaitingWork]:
            lister = _Lister(tx, size, clock(), older_than)
            if flow_name is not None:
                if tx.get_flow(flow_name) is None:
                    raise flow_not_exists(flow_name)
                names: Iterator[str] = iter([flow_name])
            else:
                names = lister.flows(start)
            for name in names:
                begin = start if start is not None and start.flow == name else None
                if begin is None:
                    if lister.full():
                        return Page(lister.items, _Cursor(name).encode())
                    lister.scanned += 1  # looking into a flow costs a read too
                stopped = lister.flow(name, begin)
                if stopped is not None:
                    return Page(lister.items, stopped.encode())
            return Page(lister.items, "")

        return await self._runtime.committer.read(page)
