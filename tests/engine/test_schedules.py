"""Schedules in the engine, on a clock the test moves: the operations and their refusals, one
execution per tick, restarts, the catch-up policy, disabling, updating and deleting.

The engines poll every 50 ms of real time and read the test's clock, so no test waits for a real
minute; each wait is bounded (`eventually`), and "nothing more fired" is shown by a second
schedule (a witness) that fires for the same tick in the same loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from relayflow.engine import Engine
from relayflow.engine.schedule_info import KIND
from relayflow.engine.ticker import execution_name
from relayflow.errors import EngineError
from relayflow.store import FlowObjectRow
from relayflow.testing import EngineFactory, bounded, eventually, fdl, make_engine

FLOW = fdl("""
- type: pass
  name: hello
""")
EVERY_MINUTE = "0 * * * * *"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, start: str) -> None:
        self.now = at(start)

    def __call__(self) -> float:
        return self.now

    def set(self, text: str) -> None:
        self.now = at(text)


def engine_on(clock: Clock, factory: EngineFactory | None = None, **options: Any) -> Engine:
    options.setdefault("poll_seconds", 0.05)
    if factory is not None:
        return factory(clock=clock, sqlite=True, **options)
    return make_engine(clock=clock, **options)


async def names(engine: Engine, flow: str = "f") -> list[str]:
    page = await engine.list_executions(flow, limit=100)
    return sorted(e.name for e in page.items)


async def fired(engine: Engine, schedule: str, tick: str, flow: str = "f") -> list[str]:
    """Wait until ``schedule`` has started its execution for ``tick``; every execution name."""
    name = execution_name(schedule, at(tick))

    async def there() -> bool:
        return name in await names(engine, flow)

    await eventually(there, 5, f"{name} to start")
    return await names(engine, flow)


# -- the operations ---------------------------------------------------------------------------


@bounded
async def test_create_describe_list_update_delete() -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        made = await engine.create_schedule(
            "f", "s1", EVERY_MINUTE, '{"k": 1}', description="first"
        )
        assert made.schedule_name == "s1" and made.enable and made.payload == '{"k": 1}'
        assert made.next_tick == at("2026-01-01T00:01:00")
        api = made.to_api()
        assert api["CronExpression"] == EVERY_MINUTE and api["Enable"] is True
        assert api["CreatedTime"] == "2026-01-01T00:00:30.000Z" == api["LastModifiedTime"]
        assert api["ScheduleId"] == made.schedule_id and len(made.schedule_id) == 36

        assert (await engine.describe_schedule("f", "s1")) == made
        for i in range(2, 6):
            await engine.create_schedule("f", f"s{i}", EVERY_MINUTE, enable=False)
        first = await engine.list_schedules("f", limit=2)
        assert [s.schedule_name for s in first.items] == ["s1", "s2"] and first.next_token
        rest = await engine.list_schedules("f", limit=3, next_token=first.next_token)
        assert [s.schedule_name for s in rest.items] == ["s3", "s4", "s5"]
        assert rest.next_token == ""

        clock.set("2026-01-01T00:00:40")
        changed = await engine.update_schedule("f", "s1", description="changed")
        assert changed.description == "changed" and changed.payload == '{"k": 1}'
        assert changed.next_tick == made.next_tick  # the tick it waits for stays
        assert changed.modified == at("2026-01-01T00:00:40") and changed.created == made.created
        assert changed.schedule_id == made.schedule_id

        await engine.delete_schedule("f", "s1")
        with pytest.raises(EngineError) as caught:
            await engine.describe_schedule("f", "s1")
        assert caught.value.code == "ScheduleNotExists"


@bounded
async def test_refusals_name_the_problem() -> None:
    clock = Clock("2026-01-01T00:00:00")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE)

        async def refused(call: Any) -> EngineError:
            with pytest.raises(EngineError) as caught:
                await call
            assert "\n" not in caught.value.message
            return caught.value

        missing = await refused(engine.create_schedule("nope", "s", EVERY_MINUTE))
        assert (missing.code, missing.status) == ("FlowNotExists", 404)
        assert missing.message == "Flow 'nope' does not exist"
        for call in (
            engine.describe_schedule("nope", "s"),
            engine.list_schedules("nope"),
            engine.update_schedule("nope", "s", enable=False),
            engine.delete_schedule("nope", "s"),
        ):
            assert (await refused(call)).code == "FlowNotExists"

        twice = await refused(engine.create_schedule("f", "s", EVERY_MINUTE))
        assert (twice.code, twice.status) == ("ScheduleAlreadyExists", 409)
        assert twice.message == "Schedule 's' already exists in flow 'f'"
        gone = await refused(engine.delete_schedule("f", "other"))
        assert (gone.code, gone.status) == ("ScheduleNotExists", 404)
        assert gone.message == "Schedule 'other' does not exist in flow 'f'"
        assert (await refused(engine.update_schedule("f", "other"))).code == "ScheduleNotExists"

        five = await refused(engine.create_schedule("f", "t", "*/5 * * * *"))
        assert five.code == "InvalidArgument" and "has 5 fields; it needs 6" in five.message
        bad = await refused(engine.update_schedule("f", "s", cron_expression="0 0 25 * * *"))
        assert bad.code == "InvalidArgument" and "hours" in bad.message
        for payload, words in (
            ("[1, 2]", "must be a JSON object"),
            ("{oops", "not valid JSON"),
            ({"big": "x" * 40_000}, "engine.max_step_data_bytes"),
        ):
            wrong = await refused(engine.create_schedule("f", "t", EVERY_MINUTE, payload))
            assert wrong.code == "InvalidArgument" and words in wrong.message, wrong.message
        name = await refused(engine.create_schedule("f", "9lives", EVERY_MINUTE))
        assert name.code == "InvalidArgument" and "ScheduleName" in name.message
        text = await refused(engine.create_schedule("f", "t", EVERY_MINUTE, description="d" * 1025))
        assert "Description" in text.message
        assert (await refused(engine.list_schedules("f", limit=1001))).code == "InvalidArgument"
        assert (await refused(engine.list_schedules("f", next_token="a b"))).code == (
            "InvalidArgument"
        )

        await engine.create_flow("quick", FLOW, execution_mode="Express")
        express = await refused(engine.create_schedule("quick", "s", EVERY_MINUTE))
        assert express.code == "InvalidArgument" and "Express" in express.message


# -- firing -----------------------------------------------------------------------------------


@bounded
async def test_each_tick_starts_one_execution_with_the_payload() -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE, {"job": "report"})
        assert await names(engine) == []

        clock.set("2026-01-01T00:01:00.2")
        assert await fired(engine, "s", "2026-01-01T00:01:00") == ["schedule-s-20260101T000100Z"]
        info = await engine.describe_schedule("f", "s")
        assert info.next_tick == at("2026-01-01T00:02:00")  # moved on: nothing more this minute
        run = await engine.describe_execution("f", "schedule-s-20260101T000100Z")
        assert run.status == "Succeeded" and run.input == {"job": "report"}

        clock.set("2026-01-01T00:02:00")
        assert await fired(engine, "s", "2026-01-01T00:02:00") == [
            "schedule-s-20260101T000100Z",
            "schedule-s-20260101T000200Z",
        ]


@bounded
async def test_an_execution_a_schedule_starts_reads_the_flows_environment() -> None:
    clock = Clock("2026-01-01T00:00:30")
    flow = fdl("""
    - type: pass
      name: hello
      outputMappings:
        - target: region
          source: $context.flow.environment.REGION
    """)
    environment = '{"Variables": [{"Name": "REGION", "Value": "eu-1"}]}'
    async with engine_on(clock) as engine:
        await engine.create_flow("f", flow, environment=environment)
        await engine.create_schedule("f", "s", EVERY_MINUTE)
        clock.set("2026-01-01T00:01:00")
        await fired(engine, "s", "2026-01-01T00:01:00")
        run = await engine.describe_execution("f", "schedule-s-20260101T000100Z")
        assert run.status == "Succeeded" and run.output == {"region": "eu-1"}


@bounded
async def test_a_restart_does_not_start_a_tick_twice(engine_factory: EngineFactory) -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock, engine_factory) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE)
        clock.set("2026-01-01T00:01:00")
        await fired(engine, "s", "2026-01-01T00:01:00")
    async with engine_on(clock, engine_factory) as engine:
        clock.set("2026-01-01T00:02:00")
        assert await fired(engine, "s", "2026-01-01T00:02:00") == [
            "schedule-s-20260101T000100Z",
            "schedule-s-20260101T000200Z",
        ]


@bounded
async def test_a_tick_claimed_by_an_engine_that_crashed_fires_once_after_restart(
    engine_factory: EngineFactory,
) -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock, engine_factory) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE)
    clock.set("2026-01-01T00:01:00")
    # An engine claimed the tick and died before its firing committed.
    store = engine_factory(sqlite=True).store
    with store.transaction() as tx:
        claimed = tx.claim_due_objects(KIND, clock(), "dead-engine", clock() + 3600, 10)
    store.close()
    assert [row.name for row in claimed] == ["s"]
    async with engine_on(clock, engine_factory) as engine:
        assert await fired(engine, "s", "2026-01-01T00:01:00") == ["schedule-s-20260101T000100Z"]
        info = await engine.describe_schedule("f", "s")
        assert info.next_tick == at("2026-01-01T00:02:00")


@bounded
async def test_ticks_missed_while_no_engine_ran_start_one_execution(
    engine_factory: EngineFactory,
) -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock, engine_factory) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE)
    clock.set("2026-01-01T00:10:30")  # ten ticks passed with no engine running
    async with engine_on(clock, engine_factory) as engine:
        # One execution, for the latest missed tick; then the next tick after now.
        assert await fired(engine, "s", "2026-01-01T00:10:00") == ["schedule-s-20260101T001000Z"]
        assert (await engine.describe_schedule("f", "s")).next_tick == at("2026-01-01T00:11:00")
        clock.set("2026-01-01T00:11:00")
        assert await fired(engine, "s", "2026-01-01T00:11:00") == [
            "schedule-s-20260101T001000Z",
            "schedule-s-20260101T001100Z",
        ]


@bounded
async def test_disable_enable_update_and_delete() -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        for name in ("witness", "off", "moved", "gone"):
            await engine.create_schedule("f", name, EVERY_MINUTE)
        off = await engine.update_schedule("f", "off", enable=False)
        assert off.enable is False and off.next_tick is None
        moved = await engine.update_schedule("f", "moved", cron_expression="45 * * * * *")
        assert moved.next_tick == at("2026-01-01T00:00:45")
        await engine.delete_schedule("f", "gone")

        clock.set("2026-01-01T00:01:00")
        assert await fired(engine, "witness", "2026-01-01T00:01:00") == [
            "schedule-moved-20260101T000045Z",
            "schedule-witness-20260101T000100Z",
        ]

        clock.set("2026-01-01T00:01:10")
        back = await engine.update_schedule("f", "off", enable=True)  # counts from now
        assert back.next_tick == at("2026-01-01T00:02:00")
        clock.set("2026-01-01T00:02:00")
        found = await fired(engine, "off", "2026-01-01T00:02:00")
        assert "schedule-off-20260101T000100Z" not in found
        assert not [n for n in found if n.startswith("schedule-gone-")]


@bounded
async def test_a_held_tick_waits_for_its_claim_and_an_update_frees_it() -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "held", EVERY_MINUTE)
        tick = at("2026-01-01T00:01:00")

        def claim(tx: Any) -> list[Any]:  # as another engine would, for an hour
            return tx.claim_due_objects(KIND, tick, "other-engine", tick + 3600, 10)

        # On the writer's thread, between the engine's own transactions.
        assert [row.name for row in await engine._runtime.committer.alone(claim)] == ["held"]
        await engine.create_schedule("f", "witness", EVERY_MINUTE)
        clock.set("2026-01-01T00:01:00")
        found = await fired(engine, "witness", "2026-01-01T00:01:00")
        assert found == ["schedule-witness-20260101T000100Z"]  # the held tick did not fire

        # UpdateSchedule drops the claim and keeps the tick it waits for: it fires now.
        await engine.update_schedule("f", "held", description="freed")
        assert await fired(engine, "held", "2026-01-01T00:01:00") == [
            "schedule-held-20260101T000100Z",
            "schedule-witness-20260101T000100Z",
        ]


@bounded
async def test_a_schedule_the_engine_cannot_read_is_switched_off_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "good", EVERY_MINUTE)
        tick = at("2026-01-01T00:01:00")
        broken = FlowObjectRow("f", KIND, "broken", "{not json", clock(), clock(), tick - 1)
        await engine._runtime.committer.alone(lambda tx: tx.put_object(broken))
        clock.set("2026-01-01T00:01:00")
        assert await fired(engine, "good", "2026-01-01T00:01:00") == [
            "schedule-good-20260101T000100Z"
        ]

        async def off() -> bool:
            row = await engine.read(lambda tx: tx.get_object("f", KIND, "broken"))
            return row is not None and row.due_at is None

        await eventually(off, 5, "the broken schedule to be switched off")
    assert "schedule broken of flow f is switched off" in caplog.text


@bounded
async def test_a_start_that_breaks_loses_its_tick_alone(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        for name in ("a", "bad", "c"):
            await engine.create_schedule("f", name, EVERY_MINUTE)
        applier = engine._runtime.applier
        apply = applier.apply

        def breaking(tx: Any, ctx: Any, row: Any, command: Any, *rest: Any) -> Any:
            if row.name.startswith("schedule-bad-"):
                raise RuntimeError("a bug")
            return apply(tx, ctx, row, command, *rest)

        applier.apply = breaking  # type: ignore[method-assign]
        clock.set("2026-01-01T00:01:00")
        await fired(engine, "c", "2026-01-01T00:01:00")
        assert await names(engine) == [
            "schedule-a-20260101T000100Z",
            "schedule-c-20260101T000100Z",
        ]
        assert (await engine.describe_schedule("f", "bad")).next_tick == at("2026-01-01T00:02:00")
    assert "schedule-bad-20260101T000100Z of flow f did not start" in caplog.text


@bounded
async def test_deleting_the_flow_deletes_its_schedules() -> None:
    clock = Clock("2026-01-01T00:00:30")
    async with engine_on(clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.create_schedule("f", "s", EVERY_MINUTE)
        await engine.delete_flow("f")
        await engine.create_flow("f", FLOW)
        assert (await engine.list_schedules("f")).items == []
        await engine.create_schedule("f", "s", EVERY_MINUTE)  # the name is free again


def test_execution_names_stay_within_128_characters() -> None:
    tick = at("2026-01-01T00:01:00")
    assert execution_name("s", tick) == "schedule-s-20260101T000100Z"
    long_a, long_b = "a" * 128, "a" * 127 + "b"
    name_a, name_b = execution_name(long_a, tick), execution_name(long_b, tick)
    assert len(name_a) == len(name_b) == 128 and name_a != name_b
    assert name_a.endswith("-20260101T000100Z")


def test_sync_engine_has_the_clients_schedule_methods() -> None:
    from relayflow.engine import SyncEngine
    from relayflow.store import open_store
    from relayflow.testing import eventually_sync

    clock = Clock("2026-01-01T00:00:30")
    with SyncEngine(open_store("memory://"), clock=clock, poll_seconds=0.05) as engine:
        engine.create_flow("f", FLOW)
        engine.create_schedule("f", "s1", EVERY_MINUTE, {"k": 1})
        engine.create_schedule("f", "s2", EVERY_MINUTE, enable=False)
        assert [s.schedule_name for s in engine.iter_schedules("f", page_size=1)] == ["s1", "s2"]
        assert engine.update_schedule("f", "s2", description="off").description == "off"
        assert engine.describe_schedule("f", "s2").enable is False
        clock.set("2026-01-01T00:01:00")
        name = execution_name("s1", at("2026-01-01T00:01:00"))
        eventually_sync(
            lambda: any(e.name == name for e in engine.iter_executions("f")), 5, f"{name}"
        )
        assert engine.describe_execution("f", name).input == {"k": 1}
        engine.delete_schedule("f", "s1")
        with pytest.raises(EngineError) as refused:
            engine.describe_schedule("f", "s1")
        assert refused.value.code == "ScheduleNotExists"
