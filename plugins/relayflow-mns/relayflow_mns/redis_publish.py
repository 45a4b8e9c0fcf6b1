"""Task messages to Redis from the event loop, as the very documents kombu would push.

kombu's publish is synchronous, so the integration runs it on a thread of its own. For a
report whose worker waits on the next message, that hand-over to the thread and back, and
kombu's own work around one LPUSH, were about a sixth of the report → next message latency
(0.45 ms to reach the thread and 0.75 ms to publish, of 6.5 ms, measured with timestamps in
the server). For a plain `redis://` broker the integration now writes the message itself, on
the engine's loop: one LPUSH of the JSON document kombu's Redis transport would write, to the
same key. Every kombu consumer (relayflow's worker, Celery, any kombu program) reads it as it
reads any other; tests/test_redis_publish.py pins the two documents to each other.

The connection is a small asyncio protocol that speaks only what a publish needs (AUTH,
SELECT, LPUSH, and their one-line answers), with the commands of concurrent publishes
pipelined on it. redis-py's asyncio client was tried first: its own work per command, on the
loop, delayed the answer of the report more than the thread hop it saved.

Brokers this does not cover (another scheme, a URL with options, transport options that
change keys or documents) keep kombu's path.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from bisect import bisect
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as kombu_virtual
from kombu.utils import json as kombu_json

__all__ = ["AsyncRedisPublisher", "RedisAnswerError", "document", "publishes_natively", "queue_key"]

#: Transport options that change nothing this module writes (the rest keep kombu's path).
NEUTRAL_OPTIONS = frozenset({"visibility_timeout", "polling_interval"})

# kombu's Redis channel: priority levels map to one list per step, named queue + SEP + step.
_CHANNEL: Any = kombu_redis.Channel
_STEPS: list[int] = list(_CHANNEL.priority_steps)
_SEP: str = _CHANNEL.sep
_MIN, _MAX = int(kombu_virtual.Channel.min_priority), int(kombu_virtual.Channel.max_priority)

#: kombu's retry policy for a publish (`Connection.ensure` in the integration): up to 5 more
#: tries after a lost connection, waiting 0.1 s, then twice as long each time, at most 2 s.
RETRIES = 5
CONNECT_TIMEOUT_SECONDS = 5.0
#: A broker that accepts the connection and never answers fails the publish after this long.
ANSWER_TIMEOUT_SECONDS = 30.0
#: The longest one-line answer read; Redis's are a few dozen bytes.
MAX_ANSWER_BYTES = 64 * 1024


def publishes_natively(url: str, options: dict[str, Any]) -> bool:
    """Whether messages for this broker can be written here rather than through kombu."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme.lower() == "redis"
        and not parts.query
        and not parts.fragment
        and set(options) <= NEUTRAL_OPTIONS
    )


def queue_key(queue: str, priority: int) -> str:
    """The Redis list kombu's channel pushes a message of ``priority`` (0-9) to."""
    step = _STEPS[bisect(_STEPS, max(min(priority, _MAX), _MIN)) - 1]
    return f"{queue}{_SEP}{step}" if step else queue


def document(
    queue: str, body: str, content_type: str, headers: dict[str, Any], priority: int
) -> str:
    """The JSON text kombu's Redis transport pushes for this message (a new delivery tag).

    What `Producer.publish(body, routing_key=queue, content_type=..., content_encoding="utf-8",
    serializer=None, headers=..., priority=..., delivery_mode=2)` builds on the default
    exchange: the body base64-encoded, its keys in kombu's order.
    """
    text: str = kombu_json.dumps(  # type: ignore[no-untyped-call]
        {
            "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers,
            "properties": {
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": priority or 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )
    return text


class RedisAnswerError(Exception):
    """Redis refused a command (an ``-ERR ...`` answer); not worth trying again."""


def command(*args: bytes) -> bytes:
    """One command in Redis's protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One connection; each command's answer resolves the oldest waiting future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiting: deque[asyncio.Future[bytes]] = deque()
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, answers: int = 1) -> list[asyncio.Future[bytes]]:
        """Write ``data`` (``answers`` commands) at once; a future for each answer's line."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bytes]] = [loop.create_future() for _ in range(answers)]
        if self.closed or self.transport is None:
            for future in futures:
                future.set_exception(ConnectionError("the connection to Redis is closed"))
            return futures
        self._waiting.extend(futures)
        self.transport.write(data)
        return futures

    async def call(self, data: bytes) -> bytes:
        """Send one command and wait for its answer's line (``+OK``, ``:3``)."""
        [future] = self.send(data)
        return await future

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > MAX_ANSWER_BYTES:
                    self._fail(ConnectionError("Redis sent an answer too long to be one line"))
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            if not self._waiting or line[:1] not in (b"+", b":", b"-"):
                # Only one-line answers are expected: anything else is a protocol mix-up.
                self._fail(ConnectionError(f"unexpected answer from Redis: {line[:80]!r}"))
                return
            future = self._waiting.popleft()
            if future.done():  # its publish gave up waiting
                continue
            if line[:1] == b"-":
                future.set_exception(RedisAnswerError(line[1:].decode("utf-8", "replace")))
            else:
                future.set_result(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the connection to Redis was lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self._fail(ConnectionError("the connection to Redis was closed"))


class AsyncRedisPublisher:
    """LPUSHes kombu documents over one connection per event loop, made on first use.

    Args:
        url: a ``redis://[[user]:password@]host[:port][/db]`` URL (`publishes_natively`).
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        path = parts.path.strip("/")
        self.db = int(path) if path.isdigit() else 0
        self._connection: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connected(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A connection belongs to the loop that made it (tests and `relayflow run` may
            # start engines on several loops in turn); the old one is dropped.
            self._connection, self._loop, self._connecting = None, loop, asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._connection is None or self._connection.closed:
                self._connection = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_SECONDS)
        return self._connection

    async def _open(self) -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port
        )
        try:
            if self.password is not None:
                user = [self.username.encode()] if self.username else []
                await connection.call(command(b"AUTH", *user, self.password.encode()))
            if self.db:
                await connection.call(command(b"SELECT", str(self.db).encode()))
        except BaseException:
            connection.close()
            raise
        return connection

    async def publish(
        self,
        queues: list[str],
        body: str,
        content_type: str,
        headers: dict[str, Any],
        priority: int,
    ) -> None:
        """Push the message to each of ``queues``, trying again after a lost connection.

        Raises:
            ConnectionError: Redis could not be reached, after `RETRIES` more tries.
            RedisAnswerError: Redis refused the command (a wrong password, a full memory).
        """
        data = b"".join(
            command(
                b"LPUSH",
                queue_key(name, priority).encode(),
                document(name, body, content_type, headers, priority).encode(),
            )
            for name in queues
        )
        pause = 0.1
        for attempt in range(RETRIES + 1):
            connection: _Connection | None = None
            try:
                connection = await self._connected()
                answers = connection.send(data, len(queues))
                waited = answers[0] if len(answers) == 1 else asyncio.gather(*answers)
                await asyncio.wait_for(waited, ANSWER_TIMEOUT_SECONDS)
                return
            except (OSError, ConnectionError, TimeoutError) as exc:
                if connection is not None:  # the next try opens another
                    connection.close()
                if attempt == RETRIES:
                    raise ConnectionError(
                        f"Redis at {self.host}:{self.port} could not take the message after "
                        f"{RETRIES + 1} tries: {exc}"
                    ) from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def aclose(self) -> None:
        """Close the connection if it belongs to the running loop; else just forget it."""
        connection, loop = self._connection, self._loop
        self._connection = self._loop = self._connecting = None
        if connection is not None and loop is asyncio.get_running_loop():
            connection.close()
