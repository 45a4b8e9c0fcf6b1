"""The writer's frequent writes, gathered per table and sent as one statement each.

A batch of a few hundred task reports writes, for each, a few history events, its execution's
new state, a new outbox row and the deletion of the old one: about nine statements a step
transition. PostgreSQL spends more on each statement (parsing the EXECUTE, starting the
executor, a snapshot) than on the row it writes, so the writer gathers these rows in a `Bulk`
and sends one statement per table and kind, the rows as arrays (`unnest`), prepared once per
connection like the other frequent statements (`postgres_sql.NAMED`). Measured with 2,000
history events in one transaction: 15-20 us of server CPU an event one statement each, 5-10 us
through one array statement. A lone row is the exception: one execution's update, outbox row
or timer, or one deletion (what a single task report writes) goes as the same statement with
scalar parameters, which the server runs faster than an unnest of one row; replaying a
report's message, these forms took 0.25 ms off about 1.1 ms.

Order. A `Bulk` stands for a run of held-back writes with nothing else between them (the
buffer starts a new one after any other statement, a savepoint included), and sends its
statements in a fixed order: executions' updates, events, new outbox rows, new timers, then
deletions of outbox rows and timers. That order gives the same result as the calls' own
because, within one run:

- an execution's updates overwrite each other: the last one is kept;
- events are only inserted;
- an outbox row is deleted only after it was inserted (ids are new);
- a timer may be deleted and added again under its key: `conflicts` says so, and the buffer
  then starts a new `Bulk` for the new timer.

A deletion must remove exactly the rows it names (the transaction answered from memory that
they were there), and an insertion of new executions must insert every one (the batch found
none of those names): such a statement carries that count and fails in the server when it is
wrong (`postgres_sql.checked`), so that the message fails before its COMMIT.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relayflow.store.postgres_sql import (
    DEFAULT_PLANS,
    DELETE_OUTBOX_CHECKED,
    DELETE_OUTBOXES_CHECKED,
    DELETE_TIMER_CHECKED,
    DELETE_TIMERS_CHECKED,
    GENERIC_PLANS,
    INSERT_EVENTS,
    INSERT_EXECUTIONS_CHECKED,
    INSERT_OUTBOX,
    INSERT_OUTBOXES,
    INSERT_TIMER,
    INSERT_TIMERS,
    NAMED,
    UPDATE_EXECUTION,
    UPDATE_EXECUTIONS,
    Array,
)

__all__ = ["Bulk", "Render"]

#: Renders a statement and its arguments as SQL text.
Render = Callable[[str, Sequence[Any]], str]


@functools.cache
def _kinds(sql: str) -> tuple[tuple[str, ...], bool]:
    """The element type of each array parameter of ``sql`` (`NAMED`), and whether it is checked.

    A checked statement ends with the count of rows it must touch.
    """
    types = NAMED[sql][1].split(", ")
    arrays = tuple(kind.removesuffix("[]") for kind in types if kind.endswith("[]"))
    return arrays, len(arrays) != len(types)


def _one_or_many(render: Render, one: str, many: str, rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` (at least one) as the scalar statement ``one``, or the array statement ``many``.

    A single row goes as ``one`` (with its count, 1, when checked), several as ``many``.
    """
    if len(rows) == 1:
        return render(one, (*rows[0], 1) if _kinds(many)[1] else rows[0])
    return render(many, _columns(many, rows))


def _columns(sql: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Rows as the typed array arguments of ``sql``, one a column.

    Then, for a checked statement, how many rows it must touch.
    """
    kinds, counted = _kinds(sql)
    # zip(*rows) turns rows into columns in C; rows are never empty here.
    columns = zip(*rows, strict=True)
    arrays: list[Any] = [Array(column, kind) for column, kind in zip(columns, kinds, strict=True)]
    return [*arrays, len(rows)] if counted else arrays


@dataclass
class Bulk:
    """Held-back rows of the writer's frequent writes, one statement per table when sent."""

    #: New executions: (id, uid, flow_name, ..., published_version), each to insert.
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    #: Execution id -> (status, state, output, error, cause, stopped): the last update.
    updates: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    #: (execution_id, event_id, schedule_event_id, type, step_name, time, detail).
    events: list[tuple[Any, ...]] = field(default_factory=list)
    #: (id, execution_id, payload, lease_owner, lease seconds).
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    #: (execution_id, timer_id) -> (execution_id, timer_id, fire_at, kind): the last one added.
    timers: dict[tuple[int, int], tuple[Any, ...]] = field(default_factory=dict)
    outbox_deleted: list[int] = field(default_factory=list)
    timers_deleted: dict[tuple[int, int], None] = field(default_factory=dict)

    def conflicts(self, timer: tuple[int, int]) -> bool:
        """Whether adding ``timer`` here would put it before its own deletion."""
        return timer in self.timers_deleted

    def absorb(self, later: Bulk) -> bool:
        """Take the rows of ``later`` (written after these), if the order allows; whether it did."""
        if any(key in self.timers_deleted for key in later.timers):
            return False
        self.executions += later.executions
        self.updates.update(later.updates)
        self.events += later.events
        self.outbox += later.outbox
        self.timers.update(later.timers)
        self.outbox_deleted += later.outbox_deleted
        self.timers_deleted.update(later.timers_deleted)
        return True

    def statements(self, render: Render) -> list[str]:
        """The SQL to send.

        A deletion or insertion that touches another number of rows than the calls counted
        on fails in the server (`postgres_sql.MISSED_STATE`).
        """
        out: list[str] = []
        if self.executions:
            sql = INSERT_EXECUTIONS_CHECKED
            out.append(render(sql, _columns(sql, self.executions)))
        # One row goes as a statement of scalars (the commonest case: a task's report writes
        # one execution, outbox row and timer), which costs the server less than unnest.
        if len(self.updates) == 1:
            ((key, values),) = self.updates.items()
            out.append(render(UPDATE_EXECUTION, (*values, key)))
        elif self.updates:
            rows = [(key, *values) for key, values in self.updates.items()]
            out.append(render(UPDATE_EXECUTIONS, _columns(UPDATE_EXECUTIONS, rows)))
        if self.events:
            out.append(render(INSERT_EVENTS, _columns(INSERT_EVENTS, self.events)))
        if self.outbox:
            out.append(_one_or_many(render, INSERT_OUTBOX, INSERT_OUTBOXES, self.outbox))
        if self.timers:
            timers = list(self.timers.values())
            out.append(_one_or_many(render, INSERT_TIMER, INSERT_TIMERS, timers))
        # A single row's deletion goes alone; several rows' need GENERIC_PLANS around them.
        deletions: list[str] = []
        for one, many, rows in (
            (
                DELETE_OUTBOX_CHECKED,
                DELETE_OUTBOXES_CHECKED,
                [(i,) for i in dict.fromkeys(self.outbox_deleted)],
            ),
            (DELETE_TIMER_CHECKED, DELETE_TIMERS_CHECKED, list(self.timers_deleted)),
        ):
            if rows:
                (out if len(rows) == 1 else deletions).append(_one_or_many(render, one, many, rows))
        if deletions:
            out += [GENERIC_PLANS, *deletions, DEFAULT_PLANS]
        return out
