"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` object for every publish and every
acknowledgement (`Channel.conn_or_acquire`); building it cost a worker more CPU than the
commands it sends (about a tenth of all its time in the queue benchmark). This channel
keeps one client, over the same connection pool, for its lifetime. `redis.Redis` takes a
pooled connection per command, so threads may share it as kombu's own helpers do.
Everything else, including the wire format, is kombu's: queues are interchangeable with
those of any other kombu program on the same Redis.

relayflow's queue integration and worker use this transport for `redis://`, `rediss://`
and `redis+socket://` URLs. `extend_visibility` keeps a message hidden while its task runs
(the worker finds it by the transport's module, as it finds `sqlite_transport`'s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["REDIS_SCHEMES", "Channel", "Transport", "extend_visibility", "transport_for"]

#: URL schemes this transport serves in relayflow.
REDIS_SCHEMES = ("redis", "rediss", "redis+socket")


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one synchronous client."""

    _sync_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """The given client, else the channel's own (made on first use)."""
        if client:
            yield client
            return
        if self._sync_client is None:
            self._sync_client = self._create_client()  # type: ignore[no-untyped-call]
        yield self._sync_client

    def close(self) -> None:
        """Close the channel and drop its client."""
        self._sync_client = None
        super().close()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel


def transport_for(url: str) -> type[Transport] | None:
    """This transport for a Redis URL, None for any other (kombu then picks by scheme)."""
    scheme = url.partition("://")[0].lower()
    return Transport if scheme in REDIS_SCHEMES else None


def extend_visibility(channel: Any, delivery_tag: Any, seconds: float) -> None:
    """Hide a message delivered by kombu's Redis transport for ``seconds`` more.

    That transport gives a delivered message back to the queue when its entry in the
    unacked index is older than the channel's visibility timeout; moving the entry forward
    postpones that. ``xx`` leaves alone a message that was already given back.
    """
    score = time.time() + seconds - float(channel.visibility_timeout)
    with channel.conn_or_acquire() as client:
        client.zadd(channel.unacked_index_key, {delivery_tag: score}, xx=True)
