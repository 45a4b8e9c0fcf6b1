"""`relayflow.store.copy`: a whole store copied to another, running executions carrying on.

The main test moves a store from SQLite to PostgreSQL and back, with executions waiting for a
callback, on a timer and for a task message that was never sent; engines on the copies accept
the task tokens handed out before, and every history reads the same event by event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine, Submitted, TaskRequest
from relayflow.store import Store, StoreError, open_store
from relayflow.store import copy as store_copy
from relayflow.store.copy import DestinationNotEmpty, copy_store, copy_urls
from relayflow.store.records import FlowObjectRow, TimerRow
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import CALLBACK, PASS, QUEUE, finished
from tests.services import fresh_database
from tests.store.rows import event, exec_row, flow_row

HANG = "acs:mns:::/queues/stuck/messages"
NAP = fdl("""
- type: wait
  name: nap
  duration: 3600
""")
STUCK = fdl(f"""
- type: task
  name: stuck
  resourceArn: {HANG}
  pattern: waitForCallback
""")
_numbers = itertools.count()


@pytest.fixture
def pg_empty(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test's own."""
    with fresh_database(postgres_url, f"rf_copy_{os.getpid()}_{next(_numbers)}") as url:
        yield url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def dump(url: str) -> dict[str, Any]:
    """Everything a copy carries, keyed by names (ids differ between stores)."""
    store = open_store(url)
    try:
        with store.reader() as tx:
            found: dict[str, Any] = {"secret": tx.get_meta("token_secret")}
            for flow in tx.list_flows("", 1000):
                found[f"flow {flow.name}"] = (flow, tx.flow_versions(flow.name))
                for row in tx.list_executions(flow.name, after="", limit=1000):
                    found[f"execution {flow.name}/{row.name}"] = {
                        "row": row_fields(row),
                        "events": tx.list_events(row.id, 0, 10_000),
                        "timers": [(t.timer_id, t.fire_at, t.kind) for t in tx.list_timers(row.id)],
                        "outbox": [o.payload for o in tx.list_outbox(row.id)],
                    }
            return found
    finally:
        store.close()


def row_fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__ if name != "id"}


class Queue:
    """A task handler that records its messages, and one that never answers."""

    def __init__(self) -> None:
        self.sent: list[TaskRequest] = []

    async def send(self, request: TaskRequest) -> Submitted:
        self.sent.append(request)
        return Submitted({"MessageId": f"m-{len(self.sent)}"})

    async def hang(self, request: TaskRequest) -> Submitted:
        self.sent.append(request)
        await asyncio.sleep(3600)  # cancelled when the engine closes: its outbox row stays
        raise AssertionError("unreachable")

    def engine(self, url: str) -> Engine:
        return make_engine({QUEUE: self.send, HANG: self.hang}, store=url)

    def token(self, name: str) -> str:
        return next(r.token for r in self.sent if r.execution_name == name)


async def fill(url: str) -> Queue:
    """A store with a finished execution and four running ones, each waiting on something."""
    queue = Queue()
    engine = queue.engine(url)
    await engine.start()
    try:
        await engine.create_flow("pass", PASS)
        await engine.start_execution("pass", {"n": 0}, name="done")
        await engine.create_flow("jobs", CALLBACK)
        await engine.update_flow("jobs", CALLBACK.replace("name: work", "name: work-v2"))
        for name in ("first", "second"):
            await engine.start_execution("jobs", {"job": name}, name=name)
        await engine.create_flow("nap", NAP)
        await engine.start_execution("nap", {}, name="sleeping")
        await engine.create_flow("stuck", STUCK)
        await engine.start_execution("stuck", {}, name="queued")
        await eventually(lambda: len(queue.sent) == 3, what="three task messages")
        await finished(engine, "pass", "done")
    finally:
        await engine.close(grace_seconds=0.1)
    return queue


@bounded(seconds=60)
async def test_sqlite_to_postgresql_to_sqlite_carries_running_executions_on(
    tmp_path: Path, pg_empty: str
) -> None:
    source = sqlite_url(tmp_path / "a.db")
    queue = await fill(source)
    before = dump(source)

    counts = await asyncio.to_thread(copy_urls, source, pg_empty)
    assert counts.summary() == (
        "copied 4 flows, 5 executions (4 running), "
        f"{sum(len(v['events']) for k, v in before.items() if k.startswith('execution'))} "
        # The nap's wait, and the default timeout of each of the three callback tasks.
        "events, 4 timers, 1 outbox rows"
    )
    assert counts.flow_versions == 5 and counts.token_secret
    on_postgresql = dump(pg_empty)
    assert on_postgresql == before  # every event, timer, outbox row and the secret

    # An engine on PostgreSQL takes a token handed out on SQLite.
    later = Queue()
    async with later.engine(pg_empty) as engine:
        await engine.report_task_succeeded(queue.token("first"), {"ok": 1})
        assert (await finished(engine, "jobs", "first")).status == "Succeeded"
    moved_again = await asyncio.to_thread(dump, pg_empty)

    destination = sqlite_url(tmp_path / "b.db")
    await asyncio.to_thread(copy_urls, pg_empty, destination)
    assert dump(destination) == moved_again
    # ...and an engine on the SQLite copy of that copy takes another.
    last = Queue()
    async with last.engine(destination) as engine:
        await engine.report_task_succeeded(queue.token("second"), {"ok": 2})
        info = await finished(engine, "jobs", "second")
        assert info.status == "Succeeded" and info.output == {"ok": 2}
        # The message never sent on SQLite is sent now (once more on PostgreSQL, by `later`).
        request = (await eventually(lambda: last.sent, what="the message of `queued`"))[0]
        assert request.execution_name == "queued"
        await engine.report_task_succeeded(request.token, {})
        assert (await finished(engine, "stuck", "queued")).status == "Succeeded"
        assert (await engine.describe_execution("nap", "sleeping")).status == "Running"


def seed(store: Store, executions: int = 10, events: int = 7) -> None:
    with store.transaction() as tx:
        tx.set_meta("token_secret", "ab" * 32)
        tx.put_flow(flow_row("f", 1, "def-1"))
        tx.put_flow(flow_row("f", 2, "def-2"))
        for i in range(executions):
            new = tx.insert_execution(exec_row("f", f"e{i:03}"))
            assert new is not None
            tx.append_events(new, [event(j) for j in range(1, events + 1)])
            tx.add_timer(TimerRow(new, 1, 5000.0 + i, "wait"))
            tx.add_outbox(new, {"task_id": i}, "someone", 1e12)  # leased far ahead


def test_pages_of_every_listing_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_copy, "_PAGE", 3)
    source, destination = open_store("memory://"), open_store("memory://")
    seed(source)
    seen: list[tuple[int, int]] = []
    counts = copy_store(source, destination, lambda done, total: seen.append((done, total)))
    assert (counts.executions, counts.events, counts.timers, counts.outbox) == (10, 70, 10, 10)
    assert seen == [(i, 10) for i in range(1, 11)]
    with destination.reader() as tx:
        rows = tx.list_executions("f", after="", limit=100)
        assert [r.name for r in rows] == [f"e{i:03}" for i in range(10)]
        assert tx.flow_versions("f") == [(1, "def-1"), (2, "def-2")]
        assert [e.event_id for e in tx.list_events(rows[-1].id, 0, 100)] == list(range(1, 8))
    # Copied rows are nobody's: the next engine takes them at once.
    with destination.transaction() as tx:
        assert len(tx.claim_outbox(100.0, "next", 200.0, 100)) == 10


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_destination_that_is_not_empty_is_refused(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = sqlite_url(tmp_path / "a.db")
    destination = (
        sqlite_url(tmp_path / "b.db") if kind == "sqlite" else request.getfixturevalue("pg_empty")
    )
    for url in (source, destination):
        store = open_store(url)
        seed(store, executions=1)
        store.close()
    with pytest.raises(DestinationNotEmpty) as info:
        copy_urls(source, destination)
    assert "\n" not in str(info.value)
    assert "already has flows or executions" in str(info.value)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("error", [Interrupted, KeyboardInterrupt])
def test_a_copy_stopped_midway_leaves_the_destination_empty(
    kind: str, error: type[BaseException], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = sqlite_url(tmp_path / "a.db")
    destination = (
        sqlite_url(tmp_path / "b.db") if kind == "sqlite" else request.getfixturevalue("pg_empty")
    )
    store = open_store(source)
    seed(store)
    store.close()

    def progress(done: int, total: int) -> None:
        if done == 4:
            raise error

    with pytest.raises(error):
        copy_urls(source, destination, progress)
    store = open_store(destination)
    try:
        with store.reader() as tx:
            assert tx.list_flows("", 10) == [] and tx.count_executions() == 0
            assert tx.get_meta("token_secret") is None
    finally:
        store.close()
    copy_urls(source, destination)  # the destination is still empty: a new copy goes through
    assert dump(destination) == dump(source)


@bounded
async def test_a_copy_is_refused_while_an_engine_runs_on_a_sqlite_store(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path / "a.db")
    async with make_engine(store=source) as engine:
        await engine.create_flow("pass", PASS)
        with pytest.raises(StoreError, match="another relayflow engine is running"):
            await asyncio.to_thread(copy_urls, source, sqlite_url(tmp_path / "b.db"))
    with pytest.raises(StoreError, match="same store"):
        copy_urls(source, sqlite_url(tmp_path / "." / "a.db"))


def test_an_unreadable_task_message_is_set_aside_in_the_destination(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = open_store(sqlite_url(path))
    seed(store, executions=1)
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE outbox SET payload = '{not json'")
    db.commit()
    db.close()
    counts = copy_urls(sqlite_url(path), sqlite_url(tmp_path / "b.db"))
    assert (counts.outbox, counts.quarantined) == (0, 1)
    assert "1 unreadable, set aside" in counts.summary()
    db = sqlite3.connect(tmp_path / "b.db")
    assert db.execute("SELECT kind, data FROM quarantine").fetchall() == [("outbox", "{not json")]
    db.close()


def test_flow_objects_and_the_version_3_columns_go_across_unclaimed(
    tmp_path: Path, pg_empty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_copy, "_PAGE", 2)
    source = open_store(sqlite_url(tmp_path / "a.db"))
    flow = dataclasses.replace(flow_row("f"), execution_mode="Express", environment='{"v": 1}')
    objects = [
        FlowObjectRow("f", "schedule", f"s{i}", f'{{"i": {i}}}', 1.0, 2.0, 3.0 + i)
        for i in range(5)
    ]
    objects.append(FlowObjectRow("f", "alias", "live", "{}", 1.0, 2.0))
    with source.transaction() as tx:
        tx.put_flow(flow)
        tx.insert_execution(dataclasses.replace(exec_row("f", "e"), published_version=4))
        for row in objects:
            tx.create_object(row)
        tx.claim_due_objects("schedule", 1e9, "old-owner", 1e12, 2)  # held far ahead
    source.close()

    counts = copy_urls(sqlite_url(tmp_path / "a.db"), pg_empty)
    assert counts.objects == 6 and counts.summary().endswith(", 6 flow objects")
    destination = open_store(pg_empty)
    try:
        with destination.transaction() as tx:
            assert tx.get_flow("f") == flow
            assert tx.get_execution("f", "e").published_version == 4
            copied = tx.list_objects("f", "schedule", "", 10) + tx.list_objects("f", "alias")
            assert sorted(copied, key=lambda o: o.name) == sorted(objects, key=lambda o: o.name)
            # Nobody holds them on the destination: the first engine takes every due one.
            claimed = tx.claim_due_objects("schedule", 1e9, "new", 1e12, 10)
            assert [o.name for o in claimed] == [f"s{i}" for i in range(5)]
    finally:
        destination.close()
