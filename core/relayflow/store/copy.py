"""Copying a whole store to another, of any driver: what `relayflow store copy` does.

Everything an engine needs to carry on goes across: flows with every kept version and their
objects (schedules, aliases, published versions), executions (running ones included) with their
histories, timers and outbox rows, and the task-token secret,
so that tokens handed out before the copy stay valid after it. Only the `Store` and
`Transaction` interface is used, so any pair of drivers works.

- Execution ids are the destination's own: each execution is inserted, and its history, timers
  and outbox rows follow it under the id it got. Names, uids and states are kept as they were,
  and tokens name executions by flow, name and uid, never by id.
- Family links (which execution a task started) follow both ends to their new ids: each copied
  execution notes its parent by flow and name, and the links are made once every execution is in.
- Outbox rows arrive unleased, so the first engine on the destination dispatches them at once;
  flow objects arrive unclaimed, with the times they are due.
- The destination must be empty (no flows, no executions) and is written in ONE transaction: an
  error or an interruption part way leaves it as empty as it was, never half-copied.
- The source is read in one read transaction, a consistent view of it.
- Nothing may run on either store meanwhile. A single-engine store (SQLite) is locked with
  `Store.acquire_engine_lock`, so a running server makes the copy refuse; for a shared database
  (PostgreSQL) the servers must be stopped by hand first.

Not copied: request nonces (they expire within minutes), the schema version (each store keeps
its own) and quarantined rows, which the interface does not list (they stay in the source for
people to read).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from relayflow.store.base import (
    TOKEN_SECRET,
    ExecutionRow,
    FlowObjectRow,
    FlowRow,
    Store,
    StoreError,
    TimerRow,
    Transaction,
)

__all__ = [
    "TOKEN_SECRET",
    "CopyCounts",
    "DestinationNotEmpty",
    "Progress",
    "copy_store",
    "copy_urls",
]

#: Told ``(executions copied, executions in all)`` after each execution.
Progress = Callable[[int, int], None]

_PAGE = 500
_Row = TypeVar("_Row")


class DestinationNotEmpty(StoreError):
    """The destination of a copy already has flows or executions."""


@dataclass
class CopyCounts:
    """What a copy carried across."""

    flows: int = 0
    flow_versions: int = 0
    executions: int = 0
    running: int = 0
    events: int = 0
    timers: int = 0
    outbox: int = 0
    #: A flow's schedules, aliases and published versions (`FlowObjectRow`s).
    objects: int = 0
    #: Outbox rows whose payload could not be read: quarantined in the destination instead.
    quarantined: int = 0
    #: Links from a child execution to its parent (`Transaction.link_child`).
    links: int = 0
    #: Whether the source had a task-token secret (and the destination now has it).
    token_secret: bool = False

    def summary(self) -> str:
        """One line for a person: ``copied N flows, M executions (K running), ...``."""
        line = (
            f"copied {self.flows} flows, {self.executions} executions ({self.running} running), "
            f"{self.events} events, {self.timers} timers, {self.outbox} outbox rows"
        )
        if self.objects:
            line += f", {self.objects} flow objects"
        if self.links:
            line += f", {self.links} parent links"
        if self.quarantined:
            line += f" ({self.quarantined} unreadable, set aside)"
        return line

    def as_dict(self) -> dict[str, int | bool]:
        """The counts by name, for `--json`."""
        return dataclasses.asdict(self)


def copy_urls(
    source_url: str, destination_url: str, progress: Progress | None = None
) -> CopyCounts:
    """Open both stores, lock them against engines, copy, and close them.

    Opening a store written by an older relayflow upgrades it first, as a server would; a
    destination that does not exist yet (a SQLite file) is made.

    Raises:
        DestinationNotEmpty: the destination has flows or executions.
        StoreError: a store cannot be opened or locked, both URLs name one store, or the copy
            failed (the destination is then left empty).
    """
    from relayflow.store import open_store

    if source_url == destination_url:
        raise StoreError("the source and the destination are the same store: name two stores")
    source = open_store(source_url)
    try:
        destination = open_store(destination_url)
        try:
            paths = [getattr(store, "path", None) for store in (source, destination)]
            files = {path.resolve() for path in paths if path is not None}
            if len(files) == 1 and None not in paths:
                raise StoreError(
                    f"the source and the destination are the same store {files.pop()}: "
                    "name two stores"
                )
            source.acquire_engine_lock()
            destination.acquire_engine_lock()
            return copy_store(source, destination, progress)
        finally:
            destination.close()
    finally:
        source.close()


def copy_store(source: Store, destination: Store, progress: Progress | None = None) -> CopyCounts:
    """Copy everything in ``source`` into the empty ``destination``, in one transaction.

    The caller opens both stores, locks them against engines and closes them.

    Args:
        source: the store to read.
        destination: the store to write; it must have no flows and no executions.
        progress: told how many executions are done after each one (it may raise to stop the
            copy; the destination is then left empty).

    Returns:
        What was copied.

    Raises:
        DestinationNotEmpty: the destination has flows or executions.
        StoreError: either store failed; nothing was written to the destination.
    """
    counts = CopyCounts()
    with source.reader() as src, destination.transaction() as dst:
        if dst.list_flows("", 1) or dst.count_executions():
            raise DestinationNotEmpty(
                "the destination store already has flows or executions: copy into a new, "
                "empty store (a new SQLite file, or an empty PostgreSQL database)"
            )
        total = src.count_executions()
        secret = src.get_meta(TOKEN_SECRET)
        if secret is not None:
            dst.set_meta(TOKEN_SECRET, secret)
            counts.token_secret = True
        # (parent's flow, parent's name, child's new id): a parent may come after its child.
        links: list[tuple[str, str, int]] = []
        for flow in _pages(lambda after: src.list_flows(after, _PAGE), lambda f: f.name):
            _copy_flow(src, dst, flow, counts)
            executions = _pages(
                functools.partial(_executions_after, src, flow.name), lambda e: e.name
            )
            for execution in executions:
                new_id = _copy_execution(src, dst, execution, counts)
                parent = src.parent_of(execution.id)
                if parent is not None:
                    links.append((parent.flow_name, parent.name, new_id))
                if progress is not None:
                    progress(counts.executions, total)
        _copy_links(dst, links, counts)
    return counts


def _copy_links(dst: Transaction, links: list[tuple[str, str, int]], counts: CopyCounts) -> None:
    """Link each copied child to its copied parent, found by name under its new id."""
    for parent_flow, parent_name, child_id in links:
        parent = dst.get_execution(parent_flow, parent_name)
        if parent is not None:  # it was copied: every execution of every flow is
            dst.link_child(parent.id, child_id)
            counts.links += 1


def _pages(page: Callable[[str], list[_Row]], key: Callable[[_Row], str]) -> Iterator[_Row]:
    """Every row of a listing paged by name, one page in memory at a time."""
    after = ""
    while True:
        rows = page(after)
        yield from rows
        if len(rows) < _PAGE:
            return
        after = key(rows[-1])


def _executions_after(src: Transaction, flow_name: str, after: str) -> list[ExecutionRow]:
    return src.list_executions(flow_name, after=after, limit=_PAGE)


def _copy_flow(src: Transaction, dst: Transaction, flow: FlowRow, counts: CopyCounts) -> None:
    """A flow: its older versions first, then the current one (which `put_flow` keeps too)."""
    for version, definition in src.flow_versions(flow.name):
        if version != flow.version:
            dst.put_flow(dataclasses.replace(flow, version=version, definition=definition))
        counts.flow_versions += 1
    dst.put_flow(flow)
    counts.flows += 1
    for kind in src.object_kinds(flow.name):
        for row in _pages(functools.partial(_objects_after, src, flow.name, kind), _name_of):
            dst.put_object(row)  # unclaimed: the destination's engines take it when it is due
            counts.objects += 1


def _objects_after(src: Transaction, flow_name: str, kind: str, after: str) -> list[FlowObjectRow]:
    return src.list_objects(flow_name, kind, after, _PAGE)


def _name_of(row: FlowObjectRow) -> str:
    return row.name


def _copy_execution(
    src: Transaction, dst: Transaction, row: ExecutionRow, counts: CopyCounts
) -> int:
    """An execution under a new id, with its history, timers and outbox rows: the new id."""
    new_id = dst.insert_execution(row)
    if new_id is None:  # the destination was empty: only a driver fault gets here
        raise StoreError(
            f"the destination refused execution '{row.name}' of flow '{row.flow_name}' as a "
            "duplicate; nothing was copied"
        )
    counts.executions += 1
    counts.running += row.status == "Running"
    after = 0
    while True:
        events = src.list_events(row.id, after, _PAGE)
        if events:
            dst.append_events(new_id, events)
            counts.events += len(events)
            after = events[-1].event_id
        if len(events) < _PAGE:
            break
    for timer in src.list_timers(row.id):
        dst.add_timer(TimerRow(new_id, timer.timer_id, timer.fire_at, timer.kind))
        counts.timers += 1
    for effect in src.list_outbox(row.id):
        if effect.unreadable:
            # The engine would set it aside when it met it; do so now, keeping its text.
            dst.quarantine("outbox", new_id, effect.raw, effect.unreadable)
            counts.quarantined += 1
        else:
            # Unleased (no owner, a lease long over): the next engine dispatches it at once.
            dst.add_outbox(new_id, effect.payload, "", 0.0)
            counts.outbox += 1
    return new_id
