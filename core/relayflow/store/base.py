"""The store driver interface: what the engine keeps, and the transactions it keeps it in.

A driver is picked by the scheme of a URL (`sqlite:///path/relayflow.db`, `memory://`). All
engine state lives in the store; an engine process holds nothing that a restart would lose.
Every change happens inside `Store.transaction()`, and one command on one execution is one
transaction: its history events, its state (open task attempts included), its timers and its
outbox rows
commit together or not at all.

Work that is handed out (outbox rows to dispatch, timers to fire) is claimed with a lease: an
owner and a time until which nobody else may take it. A crashed owner's leases simply expire.
A driver that serves a single engine process (SQLite) lets that process take over all leases
when it starts.

A driver for several engine processes (replicas) on one database (PostgreSQL) must also:

- lock what a command reads with ``lock=True`` (`get_execution`, `get_flow`) and by
  `lock_execution` until the transaction ends, so that two replicas never apply two commands to
  one execution at once;
- settle first-writer races in the database: `insert_execution` answers None when the name is
  taken, `create_flow` False when the flow exists, `create_object` False when the object
  does, `set_meta_if_absent` the value that won, `use_nonce` False for a nonce seen before;
- hand a due flow object to one replica at a time (`claim_due_objects`), and write one back
  with ``owner`` only while that owner's claim stands (`put_object`);
- measure leases on one clock for every replica (the database's): a claim's ``lease_until`` is
  read as a duration, ``lease_until - now``, from the driver's own clock;
- raise `StoreConflict` for a transaction the database aborted to break a deadlock or a
  serialization failure (the engine runs it again), and `StoreError` for anything else;
- send `Transaction.notify` messages when the transaction commits, to every `Store.listen`
  callback on every replica, if it can (``notifies``); the engine polls where it cannot.

The conformance suite in `tests/store/` runs every operation against each driver; a new
driver should only have to pass it.

Writing a driver: implement `Store` and `Transaction` for your database, keep every SQL dialect
detail inside the driver, and register the class under its URL scheme (see
`relayflow.store.register_driver`). The records a transaction reads and writes are in
`relayflow.store.records` (re-exported here).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from relayflow.errors import RelayflowError
from relayflow.store.records import (
    ExecutionRow,
    FlowObjectRow,
    FlowRow,
    HistoryEvent,
    OutboxRow,
    TimerRow,
)

__all__ = [
    "ExecutionRow",
    "FlowObjectRow",
    "FlowRow",
    "HistoryEvent",
    "Listener",
    "OutboxRow",
    "Store",
    "StoreConflict",
    "StoreError",
    "TimerRow",
    "Transaction",
]


#: The metadata key of the store's HMAC secret for task tokens (copied with the store).
TOKEN_SECRET = "token_secret"


class StoreError(RelayflowError, RuntimeError):
    """The store cannot be opened or used; the message says why in one sentence."""


class StoreConflict(StoreError):
    """The database aborted a transaction to resolve a conflict with another; run it again.

    Raised for deadlocks, serialization failures, lock timeouts and a connection lost before
    COMMIT was sent: in each case nothing of the transaction was written.
    """

    #: Whether running the transaction again at once is right: nothing raced it, only what the
    #: store remembered was out of date (and is forgotten now). Otherwise wait a little first.
    retry_at_once = False


class Listener(Protocol):
    """A subscription made by `Store.listen`; closing it ends the subscription."""

    async def close(self) -> None:
        """Stop listening and release the connection."""


class Transaction(ABC):
    """Reads and writes inside one transaction."""

    @abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested scope: an exception inside it undoes only what it wrote, then propagates."""

    # -- metadata -----------------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A value of the store's own metadata (its token secret, say)."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""

    @abstractmethod
    def set_meta_if_absent(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it has a value already; return the value it has now.

        Two replicas starting together on an empty store agree on one token secret this way.
        """

    @abstractmethod
    def use_nonce(self, key: str, now: float, window: float) -> bool:
        """Record a request nonce; False when it was recorded in the last ``window`` seconds.

        Nonces older than ``window`` may be forgotten (the request's own timestamp check
        refuses their replays), so the table stays small.
        """

    # -- flows --------------------------------------------------------------------------------
    @abstractmethod
    def get_flow(self, name: str, *, lock: bool = False) -> FlowRow | None:
        """The flow named ``name``; with ``lock``, locked for update until the transaction ends."""

    @abstractmethod
    def create_flow(self, row: FlowRow) -> bool:
        """Add a flow and its first version; False (and nothing written) if the name is taken."""

    @abstractmethod
    def put_flow(self, row: FlowRow) -> None:
        """Create or replace a flow, and keep its definition under its version."""

    @abstractmethod
    def flow_versions(self, name: str) -> list[tuple[int, str]]:
        """Every kept version of a flow's definition, ``(version, definition)`` ascending."""

    @abstractmethod
    def flow_definition(self, name: str, version: int) -> str | None:
        """The definition a flow had at ``version`` (executions keep the one they started with)."""

    @abstractmethod
    def list_flows(self, after: str, limit: int) -> list[FlowRow]:
        """Flows ordered by name, after ``after``."""

    @abstractmethod
    def delete_flow(self, name: str) -> bool:
        """Delete a flow, its versions and its executions; whether it existed."""

    # -- executions ---------------------------------------------------------------------------
    @abstractmethod
    def insert_execution(self, row: ExecutionRow) -> int | None:
        """Add an execution (its `id` is ignored); return the id it got.

        None, with nothing written, when the flow already has an execution of that name.
        """

    @abstractmethod
    def get_execution(
        self, flow_name: str, name: str, *, lock: bool = False
    ) -> ExecutionRow | None:
        """An execution by its flow and name; with ``lock``, locked like `lock_execution`."""

    @abstractmethod
    def lock_execution(self, execution_id: int) -> ExecutionRow | None:
        """An execution by id, locked for update until the transaction ends."""

    def lock_executions(self, keys: Sequence[tuple[str, str]]) -> None:  # noqa: B027 - a hint
        """Lock these executions, ``(flow_name, name)`` in the order given, ahead of their jobs.

        A hint the engine gives at the start of a batch, in its lock order, so that a driver
        for several engines can take every lock in one round trip. Drivers may ignore it.
        """

    @abstractmethod
    def update_execution(
        self,
        execution_id: int,
        *,
        status: str,
        state: str,
        output: str | None,
        error: str,
        cause: str,
        stopped: float | None,
    ) -> None:
        """Store an execution's new status and state."""

    @abstractmethod
    def list_executions(
        self,
        flow_name: str,
        *,
        after: str,
        limit: int,
        status: str | None = None,
        name_prefix: str | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
    ) -> list[ExecutionRow]:
        """A page of a flow's executions ordered by name, after ``after``."""

    @abstractmethod
    def count_executions(self, status: str | None = None) -> int:
        """How many executions there are (with that status)."""

    # -- history ------------------------------------------------------------------------------
    @abstractmethod
    def append_events(self, execution_id: int, events: Sequence[HistoryEvent]) -> None:
        """Append history events."""

    @abstractmethod
    def list_events(self, execution_id: int, after: int, limit: int) -> list[HistoryEvent]:
        """A page of history, EventId ascending, after EventId ``after``.

        An event whose stored detail cannot be parsed comes back with the detail
        `{"unreadable": "<reason>"}` rather than failing the whole page.
        """

    @abstractmethod
    def last_event_id(self, execution_id: int) -> int:
        """The highest EventId of an execution's history (0 when it has none)."""

    # -- quarantine ---------------------------------------------------------------------------
    @abstractmethod
    def quarantine(self, kind: str, execution_id: int, data: str, reason: str) -> None:
        """Keep ``data`` that the engine could not read (``kind``: state, outbox), for people."""

    @abstractmethod
    def drop_work(self, execution_id: int) -> None:
        """Delete an execution's timers and outbox rows (it is being failed as unreadable)."""

    # -- timers -------------------------------------------------------------------------------
    @abstractmethod
    def add_timer(self, row: TimerRow) -> None:
        """Add a timer."""

    @abstractmethod
    def delete_timer(self, execution_id: int, timer_id: int, owner: str | None = None) -> bool:
        """Remove a timer; whether it was there (a fired timer is applied only once).

        With ``owner``, only while that owner holds its lease: a replica whose lease was taken
        over finds nothing to fire.
        """

    @abstractmethod
    def claim_due_timers(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[TimerRow]:
        """Lease timers due by ``now`` that nobody holds (other replicas skip them)."""

    @abstractmethod
    def list_timers(self, execution_id: int) -> list[TimerRow]:
        """An execution's timers, by timer id (for copying a store)."""

    @abstractmethod
    def next_timer_at(self) -> float | None:
        """When the earliest timer is due."""

    # -- outbox -------------------------------------------------------------------------------
    @abstractmethod
    def add_outbox(
        self,
        execution_id: int,
        payload: dict[str, Any],
        owner: str,
        lease_until: float,
        now: float | None = None,
    ) -> int:
        """Add an effect to carry out, leased to its creator; return its id.

        ``now`` is the caller's clock when it computed ``lease_until`` (None: `time.time()`),
        for drivers that keep leases on their own clock.
        """

    @abstractmethod
    def delete_outbox(self, outbox_id: int) -> bool:
        """Remove a carried-out effect; whether it was there (its result is applied once)."""

    @abstractmethod
    def claim_outbox(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        """Lease effects nobody holds, oldest first (other replicas skip them)."""

    @abstractmethod
    def renew_outbox(self, ids: Sequence[int], owner: str, now: float, lease_until: float) -> None:
        """Extend the leases ``owner`` still holds on effects still being carried out."""

    @abstractmethod
    def list_outbox(self, execution_id: int) -> list[OutboxRow]:
        """An execution's outbox rows, by id (for copying a store)."""

    @abstractmethod
    def release_leases(self, owner: str | None = None) -> None:
        """Drop the leases ``owner`` holds, so others take its work at once; None: every lease.

        A single-engine store drops every lease when its engine starts; a replica told to stop
        hands back its own.
        """

    # -- a flow's objects: schedules, aliases, published versions ------------------------------
    @abstractmethod
    def get_object(
        self, flow_name: str, kind: str, name: str, *, lock: bool = False
    ) -> FlowObjectRow | None:
        """One object of a flow; with ``lock``, locked for update until the transaction ends."""

    @abstractmethod
    def create_object(self, row: FlowObjectRow) -> bool:
        """Add an object; False (and nothing written) if the flow has one of that kind and name."""

    @abstractmethod
    def put_object(self, row: FlowObjectRow, *, owner: str | None = None) -> bool:
        """Create or replace an object (data, modified, due_at) and drop its claim.

        A replaced object keeps its `created`; the row's counts only for a new one. Always
        True without ``owner``.

        With ``owner``, only while ``owner`` still holds the object's claim (taken by
        `claim_due_objects`); False, with nothing written, when it does not, or when the
        object is gone.
        """

    def put_objects(self, rows: Sequence[FlowObjectRow], *, owner: str) -> list[bool]:
        """`put_object` with ``owner`` for each of ``rows``; whether each was written, in order.

        For a batch of claimed objects written back at once (a driver for several engines
        does it in one statement instead of a round trip each).
        """
        return [self.put_object(row, owner=owner) for row in rows]

    @abstractmethod
    def delete_object(self, flow_name: str, kind: str, name: str) -> bool:
        """Delete one object; whether it existed."""

    @abstractmethod
    def list_objects(
        self, flow_name: str, kind: str, after: str = "", limit: int = 100
    ) -> list[FlowObjectRow]:
        """A flow's objects of one kind ordered by name, those after ``after``."""

    @abstractmethod
    def object_kinds(self, flow_name: str) -> list[str]:
        """The kinds of object a flow has, ascending (for copying a store)."""

    @abstractmethod
    def claim_due_objects(
        self, kind: str, now: float, owner: str, lease_until: float, limit: int
    ) -> list[FlowObjectRow]:
        """Claim objects of ``kind`` (any flow) that are due at ``now``, earliest first.

        Due: `due_at` at or before ``now``, and no one else holds the object (no claim, or one
        that expired). They are ``owner``'s until ``lease_until`` or until `put_object`;
        `release_leases` drops these claims too.
        """

    @abstractmethod
    def next_object_due(self, kind: str) -> float | None:
        """The earliest `due_at` of any object of ``kind``, claimed or not; None if none has one."""

    # -- operations: families, filters, retention (issue 15) -----------------------------------
    @abstractmethod
    def link_child(self, parent_id: int, child_id: int) -> None:
        """Record that execution ``child_id`` was started by a task of ``parent_id``."""

    @abstractmethod
    def parent_of(self, child_id: int) -> ExecutionRow | None:
        """The execution that started ``child_id``; None for none or a purged one."""

    @abstractmethod
    def children_of(
        self, parent_id: int, after_id: int = 0, limit: int = 100
    ) -> list[ExecutionRow]:
        """The executions ``parent_id`` started with an id above ``after_id``, by id."""

    @abstractmethod
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
        """How many of a flow's executions `list_executions` with these filters would list.

        With ``at_most``, counting stops past it: ``at_most + 1`` then means "more than
        ``at_most``". A count costs about one index entry a match, so this bounds what a
        count of a status with a million executions costs (see docs/benchmarks.md).
        """

    @abstractmethod
    def count_ended(self, ended_before: float, flow_name: str | None = None) -> int:
        """How many executions (of ``flow_name``, or any flow) ended before ``ended_before``."""

    @abstractmethod
    def purge_ended(self, ended_before: float, flow_name: str | None, limit: int) -> int:
        """Delete up to ``limit`` executions that ended before ``ended_before``; how many went.

        Each goes with its history, timers, outbox rows, quarantined data and family links,
        oldest end first. A driver for several engines skips rows another transaction holds
        (a redrive racing the purge keeps its execution).
        """

    @abstractmethod
    def try_lock(self, name: str) -> bool:
        """Take the store-wide lock ``name`` until this transaction ends; False if another has it.

        So that one replica at a time does a job (retention, say). A single-engine store
        always answers True.
        """

    @abstractmethod
    def set_execution_version(
        self, execution_id: int, flow_version: int, published_version: int
    ) -> None:
        """Move an execution to another definition of its flow (a redrive onto the current one)."""

    # -- notifications ------------------------------------------------------------------------
    def notify(self, channel: str, payload: str) -> None:  # noqa: B027 - optional for drivers
        """Send ``payload`` to `Store.listen` callbacks on ``channel`` when the transaction commits.

        Drivers that cannot notify (``Store.notifies`` False) ignore it.
        """


class Store(ABC):
    """A store: opens transactions. One per engine process."""

    #: Whether one engine process owns the store (and may drop stale leases at start).
    single_engine: bool = True
    #: Whether `Transaction.notify` reaches `listen` callbacks (in every process).
    notifies: bool = False
    #: How long a claimed outbox row or timer stays with its engine by default, in seconds.
    default_lease_seconds: float = 30.0

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A read-write transaction; it commits when the block ends without an exception."""

    @abstractmethod
    def reader(self) -> AbstractContextManager[Transaction]:
        """A read-only view for describe and list calls (writes raise)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections and locks."""

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> Listener | None:
        """Call ``callback`` with each payload notified on ``channel``; None if not supported.

        ``callback`` runs on the event loop. It gets None after a lost connection was made
        again: notifications may have been missed, so anything may have changed.
        """
        return None

    def acquire_engine_lock(self) -> None:  # noqa: B027 - optional for drivers
        """Make sure no other engine process runs on a single-engine store.

        Raises:
            StoreError: another engine holds the store.
        """
