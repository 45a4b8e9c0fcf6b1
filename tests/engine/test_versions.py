"""Published flow versions and Qualifier, on the embedded SQLite store and on PostgreSQL.

Each test runs on both stores (`store_url`); on PostgreSQL the tests of this module share one
database and keep apart by giving their flows names of their own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from relayflow.engine import Engine, version_records, versions
from relayflow.errors import EngineError
from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import sqlite_or_postgres

ONE = fdl("""
    - type: pass
      name: one
      outputMappings:
        - target: ran
          source: "one"
""")
TWO = fdl("""
    - type: pass
      name: two
      outputMappings:
        - target: ran
          source: "two"
""")
THREE = fdl("""
    - type: pass
      name: three
      outputMappings:
        - target: ran
          source: "three"
""")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the test's engines keep things: a fresh SQLite store each, or one PG database."""
    yield from sqlite_or_postgres(request, "versions_")


@pytest.fixture
def flow() -> str:
    """A flow name no other test of the module uses (they may share a PostgreSQL database)."""
    return "f_" + uuid.uuid4().hex[:10]


async def refused(code: str, awaitable: Awaitable[Any]) -> EngineError:
    with pytest.raises(EngineError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value


async def published(engine: Engine, flow: str, *definitions: str) -> None:
    """Create ``flow`` with the first definition and publish each of them in turn (1, 2, ...)."""
    await engine.create_flow(flow, definitions[0])
    for index, definition in enumerate(definitions):
        if index:
            await engine.update_flow(flow, definition)
        await engine.publish_flow_version(flow, f"v{index + 1}")


@bounded
async def test_versions_count_from_one_and_run_the_definition_they_snapshot(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, ONE, description="first")
        first = await engine.publish_flow_version(flow, "the first")
        await engine.update_flow(flow, TWO, description="second")
        second = await engine.publish_flow_version(flow)
        await engine.update_flow(flow, THREE)
        assert (first.version, second.version) == (1, 2)
        assert first.to_api()["Version"] == "1" and first.to_api()["Description"] == "the first"

        old = await engine.start_execution(flow, {}, "old", qualifier="1")
        assert old.flow_version == "1" and "name: one" in old.flow_definition
        done = await engine.describe_execution(flow, "old", wait_seconds=10)
        assert done.output == {"ran": "one"} and done.to_api()["FlowVersion"] == "1"

        mid = await engine.start_execution(flow, {}, "mid", qualifier="2")
        assert (await engine.describe_execution(flow, mid.name, 10)).output == {"ran": "two"}

        now = await engine.start_execution(flow, {}, "now")
        done = await engine.describe_execution(flow, now.name, wait_seconds=10)
        assert done.output == {"ran": "three"} and done.flow_version == ""
        assert "FlowVersion" not in done.to_api()


@bounded
async def test_describe_flow_with_a_version_shows_it_as_published(store_url, flow):
    async with make_engine(store=store_url) as engine:
        env = '{"Variables": [{"Name": "STAGE", "Value": "blue"}]}'
        await engine.create_flow(flow, ONE, description="before", environment=env)
        await engine.publish_flow_version(flow)
        await engine.update_flow(flow, TWO, description="after", environment="")
        as_published = await engine.describe_flow(flow, "1")
        assert "name: one" in as_published.definition
        assert as_published.description == "before"
        assert as_published.environment["Variables"][0]["Value"] == "blue"
        assert "name: two" in (await engine.describe_flow(flow)).definition
        await refused("FlowVersionNotExists", engine.describe_flow(flow, "2"))
        await refused("InvalidArgument", engine.describe_flow(flow, "latest"))
        missing = await refused("FlowNotExists", engine.describe_flow("nope_" + flow, "1"))
        assert missing.message == f"Flow 'nope_{flow}' does not exist"


@bounded
async def test_a_deleted_versions_number_is_not_given_again(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        await engine.delete_flow_version(flow, "2")
        assert (await engine.publish_flow_version(flow)).version == 3
        listed = await engine.list_flow_versions(flow)
        assert [v.version for v in listed.items] == [1, 3] and listed.next_token == ""
        gone = await refused("FlowVersionNotExists", engine.delete_flow_version(flow, 2))
        assert gone.message == f"Flow version '2' does not exist in flow '{flow}'"
        await refused("InvalidArgument", engine.delete_flow_version(flow, "two"))


@bounded
async def test_list_flow_versions_pages_oldest_first(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO, THREE)
        first = await engine.list_flow_versions(flow, limit=2)
        assert [v.version for v in first.items] == [1, 2] and first.next_token == "2"
        rest = await engine.list_flow_versions(flow, limit=2, next_token=first.next_token)
        assert [v.version for v in rest.items] == [3] and rest.next_token == ""
        assert [v.description for v in (await engine.list_flow_versions(flow)).items] == [
            "v1",
            "v2",
            "v3",
        ]
        await refused("InvalidArgument", engine.list_flow_versions(flow, limit=1001))
        await refused("InvalidArgument", engine.list_flow_versions(flow, next_token="x"))
        await refused("FlowNotExists", engine.list_flow_versions("nope_" + flow))


@bounded
async def test_an_execution_keeps_its_version_after_the_version_is_deleted(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE)
        await engine.update_flow(flow, TWO)
        await engine.start_execution(flow, {}, "kept", qualifier="1")
        await engine.delete_flow_version(flow, "1")
        kept = await engine.describe_execution(flow, "kept", wait_seconds=10)
        assert kept.flow_version == "1" and "name: one" in kept.flow_definition
        assert kept.output == {"ran": "one"}
        # Its number still filters the executions that ran it, though it is gone.
        listed = await engine.list_executions(flow, qualifier="1")
        assert [e.name for e in listed.items] == ["kept"]


@bounded
async def test_a_qualifier_that_names_nothing_is_refused_with_the_not_found_codes(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE)
        version = await refused(
            "FlowVersionNotExists", engine.start_execution(flow, {}, "a", qualifier="7")
        )
        assert "Qualifier '7'" in version.message and flow in version.message
        alias = await refused(
            "FlowAliasNotExists", engine.start_execution(flow, {}, "b", qualifier="prod")
        )
        assert alias.message == f"Qualifier 'prod' names no version or alias of flow '{flow}'"
        await refused(
            "FlowAliasNotExists", engine.start_execution(flow, {}, "c", qualifier="x" * 5000)
        )
        await refused("FlowVersionNotExists", engine.list_executions(flow, qualifier="7"))
        await refused("FlowAliasNotExists", engine.list_executions(flow, qualifier="prod"))
        assert (await engine.list_executions(flow)).items == []  # nothing was started


@bounded
async def test_list_executions_by_qualifier_pages_correctly(store_url, flow, monkeypatch):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        for i in range(9):  # x0 x3 x6 on version 1, the others on version 2
            await engine.start_execution(flow, {}, f"x{i}", qualifier="1" if i % 3 == 0 else "2")
        await engine.start_execution(flow, {}, "y")  # the current definition: no version
        names: list[str] = []
        token = ""
        while True:
            page = await engine.list_executions(flow, qualifier="1", limit=2, next_token=token)
            assert len(page.items) <= 2
            names += [e.name for e in page.items]
            assert all(e.flow_version == "1" for e in page.items)
            token = page.next_token
            if not token:
                break
        assert names == ["x0", "x3", "x6"]
        on_two = await engine.list_executions(flow, qualifier="2")
        assert [e.name for e in on_two.items] == ["x1", "x2", "x4", "x5", "x7", "x8"]
        # A page that reads its most without filling up says where the next one goes on.
        monkeypatch.setattr(versions, "_SCAN_BATCH", 2)
        monkeypatch.setattr(versions, "MAX_QUALIFIED_SCAN", 4)
        first = await engine.list_executions(flow, qualifier="1", limit=5)
        assert [e.name for e in first.items] == ["x0", "x3"] and first.next_token == "x3"
        rest = await engine.list_executions(flow, qualifier="1", next_token=first.next_token)
        assert [e.name for e in rest.items] == ["x6"]


@bounded
async def test_publishing_is_limited_and_so_is_a_description(store_url, flow, monkeypatch):
    monkeypatch.setattr(versions, "MAX_VERSIONS", 2)
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        full = await refused("InvalidArgument", engine.publish_flow_version(flow))
        assert "DeleteFlowVersion" in full.message
        await engine.delete_flow_version(flow, 1)
        assert (await engine.publish_flow_version(flow)).version == 3
        long = "d" * (version_records.MAX_DESCRIPTION_CHARS + 1)
        await refused("InvalidArgument", engine.publish_flow_version(flow, long))
        await refused("FlowNotExists", engine.publish_flow_version("nope_" + flow))


@bounded
async def test_publishes_at_once_get_distinct_numbers(store_url, flow):
    # Two engines on one store, as two replicas: the flow's row lock makes them take turns.
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, ONE)
        if store_url == "memory://":
            made = await asyncio.gather(*(engine.publish_flow_version(flow) for _ in range(8)))
        else:
            async with make_engine(store=store_url) as other:
                made = await asyncio.gather(
                    *(e.publish_flow_version(flow) for e in (engine, other) * 4)
                )
        assert sorted(v.version for v in made) == list(range(1, 9))
        listed = await engine.list_flow_versions(flow)
        assert [v.version for v in listed.items] == list(range(1, 9))


@bounded
async def test_deleting_the_flow_deletes_its_versions(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        await engine.delete_flow(flow)
        await engine.create_flow(flow, THREE)
        assert (await engine.list_flow_versions(flow)).items == []
        assert (await engine.publish_flow_version(flow)).version == 1


def test_the_sync_engine_takes_the_clients_qualifier_and_flow_version():
    from relayflow.engine import SyncEngine
    from relayflow.store import open_store

    with SyncEngine(open_store("memory://")) as engine:
        engine.create_flow("f", ONE)
        engine._call(engine.engine.publish_flow_version("f"))
        engine.update_flow("f", TWO)
        started = engine.start_execution("f", {}, "pinned", qualifier="1")
        assert started.flow_version == "1"
        assert "name: one" in engine.describe_flow("f", flow_version=1).definition
        assert [e.name for e in engine.iter_executions("f", qualifier="1")] == ["pinned"]
        assert engine.list_executions("f", qualifier="1").items[0].flow_version == "1"


STAGE = fdl("""
    - type: pass
      name: stage
      outputMappings:
        - target: stage
          source: $context.flow.environment.STAGE
""")


def env(stage: str) -> str:
    return json.dumps({"Variables": [{"Name": "STAGE", "Value": stage}]})


@bounded
async def test_an_execution_reads_the_environment_of_what_it_runs(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, STAGE, environment=env("blue"))
        await engine.publish_flow_version(flow)
        await engine.update_flow(flow, environment=env("green"))
        await engine.start_execution(flow, {}, "pinned", qualifier="1")
        await engine.start_execution(flow, {}, "current")
        pinned = await engine.describe_execution(flow, "pinned", wait_seconds=10)
        current = await engine.describe_execution(flow, "current", wait_seconds=10)
        assert pinned.output == {"stage": "blue"} and current.output == {"stage": "green"}
        assert pinned.environment == {"Variables": [{"Name": "STAGE", "Value": "blue"}]}
        assert current.to_api()["Environment"]["Variables"][0]["Value"] == "green"


def test_the_sync_engine_takes_a_flows_environment_and_mode():
    from relayflow.engine import SyncEngine
    from relayflow.store import open_store

    with SyncEngine(open_store("memory://")) as engine:
        made = engine.create_flow(
            "f", STAGE, environment={"STAGE": "red"}, execution_mode="Express"
        )
        assert made.execution_mode == "Express"
        assert engine.start_sync_execution("f").output == {"stage": "red"}
        engine.update_flow("f", environment={"STAGE": "pink"})
        assert engine.start_sync_execution("f").output == {"stage": "pink"}
