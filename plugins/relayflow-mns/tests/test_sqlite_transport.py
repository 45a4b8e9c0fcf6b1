"""Tests for the embedded SQLite kombu transport (relayflow-sqlite://)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
from kombu import Consumer, Exchange, Producer, Queue

from relayflow_mns import sqlite_transport as st

TEST_LIMIT = 10  # seconds; every test is designed to finish well under 5


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    """Fail a test instead of hanging if it ever exceeds TEST_LIMIT."""

    def _expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test exceeded {TEST_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, TEST_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queues.db"


@pytest.fixture
def url(db: Path) -> str:
    return f"relayflow-sqlite:///{db}"  # four slashes: absolute path


def connect(url: str, **options: Any) -> kombu.Connection:
    return kombu.Connection(url, transport_options=options)


def rows(db: Path, queue: str | None = None) -> int:
    with sqlite3.connect(db) as conn:
        if queue is None:
            return int(conn.execute("SELECT COUNT(*) FROM rfmq_messages").fetchone()[0])
        sql = "SELECT COUNT(*) FROM rfmq_messages WHERE queue = ?"
        return int(conn.execute(sql, (queue,)).fetchone()[0])


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_alias_and_url(url: str, db: Path) -> None:
    assert st.SCHEME in kombu.transport.TRANSPORT_ALIASES
    with kombu.Connection(url + "?visibility_timeout=7&polling_interval=0.02") as conn:
        transport = conn.transport
        assert isinstance(transport, st.Transport)
        assert transport.database_path == str(db)
        assert transport.options["visibility_timeout"] == 7.0
        assert transport.polling_interval == 0.02
        assert conn.as_uri().startswith("relayflow-sqlite://")
        conn.connect()
    assert db.exists()
    with pytest.raises(ValueError, match="no database file"):
        kombu.Connection("relayflow-sqlite://").transport  # noqa: B018


def test_url_paths_follow_sqlalchemy_convention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = kombu.Connection("relayflow-sqlite:///sub/rel.db")
    assert relative.transport.database_path == f"{tmp_path}/sub/rel.db"  # resolved at once
    absolute = kombu.Connection(f"relayflow-sqlite:///{tmp_path}/abs.db")
    assert absolute.transport.database_path == f"{tmp_path}/abs.db"
    with relative:
        relative.SimpleQueue("x").put(1)
    assert (tmp_path / "sub" / "rel.db").exists()


def test_priority_mapping() -> None:
    assert st.mns_priority_to_kombu(1) == 16
    assert st.mns_priority_to_kombu(16) == 1
    assert st.mns_priority_to_kombu(8) == st.Channel.default_priority
    assert [st.kombu_priority_to_mns(st.mns_priority_to_kombu(p)) for p in range(1, 17)] == list(
        range(1, 17)
    )
    assert st.kombu_priority_to_mns(0) == 16
    assert st.kombu_priority_to_mns(200) == 1
    for bad in (0, 17):
        with pytest.raises(ValueError):
            st.mns_priority_to_kombu(bad)


def test_simple_queue_put_get_ack_deletes_row(url: str, db: Path) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"n": 1})
        assert rows(db, "jobs") == 1
        message = queue.get(timeout=2)
        assert message.payload == {"n": 1}
        assert message.properties["dequeue_count"] == 1
        assert message.delivery_info["redelivered"] is False
        assert rows(db, "jobs") == 1  # hidden, not gone
        message.ack()
        assert rows(db, "jobs") == 0
        queue.close()


def test_consumer_callbacks_and_ack(url: str, db: Path) -> None:
    exchange = Exchange("work", type="direct")
    queue = Queue("tasks", exchange, routing_key="tasks")
    received: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        received.append(body)
        message.ack()

    with connect(url) as conn:
        producer = Producer(conn.default_channel, exchange=exchange, routing_key="tasks")
        for i in range(3):
            producer.publish({"i": i}, declare=[queue], serializer="json")
        with Consumer(conn.default_channel, [queue], callbacks=[on_message]):
            deadline = time.monotonic() + 3
            while len(received) < 3 and time.monotonic() < deadline:
                conn.drain_events(timeout=1)
    assert received == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert rows(db) == 0


def test_unacked_reappears_with_new_tag_and_old_ack_is_stale(url: str, db: Path) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("vt", queue_args={st.VISIBILITY_ARGUMENT: 0.3})
        queue.put("payload")
        first = queue.get(timeout=2)
        with pytest.raises(queue.Empty):
            queue.get(block=False)  # hidden while within its timeout
        started = time.monotonic()
        second = queue.get(timeout=2)
        assert time.monotonic() - started >= 0.2
        assert second.payload == first.payload
        assert second.delivery_tag != first.delivery_tag
        assert second.delivery_info["redelivered"] is True
        assert second.properties["dequeue_count"] == 2
        first.ack()  # stale receipt: must not delete the redelivered copy
        assert rows(db, "vt") == 1
        second.ack()
        assert rows(db, "vt") == 0
        queue.close()


def test_transport_option_visibility_timeout(url: str) -> None:
    with connect(url, visibility_timeout=0.2) as conn:
        queue = conn.SimpleQueue("opt")
        queue.put("x")
        first = queue.get(timeout=2)
        second = queue.get(timeout=2)
        assert second.delivery_tag != first.delivery_tag
        second.ack()
        queue.close()


def test_requeue_reject_and_no_ack(url: str, db: Path) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("rr")
        queue.put("again")
        message = queue.get(timeout=2)
        message.requeue()  # visible again at once, new receipt
        again = queue.get(block=False)
        assert again.delivery_tag != message.delivery_tag
        again.reject()  # discard
        assert rows(db, "rr") == 0
        queue.close()

        buffer = conn.SimpleQueue("noack", no_ack=True)
        buffer.put("fire-and-forget")
        assert buffer.get(timeout=2).payload == "fire-and-forget"
        assert rows(db, "noack") == 0
        buffer.close()


def test_close_releases_unacked_instead_of_reputting(url: str, db: Path) -> None:
    with connect(url) as conn:
        conn.SimpleQueue("rel").put("m")
        message = conn.SimpleQueue("rel").get(timeout=2)
        assert message.payload == "m"
    assert rows(db, "rel") == 1  # still exactly one copy
    with connect(url) as conn:
        queue = conn.SimpleQueue("rel")
        message = queue.get(block=False)  # released on close: visible at once
        assert message.properties["dequeue_count"] == 2
        message.ack()
        queue.close()
    assert rows(db) == 0


CONSUMER_THAT_DIES = """
import sys, time
import kombu
import relayflow_mns.sqlite_transport
with kombu.Connection(sys.argv[1], transport_options={"visibility_timeout": 0.5}) as conn:
    message = conn.SimpleQueue("crash").get(timeout=4)
    print("GOT", message.payload, flush=True)
    time.sleep(30)
"""


def test_killed_consumer_message_reappears_for_another(url: str, db: Path) -> None:
    with connect(url) as conn:
        conn.SimpleQueue("crash").put("precious")
    child = spawn(CONSUMER_THAT_DIES, url)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "GOT precious"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=3)
    assert rows(db, "crash") == 1
    with connect(url) as conn:
        queue = conn.SimpleQueue("crash")
        message = queue.get(timeout=3)
        assert message.payload == "precious"
        assert message.delivery_info["redelivered"] is True
        message.ack()
        queue.close()
    assert rows(db) == 0


def test_delay_seconds(url: str) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("later")
        sent = time.monotonic()
        queue.put("delayed", headers={st.DELAY_HEADER: 0.4})
        queue.put("now")
        assert queue.get(timeout=1).payload == "now"
        with pytest.raises(queue.Empty):
            queue.get(block=False)
        assert conn.default_channel.queue_counts("later")["delayed"] == 1
        message = queue.get(timeout=2)
        assert message.payload == "delayed"
        assert time.monotonic() - sent >= 0.35
        message.ack()
        queue.close()


def test_queue_default_delay(url: str) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("qdelay", queue_args={st.DELAY_HEADER: 0.3})
        queue.put("a")
        with pytest.raises(queue.Empty):
            queue.get(block=False)
        queue.get(timeout=2).ack()
        queue.close()


def test_priority_order(url: str) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("prio")
        for name, mns in [("p8", 8), ("p1", 1), ("p16", 16), ("p4", 4)]:
            queue.put(name, priority=st.mns_priority_to_kombu(mns))
        queue.put("default")  # MNS default priority 8, after "p8" in FIFO order
        order = []
        for _ in range(5):
            message = queue.get(timeout=1)
            order.append(message.payload)
            message.ack()
        assert order == ["p1", "p4", "p8", "default", "p16"]
        queue.close()


COMPETING_CONSUMER = """
import os, sys, time
import kombu
import relayflow_mns.sqlite_transport
url, go = sys.argv[1], sys.argv[2]
with kombu.Connection(url) as conn:
    queue = conn.SimpleQueue("shared")
    print("READY", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    while True:
        try:
            message = queue.get(timeout=0.5)
        except queue.Empty:
            break
        print(message.payload, flush=True)
        time.sleep(0.001)
        message.ack()
"""


def test_two_processes_never_share_a_message(url: str, db: Path, tmp_path: Path) -> None:
    count = 200
    with connect(url) as conn:
        queue = conn.SimpleQueue("shared")
        for i in range(count):
            queue.put(i)
        queue.close()
    go = tmp_path / "go"
    children = [spawn(COMPETING_CONSUMER, url, str(go)) for _ in range(2)]
    outputs: list[list[str]] = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "READY"
        go.touch()
        for child in children:
            out, err = child.communicate(timeout=8)
            assert child.returncode == 0, err
            outputs.append(out.split())
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    seen = Counter(int(line) for lines in outputs for line in lines)
    assert sorted(seen) == list(range(count))
    assert set(seen.values()) == {1}, "a message was delivered twice"
    assert all(outputs), f"one consumer got nothing: {[len(o) for o in outputs]}"
    print(f"\nconsumer split: {[len(o) for o in outputs]}")
    assert rows(db) == 0


def test_extend_visibility(url: str) -> None:
    with connect(url) as worker, connect(url) as other:
        queue = worker.SimpleQueue("long", queue_args={st.VISIBILITY_ARGUMENT: 0.3})
        queue.put("slow job")
        message = queue.get(timeout=2)
        assert st.extend_visibility(worker, message.delivery_tag, 1.0)
        time.sleep(0.5)  # past the original 0.3 s
        probe = other.SimpleQueue("long")
        with pytest.raises(probe.Empty):
            probe.get(block=False)
        assert st.extend_visibility(message, message.delivery_tag, 0.2)  # via message.channel
        redelivered = probe.get(timeout=2)
        assert redelivered.delivery_tag != message.delivery_tag
        assert not st.extend_visibility(other, message.delivery_tag, 5)  # stale receipt
        redelivered.ack()
        assert not st.extend_visibility(other.default_channel, redelivered.delivery_tag, 5)
        with pytest.raises(TypeError):
            st.extend_visibility(object(), "tag", 1)
        queue.close()
        probe.close()


def test_purge_size_and_delete(url: str, db: Path) -> None:
    with connect(url) as conn:
        queue = conn.SimpleQueue("bulk")
        for i in range(3):
            queue.put(i)
        queue.put("delayed", headers={st.DELAY_HEADER: 60})
        assert queue.qsize() == 3
        held = queue.get(timeout=1)
        assert queue.qsize() == 2
        channel = conn.default_channel
        assert channel.queue_counts("bulk") == {"active": 2, "inactive": 1, "delayed": 1}
        assert queue.clear() == 3  # ready + delayed; the held message stays
        assert queue.qsize() == 0
        assert rows(db, "bulk") == 1
        held.ack()
        assert rows(db, "bulk") == 0

        queue.put("gone")
        channel.queue_delete("bulk")
        assert rows(db, "bulk") == 0
        assert not channel._has_queue("bulk")
        queue.close()


def test_delivery_latency_is_milliseconds(url: str) -> None:
    count = 20
    latencies: list[float] = []
    with connect(url) as consumer_conn:
        queue = consumer_conn.SimpleQueue("fast")
        pauses = random.Random(7)

        def produce() -> None:
            with connect(url) as producer_conn:
                out = producer_conn.SimpleQueue("fast")
                for _ in range(count):
                    time.sleep(pauses.uniform(0.005, 0.03))  # no phase-lock with polling
                    out.put(time.time())
                out.close()

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            for _ in range(count):
                message = queue.get(timeout=1)  # generous bound, not a perf gate
                latencies.append(time.time() - message.payload)
                message.ack()
        finally:
            producer.join(timeout=3)
        queue.close()
    median_ms = statistics.median(latencies) * 1000
    max_ms = max(latencies) * 1000
    print(
        f"\ndelivery latency over {count} messages: median {median_ms:.1f} ms, max {max_ms:.1f} ms"
    )
    assert max(latencies) < 1.0


def test_transport_path_from_option(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "q.db"
    with kombu.Connection(
        "relayflow-sqlite://ignored.db", transport_options={"database": str(target)}
    ) as conn:
        conn.SimpleQueue("x").put(1)
    assert target.exists()
    assert not os.path.exists("ignored.db")
