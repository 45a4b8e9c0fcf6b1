"""relayflow_mns.redis_publish against a real redis-server: kombu's documents, from the loop."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from typing import Any

import kombu
import pytest
import uvloop

from relayflow.engine import Failed, Submitted, TaskRequest
from relayflow.engine.dispatch import invoke_integration
from relayflow_mns import redis_transport
from relayflow_mns.integration import HEADER_TOKEN, MnsIntegration, MnsSettings
from relayflow_mns.redis_publish import (
    AsyncRedisPublisher,
    document,
    publishes_natively,
    queue_key,
)

HEADERS = {
    "x-relayflow-flow": "seed",
    "x-relayflow-execution": "ex-1",
    "x-relayflow-step": "transform",
    "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    "x-relayflow-task-token": "djEj" + "t" * 150,
}


def private_db(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/7"


def kombu_publish(url: str, queue: str, body: str, content_type: str, priority: int) -> None:
    """What the integration's thread does for other brokers (`MnsIntegration._publish`)."""
    with kombu.Connection(url, transport=redis_transport.Transport) as connection:
        connection.Producer().publish(
            body,
            routing_key=queue,
            declare=[kombu.Queue(queue, routing_key=queue)],
            content_type=content_type,
            content_encoding="utf-8",
            serializer=None,
            headers=dict(HEADERS),
            priority=priority,
            delivery_mode=2,
        )


def raw_documents(url: str, key: str) -> list[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return [json.loads(item) for item in client.lrange(key, 0, -1)]
    finally:
        client.close()


@pytest.mark.parametrize("priority", range(10))
@pytest.mark.parametrize(
    ("body", "content_type"),
    [('{"rows":[{"id":1}]}', "application/json"), ("plain text é ✓", "text/plain")],
)
def test_the_document_and_key_are_kombus_own(
    redis_url: str, priority: int, body: str, content_type: str
) -> None:
    url = private_db(redis_url)
    theirs, ours = f"kombu-{uuid.uuid4().hex[:8]}", f"ours-{uuid.uuid4().hex[:8]}"
    kombu_publish(url, theirs, body, content_type, priority)
    publisher = AsyncRedisPublisher(url)

    async def send() -> None:
        await publisher.publish([ours], body, content_type, dict(HEADERS), priority)
        await publisher.aclose()

    asyncio.run(send())
    [expected] = raw_documents(url, queue_key(theirs, priority))
    [written] = raw_documents(url, queue_key(ours, priority))
    # the same document, but for its queue and its delivery tag
    uuid.UUID(written["properties"].pop("delivery_tag"))
    expected["properties"].pop("delivery_tag")
    assert written["properties"]["delivery_info"].pop("routing_key") == ours
    assert expected["properties"]["delivery_info"].pop("routing_key") == theirs
    assert written == expected
    # and the same text, key order included, as kombu's serializer writes it
    text = document("q", body, content_type, dict(HEADERS), priority)
    assert list(json.loads(text)) == list(expected)
    assert list(json.loads(text)["properties"]) == [
        "delivery_mode",
        "delivery_info",
        "priority",
        "body_encoding",
        "delivery_tag",
    ]


def test_kombu_consumers_read_the_messages_in_priority_order(redis_url: str) -> None:
    url = private_db(redis_url)
    name = f"cons-{uuid.uuid4().hex[:8]}"
    publisher = AsyncRedisPublisher(url)

    async def send() -> None:
        # kombu's Redis transport serves the lowest priority number first
        for priority in (9, 5, 0):
            await publisher.publish([name], f"p{priority}", "text/plain", dict(HEADERS), priority)
        await publisher.aclose()

    asyncio.run(send())
    got = []
    with kombu.Connection(url) as connection:  # kombu's own transport, as Celery would use
        queue = connection.SimpleQueue(name)
        for _ in range(3):
            message = queue.get(timeout=5)
            got.append((message.body, message.headers["x-relayflow-step"], message.content_type))
            message.ack()
        queue.close()
    assert got == [(b"p0", "transform", "text/plain"), (b"p5", "transform", "text/plain"),
                   (b"p9", "transform", "text/plain")]  # fmt: skip


def test_only_plain_redis_urls_without_key_options_are_written_here() -> None:
    assert publishes_natively("redis://127.0.0.1:6379/0", {})
    assert publishes_natively("REDIS://:secret@h:1/2", {"visibility_timeout": 30})
    for url in (
        "rediss://h:6380/0",
        "redis+socket:///tmp/r.sock",
        "redis://h/0?ssl_cert_reqs=required",
        "amqp://guest@localhost//",
        "relayflow-sqlite:///q.db",
        "redis://[::1",  # not a URL at all
    ):
        assert not publishes_natively(url, {}), url
    for options in ({"global_keyprefix": "app:"}, {"sep": ":"}, {"priority_steps": [0, 9]}):
        assert not publishes_natively("redis://h/0", options), options


def request(queue: str, pattern: str = "waitForCallback") -> TaskRequest:
    return TaskRequest(
        flow_name="seed",
        execution_name="ex-1",
        step_name="transform",
        task_id=3,
        token="tok-3",
        resource=f"acs:mns:cn-hangzhou:123:/queues/{queue}/messages",
        pattern=pattern,
        input={"job": "x"},
        service_params={"MessageBody": {"job": "x"}, "Priority": 2},
        timeout_seconds=None,
        attempt=0,
    )


@pytest.mark.parametrize("db", ["0", "7"])
def test_the_integration_sends_from_the_loop_on_every_loop_it_runs_on(
    redis_url: str, db: str
) -> None:
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    name = f"int-{uuid.uuid4().hex[:8]}"
    integration = MnsIntegration(MnsSettings(transport=url))
    try:
        assert integration._loop_publisher is not None
        # the engine may be started on one loop, closed, and started on another; the server
        # runs on uvloop, whose transports are not asyncio's classes
        for run in (asyncio.run, uvloop.run):
            outcome = run(integration.invoke(request(name)))
            assert isinstance(outcome, Submitted)
        with kombu.Connection(url) as connection:
            queue = connection.SimpleQueue(name)
            for _ in range(2):
                message = queue.get(timeout=5)
                assert json.loads(message.body) == {"job": "x"}
                assert message.headers[HEADER_TOKEN] == "tok-3"
                assert message.properties["priority"] == 15  # MNS priority 2 in kombu's terms
                message.ack()
            queue.close()
    finally:
        integration.close()


def test_an_absent_broker_fails_the_task_after_kombus_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    integration = MnsIntegration(MnsSettings(transport=f"redis://127.0.0.1:{port}/0"))
    try:
        began = time.monotonic()
        outcome = asyncio.run(invoke_integration(integration, request("absent")))
        assert isinstance(outcome, Failed)
        assert "ConnectionError" in outcome.cause
        assert time.monotonic() - began < 20  # bounded: retries then an answer
    finally:
        integration.close()


def test_a_user_and_password_in_the_url_are_used_and_a_wrong_one_fails_at_once(
    redis_url: str,
) -> None:
    import redis

    admin = redis.Redis.from_url(redis_url)
    user = f"rf-{uuid.uuid4().hex[:6]}"
    admin.acl_setuser(user, enabled=True, passwords=["+s3cret/%"], keys=["*"], commands=["+@all"])
    host_port = redis_url.split("//", 1)[1].rsplit("/", 1)[0]
    name = f"auth-{uuid.uuid4().hex[:8]}"
    try:
        good = MnsIntegration(MnsSettings(transport=f"redis://{user}:s3cret%2F%25@{host_port}/7"))
        assert isinstance(asyncio.run(good.invoke(request(name))), Submitted)
        assert len(raw_documents(private_db(redis_url), queue_key(name, 15))) == 1
        bad = MnsIntegration(MnsSettings(transport=f"redis://{user}:wrong@{host_port}/7"))
        began = time.monotonic()
        outcome = asyncio.run(invoke_integration(bad, request(name)))
        assert isinstance(outcome, Failed)
        assert "WRONGPASS" in outcome.cause
        assert time.monotonic() - began < 2  # a refusal is not tried again
        good.close()
        bad.close()
    finally:
        admin.acl_deluser(user)
        admin.close()
