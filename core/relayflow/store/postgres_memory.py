"""What the PostgreSQL writer remembers of the executions it wrote, to skip their locking read.

A batch starts by locking its executions and reading their rows, outbox rows and timers (one
round trip, `_PgTx.lock_executions`), then sends its writes with COMMIT (a second). When this
writer was the last to write an execution, it already knows all of that: the row as it
committed it, and the ids of the execution's outbox rows and timers. A task report then needs
only the second round trip, which is most of what a fast worker waits for on PostgreSQL.

Trust, but check. The remembered row carries the version it had when this writer committed
it: PostgreSQL's `xmin`, the id of the transaction that wrote that row version, which every
update by anyone changes. The batch's message begins with a guard that locks the rows
(`FOR UPDATE`, waiting for another replica's transaction as the locking read would) and fails in
the server, before any write and before COMMIT, unless every row still has the remembered
version (`postgres_sql.GUARD_ONE`, `GUARD_MANY`). Outbox rows and timers are checked as
before: a deletion of one that is gone fails its statement (`postgres_sql.checked`). A failed
guard is a `StoreConflict` with `retry_at_once`: the store forgets what it remembered of the
batch and the writer runs it again at once, with the locking read.

Where several replicas share the database, a report often reaches another replica than the
one that wrote the execution last: the guard then fails, which costs a round trip. So the memory
keeps count, and after `MISSES_TO_PAUSE` failures in the last `WINDOW` tries it is not used for
`PAUSE` transactions, after which it tries again.

Bounds: at most `CAPACITY` executions (the oldest forgotten first); an execution that has
ended, or whose row this writer did not write last, is not remembered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from relayflow.store.base import ExecutionRow

__all__ = ["CAPACITY", "MISSES_TO_PAUSE", "PAUSE", "WINDOW", "Remembered", "WriterMemory"]

#: Executions remembered at most.
CAPACITY = 20_000
#: How many of the latest tries the memory judges itself by.
WINDOW = 64
#: Failed guards among them after which the memory pauses.
MISSES_TO_PAUSE = 8
#: Transactions the memory then sits out.
PAUSE = 2_000
#: PostgreSQL's transaction ids (`xmin`) are the low 32 bits of `txid_current()`.
XID_MASK = 0xFFFF_FFFF


class Remembered(NamedTuple):
    """An execution as this writer committed it."""

    row: ExecutionRow
    #: The `xmin` of the row version this writer committed.
    version: int
    #: Ids of its outbox rows.
    outbox: tuple[int, ...]
    #: Its timers, as (execution id, timer id).
    timers: tuple[tuple[int, int], ...]


class WriterMemory:
    """The executions one writer committed last, by (flow, name); used by one thread."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._entries: dict[tuple[str, str], Remembered] = {}
        self._tries: deque[bool] = deque(maxlen=WINDOW)  # True: the guard held
        self._paused = 0
        #: Counts, for tests and the curious: guards that held and that failed.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def recall(self, keys: Sequence[tuple[str, str]]) -> list[Remembered] | None:
        """What is remembered of every one of ``keys``; None unless all are (or while paused)."""
        if self._paused > 0:
            self._paused -= 1
            return None
        entries = self._entries
        found = [entries.get(key) for key in keys]
        if any(entry is None for entry in found):
            return None
        return found  # type: ignore[return-value]

    def judged(self, held: bool) -> None:
        """Note whether a transaction's guard held; pause after too many failures."""
        self._tries.append(held)
        if held:
            self.hits += 1
            return
        self.misses += 1
        if self._tries.count(False) >= MISSES_TO_PAUSE:
            self._paused = PAUSE
            self._tries.clear()

    def remember(self, entries: Iterable[Remembered]) -> None:
        """Keep these (the rows a transaction wrote, as it committed them)."""
        kept = self._entries
        for entry in entries:
            key = (entry.row.flow_name, entry.row.name)
            kept.pop(key, None)  # moved to the end: the oldest go first
            if entry.row.status == "Running":
                kept[key] = entry
        while len(kept) > self._capacity:
            del kept[next(iter(kept))]

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget these executions (a transaction on them failed, or they changed elsewhere)."""
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (the writer's connection was replaced, say)."""
        self._entries.clear()
