"""relayflow_mns.redis_transport against a real redis-server: one client per channel, same wire."""

from __future__ import annotations

import uuid

import kombu

from relayflow_mns import redis_transport
from relayflow_mns.worker import visibility_hook_for


def test_redis_urls_get_the_transport_and_others_do_not() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h/1", "REDIS+SOCKET:///tmp/r.sock"):
        assert redis_transport.transport_for(url) is redis_transport.Transport
    for url in ("amqp://guest@localhost//", "memory://", "relayflow-sqlite:///q.db"):
        assert redis_transport.transport_for(url) is None


def test_a_channel_keeps_one_client(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/5"
    with kombu.Connection(url, transport=redis_transport.Transport) as connection:
        channel = connection.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        given = object()
        with channel.conn_or_acquire(given) as client:
            assert client is given
        # the transport module brings its own visibility hook, as sqlite_transport does
        assert visibility_hook_for(connection) is redis_transport.extend_visibility
        channel.close()
    with kombu.Connection(url) as plain:  # kombu's own Redis transport gets the same hook
        assert visibility_hook_for(plain) is redis_transport.extend_visibility


def test_messages_cross_between_kombus_transport_and_this_one(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/5"
    name = f"cross-{uuid.uuid4().hex[:8]}"
    with (
        kombu.Connection(url) as plain,
        kombu.Connection(url, transport=redis_transport.Transport) as ours,
    ):
        plain.SimpleQueue(name).put({"from": "kombu"})
        message = ours.SimpleQueue(name).get(timeout=10)
        assert message.payload == {"from": "kombu"}
        message.ack()
        ours.SimpleQueue(name).put({"from": "relayflow"})
        message = plain.SimpleQueue(name).get(timeout=10)
        assert message.payload == {"from": "relayflow"}
        message.ack()
