"""Embedded kombu transport on SQLite with MNS-style queue semantics.

This is relayflow's default queue transport when no broker is configured.
Messages live in one SQLite file (WAL mode), which several processes may
share.  Unlike kombu's SQLAlchemy and filesystem transports, a received
message stays in the database until it is acknowledged, so a consumer that
dies between receive and ack loses nothing.

Conventions, in one place:

* **URL**: ``relayflow-sqlite:///<path>``, read like SQLAlchemy's SQLite
  URLs: three slashes and a relative path (``relayflow-sqlite:///q.db`` is
  ``q.db`` in the working directory), four for an absolute one
  (``relayflow-sqlite:////var/lib/q.db``).  A query string sets transport
  options (``?visibility_timeout=60&polling_interval=0.02``).  The alias
  is added to :data:`kombu.transport.TRANSPORT_ALIASES` on import.
* **Visibility timeout**: queue argument ``x-visibility-timeout`` (stored
  with the queue, like an MNS queue attribute), else the transport option
  ``visibility_timeout`` (default 30 s).
* **Delay**: publish header ``x-delay-seconds`` (seconds, may be a
  fraction), e.g. ``producer.publish(body, headers={"x-delay-seconds": 5})``.
  A queue argument of the same name is the queue's default delay.
* **Priority**: kombu's ``priority`` (0-255, higher is delivered first) is
  stored as given.  MNS priority ``p`` (1-16, lower is more urgent) maps to
  ``17 - p`` via :func:`mns_priority_to_kombu`; a message published without
  a priority gets MNS priority 8, i.e. kombu priority 9.  Equal priorities
  are delivered in publish order.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from queue import Empty
from typing import Any
from urllib.parse import parse_qsl, unquote

from kombu.log import get_logger
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.utils import json as kombu_json

from relayflow_mns import doorbell

logger = get_logger(__name__)
# kombu's JSON codec (keeps datetimes, UUIDs, ...), typed for this module.
_dumps: Callable[[Any], str] = kombu_json.dumps
_loads: Callable[[str], Any] = kombu_json.loads

#: URL scheme (and kombu transport alias) of this transport.
SCHEME = "relayflow-sqlite"
#: Message header (and queue argument) holding the delay in seconds.
DELAY_HEADER = "x-delay-seconds"
#: Queue argument holding the queue's visibility timeout in seconds.
VISIBILITY_ARGUMENT = "x-visibility-timeout"

MNS_MIN_PRIORITY = 1
MNS_MAX_PRIORITY = 16
MNS_DEFAULT_PRIORITY = 8
DEFAULT_VISIBILITY_TIMEOUT = 30.0
DEFAULT_POLLING_INTERVAL = 0.01
DEFAULT_BUSY_TIMEOUT = 30.0
_NUMERIC_OPTIONS = (
    "visibility_timeout",
    "polling_interval",
    "busy_timeout",
    "busy_polling_interval",
    "busy_seconds",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rfmq_queues (
    name TEXT PRIMARY KEY,
    visibility_timeout REAL,
    delay_seconds REAL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rfmq_messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    enqueued_at REAL NOT NULL,
    receipt TEXT UNIQUE,
    deliveries INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rfmq_messages_order
    ON rfmq_messages (queue, priority DESC, id);
"""

_NEXT_READY = (
    "SELECT m.id, m.payload, m.deliveries, m.enqueued_at,"
    " COALESCE(q.visibility_timeout, ?) FROM rfmq_messages AS m"
    " LEFT JOIN rfmq_queues AS q ON q.name = m.queue"
    " WHERE m.queue = ? AND m.visible_at <= ?"
    " ORDER BY m.priority DESC, m.id LIMIT 1"
)


def mns_priority_to_kombu(priority: int) -> int:
    """Map an MNS priority (1 most urgent .. 16 least) to kombu's ``priority``.

    Args:
        priority: MNS priority, 1-16.

    Returns:
        The kombu priority ``17 - priority`` (16 .. 1, higher first).

    Raises:
        ValueError: If ``priority`` is outside 1-16.
    """
    if not MNS_MIN_PRIORITY <= priority <= MNS_MAX_PRIORITY:
        raise ValueError(f"MNS priority must be within 1-16, got {priority}")
    return MNS_MAX_PRIORITY + 1 - priority


def kombu_priority_to_mns(priority: int) -> int:
    """Map a kombu priority (higher first) back to MNS 1-16, clamping."""
    return MNS_MAX_PRIORITY + 1 - min(max(priority, MNS_MIN_PRIORITY), MNS_MAX_PRIORITY)


def _seconds(value: Any) -> float | None:
    """Return ``value`` as non-negative seconds, or None when absent/invalid."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        logger.warning("ignoring invalid seconds value %r", value)
        return None


class _Database:
    """One SQLite connection (WAL, busy timeout), shared by a transport's channels."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock (``BEGIN IMMEDIATE``) for the enclosed block."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run one autocommitted statement."""
        with self.lock:
            return self.conn.execute(sql, params)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()


class QoS(virtual.QoS):
    """Prefetch bookkeeping whose "restore" releases rows instead of re-putting.

    kombu's in-memory QoS restores unacknowledged messages on close by
    publishing them again.  Here the database already holds every
    unacknowledged message, so restoring means making it visible at once.
    """

    channel: Channel

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Release (``requeue=True``) or delete the delivery's row."""
        if requeue:
            self.channel.release(delivery_tag)
        else:
            self.channel.delete_delivery(delivery_tag)
        self._quick_ack(delivery_tag)

    def restore_unacked(self) -> list[tuple[BaseException, Any]]:
        """Make every unacknowledged delivery of this channel visible again."""
        self._flush()  # type: ignore[no-untyped-call]
        while self._delivered:
            tag, _message = self._delivered.popitem()
            self.channel.release(tag)
        return []


class Channel(virtual.Channel):
    """A channel whose queues are rows of the transport's SQLite database.

    Args:
        connection: The :class:`Transport` this channel belongs to.
        **kwargs: Passed to :class:`kombu.transport.virtual.Channel`.
    """

    QoS = QoS
    connection: Transport
    default_priority = mns_priority_to_kombu(MNS_DEFAULT_PRIORITY)
    min_priority = 0
    max_priority = 255

    def __init__(self, connection: Transport, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)  # type: ignore[no-untyped-call]
        self._db = connection.db
        self._visibility_timeout = float(
            connection.options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
        )
        self._noack_queues: set[str] = set()

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        arguments: Mapping[str, Any] = kwargs.get("arguments") or {}
        self._db.execute(
            "INSERT INTO rfmq_queues (name, visibility_timeout, delay_seconds, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " visibility_timeout = COALESCE(excluded.visibility_timeout, visibility_timeout),"
            " delay_seconds = COALESCE(excluded.delay_seconds, delay_seconds)",
            (
                queue,
                _seconds(arguments.get(VISIBILITY_ARGUMENT)),
                _seconds(arguments.get(DELAY_HEADER)),
                time.time(),
            ),
        )

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        row = self._db.execute("SELECT 1 FROM rfmq_queues WHERE name = ?", (queue,))
        return row.fetchone() is not None

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM rfmq_messages WHERE queue = ?", (queue,))
            conn.execute("DELETE FROM rfmq_queues WHERE name = ?", (queue,))

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False, **kwargs: Any
    ) -> None:
        """Delete ``queue`` and all its messages, bound in this process or not."""
        if if_empty and self._size(queue):
            return
        self._delete(queue)
        self.state.queue_bindings_delete(queue)

    def _size(self, queue: str) -> int:
        """Count the messages that are visible (ready) now."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM rfmq_messages WHERE queue = ? AND visible_at <= ?",
            (queue, time.time()),
        ).fetchone()
        return int(row[0])

    def _purge(self, queue: str) -> int:
        """Delete ready and delayed messages; messages being worked on stay."""
        cursor = self._db.execute(
            "DELETE FROM rfmq_messages WHERE queue = ? AND (receipt IS NULL OR visible_at <= ?)",
            (queue, time.time()),
        )
        return cursor.rowcount

    def queue_counts(self, queue: str) -> dict[str, int]:
        """Count ``active`` (visible), ``inactive`` (received) and ``delayed`` messages."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(visible_at <= :now), 0),"
            " COALESCE(SUM(visible_at > :now AND receipt IS NOT NULL), 0),"
            " COALESCE(SUM(visible_at > :now AND receipt IS NULL), 0)"
            " FROM rfmq_messages WHERE queue = :queue",
            {"now": time.time(), "queue": queue},
        ).fetchone()
        return {"active": int(row[0]), "inactive": int(row[1]), "delayed": int(row[2])}

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        properties = message.get("properties") or {}
        headers = message.get("headers") or {}
        try:
            priority = int(properties.get("priority", self.default_priority))
        except (TypeError, ValueError):
            priority = self.default_priority
        priority = min(max(priority, self.min_priority), self.max_priority)
        self._db.execute(
            "INSERT INTO rfmq_messages (queue, priority, visible_at, enqueued_at, payload)"
            " VALUES (:queue, :priority, :now + COALESCE(:delay, (SELECT delay_seconds"
            " FROM rfmq_queues WHERE name = :queue), 0), :now, :payload)",
            {
                "queue": queue,
                "priority": priority,
                "now": time.time(),
                "delay": _seconds(headers.get(DELAY_HEADER)),
                "payload": _dumps(message),
            },
        )
        doorbell.ring(self.connection.database_path)  # committed: wake waiting consumers

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        return self.receive(queue, no_ack=queue in self._noack_queues)

    def receive(self, queue: str, no_ack: bool = False) -> dict[str, Any]:
        """Take the next visible message of ``queue`` and hide it.

        The message gets a fresh receipt, which is also its kombu delivery
        tag, and stays hidden for the queue's visibility timeout (or is
        deleted at once if ``no_ack``).

        Raises:
            queue.Empty: If no message is visible.
        """
        default_vt = self._visibility_timeout
        # A lock-free read first, so that idle polling never takes the write lock.
        if self._db.execute(_NEXT_READY, (default_vt, queue, time.time())).fetchone() is None:
            raise Empty()
        receipt = uuid.uuid4().hex
        with self._db.transaction() as conn:
            now = time.time()
            row = conn.execute(_NEXT_READY, (default_vt, queue, now)).fetchone()
            if row is None:
                raise Empty()
            row_id, payload_text, deliveries, enqueued_at, visibility_timeout = row
            if no_ack:
                conn.execute("DELETE FROM rfmq_messages WHERE id = ?", (row_id,))
            else:
                conn.execute(
                    "UPDATE rfmq_messages SET receipt = ?, visible_at = ?,"
                    " deliveries = deliveries + 1 WHERE id = ?",
                    (receipt, now + float(visibility_timeout), row_id),
                )
        payload: dict[str, Any] = _loads(payload_text)
        properties = payload.setdefault("properties", {})
        properties["delivery_tag"] = receipt
        properties["dequeue_count"] = deliveries + 1
        properties["enqueue_time"] = enqueued_at
        properties.setdefault("delivery_info", {})["redelivered"] = deliveries > 0
        return payload

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """Get one message synchronously, or None when ``queue`` is empty."""
        try:
            payload = self.receive(queue, no_ack=no_ack)
        except Empty:
            return None
        message = self.Message(payload, channel=self)  # type: ignore[no-untyped-call]
        if not no_ack:
            self.qos.append(message, message.delivery_tag)
        return message

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> None:
        """Consume from ``queue``; ``no_ack`` consumers delete on receive."""
        if no_ack:
            self._noack_queues.add(queue)
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)  # type: ignore[no-untyped-call]

    def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel a consumer."""
        self._noack_queues.discard(self._tag_to_queue.get(consumer_tag))
        super().basic_cancel(consumer_tag)  # type: ignore[no-untyped-call]

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        """Acknowledge a delivery: delete its row if the receipt still holds."""
        if not self.delete_delivery(delivery_tag):
            logger.warning(
                "ack of %s ignored: the message was acknowledged already or "
                "redelivered after its visibility timeout",
                delivery_tag,
            )
        self.qos.ack(delivery_tag)

    def delete_delivery(self, delivery_tag: str) -> bool:
        """Delete the row received with ``delivery_tag``; False if the receipt is stale."""
        cursor = self._db.execute("DELETE FROM rfmq_messages WHERE receipt = ?", (delivery_tag,))
        return cursor.rowcount > 0

    def change_visibility(self, delivery_tag: str, seconds: float) -> bool:
        """Hide a received message for ``seconds`` from now (MNS semantics).

        The receipt, and so the kombu delivery tag, stays the same.

        Args:
            delivery_tag: The receipt handed out by :meth:`receive`.
            seconds: New visibility timeout, counted from now; 0 releases.

        Returns:
            False if the receipt is stale (acknowledged or redelivered).
        """
        cursor = self._db.execute(
            "UPDATE rfmq_messages SET visible_at = ? WHERE receipt = ?",
            (time.time() + max(float(seconds), 0.0), delivery_tag),
        )
        if seconds <= 0 and cursor.rowcount:
            doorbell.ring(self.connection.database_path)
        return cursor.rowcount > 0

    def release(self, delivery_tag: str) -> bool:
        """Make a received message visible at once; failures are only logged.

        An unreleased message still reappears after its visibility timeout.
        """
        try:
            return self.change_visibility(delivery_tag, 0)
        except sqlite3.Error as exc:
            logger.debug("could not release %s: %r", delivery_tag, exc)
            return False


class Transport(virtual.Transport):
    """kombu transport storing MNS-style queues in an SQLite file.

    Features:
        * Type: Virtual
        * Supports Direct: Yes
        * Supports Topic: Yes
        * Supports Fanout: No
        * Supports Priority: Yes (0-255, higher first; MNS via
          :func:`mns_priority_to_kombu`)
        * Supports TTL: No
        * Supports delay: Yes (header ``x-delay-seconds``)
        * At-least-once: a message is deleted only when acknowledged;
          unacknowledged messages reappear after the visibility timeout.

    Connection String:
        ``relayflow-sqlite:///relative/queues.db`` or
        ``relayflow-sqlite:////absolute/queues.db``, optionally followed by
        ``?option=value`` transport options.  Exchanges and bindings are
        kept per process, as in kombu's other virtual transports; queues and
        messages live in the file, shared by every process that opens it.

    Transport Options:
        * ``database``: file path, overriding the one in the URL.
        * ``visibility_timeout``: seconds a received message stays hidden
          (default 30); queue argument ``x-visibility-timeout`` wins.
        * ``polling_interval``: seconds between polls of empty queues
          (default 0.01).
        * ``doorbell``: ``1`` (default) to be woken by producers in any
          process as soon as they commit a message (see
          :mod:`relayflow_mns.doorbell`; Linux only), so a message waits
          microseconds, not a polling interval; ``0`` to only poll.
        * Without a doorbell, right after a delivery the consumer polls every
          ``busy_polling_interval`` (default 0.001) for ``busy_seconds``
          (default 0.25): a worker that just finished a task usually gets the
          next one within a millisecond or two, and an idle one costs little.
        * ``busy_timeout``: seconds to wait for another writer (default 30).
    """

    Channel = Channel
    polling_interval = DEFAULT_POLLING_INTERVAL
    _last_delivery: float = 0.0
    can_parse_url = True
    driver_type = "sqlite"
    driver_name = "sqlite3"
    connection_errors = (  # type: ignore[assignment]
        *virtual.Transport.connection_errors,
        sqlite3.OperationalError,
    )
    implements = virtual.Transport.implements.extend(
        asynchronous=False, exchange_type=frozenset(["direct", "topic"])
    )

    def drain_events(  # type: ignore[override]  # kombu's own signature is untyped
        self, connection: Any, timeout: float | None = None
    ) -> None:
        """Deliver one message, polling fast for a while after the last delivery.

        Raises:
            socket.timeout: nothing came within ``timeout`` seconds.
        """
        began = time.monotonic()
        cycle = self.cycle
        assert cycle is not None, "the transport has no channel to drain"
        # Open before the first look: a ring after that look is then never missed.
        bell = self._bell is not None and self._bell.open()
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)  # type: ignore[no-untyped-call]
            except Empty:
                now = time.monotonic()
                if timeout is not None and now - began >= timeout:
                    raise TimeoutError() from None
                busy = not bell and now - self._last_delivery < self.busy_seconds
                interval = self.busy_polling_interval if busy else self.polling_interval
                if timeout is not None:
                    interval = min(interval, max(0.0, timeout - (now - began)))
                if bell and self._bell is not None:
                    self._bell.wait(interval)
                else:
                    time.sleep(interval)
            else:
                self._last_delivery = time.monotonic()
                return

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)  # type: ignore[no-untyped-call]
        hostname = str(client.hostname or "")
        url_path, query = "", ""
        if "://" in hostname:
            url_path, _, query = hostname.split("://", 1)[1].partition("?")
            url_path = url_path.removeprefix("/")  # the empty host's separator
        options: dict[str, Any] = dict(parse_qsl(query))
        for name in _NUMERIC_OPTIONS:
            if name in options:
                options[name] = float(options[name])
        options.update(client.transport_options or {})
        self.options = options
        self.polling_interval = float(options.get("polling_interval", DEFAULT_POLLING_INTERVAL))
        self.busy_polling_interval = float(options.get("busy_polling_interval", 0.001))
        self.busy_seconds = float(options.get("busy_seconds", 0.25))
        self._last_delivery = 0.0
        path = str(options.get("database") or unquote(url_path))
        if not path:
            raise ValueError(
                f"{SCHEME}: no database file; use {SCHEME}:///relative/queues.db, "
                f"{SCHEME}:////absolute/queues.db "
                "or the 'database' transport option"
            )
        self.database_path = os.path.abspath(os.path.expanduser(path))
        self._db: _Database | None = None
        wanted = str(options.get("doorbell", "1")).lower() not in ("0", "false", "no", "off")
        self._bell = doorbell.Doorbell(self.database_path) if wanted else None

    @property
    def db(self) -> _Database:
        """The shared SQLite connection, opened on first use."""
        if self._db is None:
            busy = float(self.options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT))
            self._db = _Database(self.database_path, busy)
        return self._db

    def establish_connection(self) -> Transport:
        """Open the database and create the first channel."""
        _ = self.db
        return super().establish_connection()  # type: ignore[no-any-return,no-untyped-call]

    def close_connection(self, connection: Any) -> None:
        """Close all channels (releasing unacked messages), then the file."""
        super().close_connection(connection)  # type: ignore[no-untyped-call]
        if self._bell is not None:
            self._bell.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    def driver_version(self) -> str:
        """Return the SQLite library version."""
        return sqlite3.sqlite_version


def extend_visibility(target: Any, delivery_tag: str, seconds: float) -> bool:
    """Keep a message hidden for ``seconds`` from now while it is worked on.

    Any channel on the same database file will do: the receipt (the
    delivery tag) is stored in the row.

    Args:
        target: A channel of this transport, a :class:`kombu.Connection`
            using it, or anything with such a ``channel`` (a kombu message).
        delivery_tag: The message's ``delivery_tag``.
        seconds: New visibility timeout counted from now.

    Returns:
        False if the receipt is stale (acknowledged, or redelivered).

    Raises:
        TypeError: If ``target`` does not lead to a channel of this transport.
    """
    channel = target
    if not isinstance(channel, Channel):
        channel = getattr(target, "channel", None)
    if not isinstance(channel, Channel) and hasattr(target, "default_channel"):
        channel = target.default_channel
    if not isinstance(channel, Channel):
        raise TypeError(f"{target!r} is not a {SCHEME} channel or connection")
    return channel.change_visibility(delivery_tag, seconds)


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
