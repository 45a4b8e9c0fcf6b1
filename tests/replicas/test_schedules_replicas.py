"""Schedules with three engines (replicas) on one PostgreSQL database: each tick fires once.

Three `Engine` objects, each with its own connections as separate `relayflow server` processes
would have, share a fresh database and one clock that the test moves a second at a time. Every
tick of every schedule must start exactly one execution, on whichever replica claims it, and a
tick claimed by a replica that died is fired by another once the claim's lease runs out.

Each firing is watched: a replica that moved a schedule on under its claim and then found the
tick's execution already there would mean two replicas fired the same tick (the execution's
name stopped the second start). That must not happen either.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine
from relayflow.engine.schedule_info import KIND
from relayflow.engine.ticker import execution_name
from relayflow.store import open_store
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.api_server import KEYS, config_text, serving
from tests.engine.helpers import running
from tests.services import fresh_database

pytest.importorskip("psycopg")

FLOW = fdl("""
- type: pass
  name: hello
""")
FLOWS, PER_FLOW, TICKS = 3, 8, 4
START = "2026-01-01T00:00:00.5"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, start: str) -> None:
        self.now = at(start)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "schedules_" + uuid.uuid4().hex[:12]) as url:
        yield url


class Watch:
    """What each replica's firings did: started a tick, or found it started already.

    `Ticker._start` runs only for a schedule this replica has just moved on under its claim:
    finding the tick's execution there already means another replica fired the same tick.
    """

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.doubled: list[tuple[int, str]] = []

    def attach(self, index: int, engine: Engine) -> None:
        ticker = engine._runtime.ticker
        start = ticker._start

        def watched(tx: Any, ctx: Any, flow: Any, tick: Any, now: float) -> bool:
            done = start(tx, ctx, flow, tick, now)
            if done:
                self.started.add(tick.name)
            else:
                self.doubled.append((index, tick.name))
            return done

        ticker._start = watched  # type: ignore[method-assign]


async def execution_names(engine: Engine, flow: str) -> set[str]:
    page = await engine.list_executions(flow, limit=100)
    assert page.next_token == ""
    return {e.name for e in page.items}


@bounded(seconds=90)
async def test_each_tick_fires_once_with_three_replicas(pg_url: str) -> None:
    clock = Clock(START)
    engines = [make_engine(store=pg_url, clock=clock, poll_seconds=0.05) for _ in range(3)]
    watch = Watch()
    for i, engine in enumerate(engines):
        watch.attach(i, engine)
    flows = [f"f{i}" for i in range(FLOWS)]
    schedules = [(flow, f"s{j}") for flow in flows for j in range(PER_FLOW)]
    async with running(*engines):
        for flow in flows:
            await engines[0].create_flow(flow, FLOW)
        for k, (flow, name) in enumerate(schedules):
            await engines[k % 3].create_schedule(flow, name, "* * * * * *", {"s": name})

        for tick in range(1, TICKS + 1):
            clock.now = at(START) + tick - 0.5  # the whole second `tick`
            expected = {
                flow: {execution_name(name, clock.now) for f, name in schedules if f == flow}
                for flow in flows
            }

            async def all_started(
                expected: dict[str, set[str]] = expected, reader: Engine = engines[tick % 3]
            ) -> bool:
                for flow, names in expected.items():
                    if not names <= await execution_names(reader, flow):
                        return False
                return True

            await eventually(all_started, 20, f"every schedule's execution for tick {tick}")

        for flow in flows:
            names = await execution_names(engines[1], flow)
            wanted = {
                execution_name(name, at(START) + tick - 0.5)
                for f, name in schedules
                if f == flow
                for tick in range(1, TICKS + 1)
            }
            assert names == wanted, flow
    assert watch.doubled == []
    assert watch.started == {
        execution_name(name, at(START) + tick - 0.5)
        for _, name in schedules
        for tick in range(1, TICKS + 1)
    }


@bounded(seconds=60)
async def test_a_tick_held_by_a_replica_that_died_fires_once_elsewhere(pg_url: str) -> None:
    clock = Clock(START)
    engines = [make_engine(store=pg_url, clock=clock, poll_seconds=0.05) for _ in range(3)]
    watch = Watch()
    for i, engine in enumerate(engines):
        watch.attach(i, engine)
    async with running(*engines):
        await engines[0].create_flow("f", FLOW)
        # The clock stands still: nothing is due until the test says so.
        await engines[1].create_schedule("f", "s", "0 * * * * *")
        # A fourth replica claims the first tick for one second and dies without firing it.
        clock.now = at("2026-01-01T00:01:00")
        store = open_store(pg_url)
        try:
            with store.transaction() as tx:
                claimed = tx.claim_due_objects(KIND, clock.now, "dead-replica", clock.now + 1, 10)
        finally:
            store.close()
        if claimed:  # else a live replica claimed it first, which is as good
            assert [row.name for row in claimed] == ["s"]
        name = execution_name("s", at("2026-01-01T00:01:00"))

        async def started() -> bool:
            return name in await execution_names(engines[2], "f")

        await eventually(started, 20, "the tick to fire after the dead replica's lease")
        info = await engines[0].describe_schedule("f", "s")
        assert info.next_tick == at("2026-01-01T00:02:00")
        assert await execution_names(engines[0], "f") == {name}
    assert watch.started == {name} and watch.doubled == []


@bounded(seconds=60)
async def test_a_replica_too_slow_for_its_claim_does_not_fire_the_tick(pg_url: str) -> None:
    """A replica claims a tick, then stalls past its lease; another claims and fires it. When
    the first goes on, its claim is gone: it must not move the schedule or start anything."""
    clock = Clock(START)
    slow = make_engine(store=pg_url, clock=clock, poll_seconds=0.05, lease_seconds=1)
    other = make_engine(store=pg_url, clock=clock, poll_seconds=0.05, lease_seconds=1)
    watch = Watch()
    watch.attach(0, slow)
    watch.attach(1, other)
    fired_elsewhere = asyncio.Event()
    claimed, went_on = asyncio.Event(), asyncio.Event()
    fire_all = slow._runtime.ticker._fire_all

    async def stalled(rows: Any) -> None:
        claimed.set()
        await fired_elsewhere.wait()  # the lease (1 s, on PostgreSQL's clock) ran out meanwhile
        await fire_all(rows)
        went_on.set()

    slow._runtime.ticker._fire_all = stalled  # type: ignore[method-assign]
    async with running(slow):
        await slow.create_flow("f", FLOW)
        await slow.create_schedule("f", "s", "0 * * * * *")
        clock.now = at("2026-01-01T00:01:00")
        await asyncio.wait_for(claimed.wait(), 10)
        name = execution_name("s", clock.now)
        async with running(other):

            async def started() -> bool:
                return name in await execution_names(other, "f")

            await eventually(started, 20, "the other replica to fire the tick")
            fired_elsewhere.set()
            await asyncio.wait_for(went_on.wait(), 10)  # the slow one must have done nothing
            assert await execution_names(other, "f") == {name}
            info = await other.describe_schedule("f", "s")
            assert info.next_tick == at("2026-01-01T00:02:00")
    assert watch.doubled == []


def test_three_servers_on_one_database_start_each_tick_once(pg_url: str, tmp_path: Path) -> None:
    """Three `relayflow server` processes on the real clock: a schedule created on one replica
    and ticking every second starts its executions, named after their ticks, with its payload;
    they read the same through the others. (Once per tick is what the tests above check: an
    execution's name cannot be taken twice, so counting names here would prove nothing.)"""
    config = config_text(keys=KEYS, plugin=False).replace(
        'store = "sqlite:///relayflow.db"', f'store = "{pg_url}"\npoll_seconds = 0.2'
    )
    with contextlib.ExitStack() as stack:
        servers = []
        for i in range(3):
            folder = tmp_path / f"replica{i}"
            folder.mkdir()
            servers.append(stack.enter_context(serving(folder, config)))
        first, second, third = servers
        first.ok({"Action": "CreateFlow", "Name": "f", "Definition": FLOW, "Type": "FDL"})
        second.ok(
            {
                "Action": "CreateSchedule",
                "FlowName": "f",
                "ScheduleName": "often",
                "CronExpression": "* * * * * *",
                "Payload": '{"n": 1}',
            }
        )

        def names() -> list[str]:
            page = third.ok({"Action": "ListExecutions", "FlowName": "f", "Limit": "100"})
            return [run["Name"] for run in page["Executions"]]

        deadline = time.monotonic() + 30
        while len(names()) < 4:
            assert time.monotonic() < deadline, f"only {names()} started within 30 s"
            time.sleep(0.2)
        first.ok({"Action": "DeleteSchedule", "FlowName": "f", "ScheduleName": "often"})
        started = names()
        assert all(name.startswith("schedule-often-") for name in started)
        for name in started:
            run = second.describe("f", name)
            assert run["Status"] == "Succeeded" and run["Input"].replace(" ", "") == '{"n":1}'
