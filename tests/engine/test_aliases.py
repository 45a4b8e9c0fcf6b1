"""Flow aliases: routing by weight, their checks, and the versions they protect from deletion.

The engine tests run on SQLite and PostgreSQL (`store_url`, from tests/engine/test_versions.py);
the routing draws from a seeded random source, so what it picks is known in advance.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from relayflow.engine import version_records, versions
from relayflow.engine.version_records import Route, parse_routes
from relayflow.engine.versions import pick_route
from relayflow.errors import EngineError
from relayflow.testing import bounded, make_engine
from tests.engine.test_versions import ONE, THREE, TWO, flow, published, refused, store_url

__all__ = ["flow", "store_url"]  # fixtures shared with test_versions

SPLIT = '[{"Version": "1", "Weight": 30}, {"Version": "2", "Weight": 70}]'


# -- the routing configuration, as text or as a list ------------------------------------------


def test_routing_configurations_read_as_the_sdk_sends_them():
    assert parse_routes(SPLIT) == (Route(1, 30), Route(2, 70))
    assert parse_routes([{"Version": 3, "Weight": "100"}]) == (Route(3, 100),)
    assert parse_routes([Route(1, 0), Route(2, 100)]) == (Route(1, 0), Route(2, 100))
    assert [r.to_api() for r in parse_routes(SPLIT)] == json.loads(SPLIT)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ('[{"Version": "1", "Weight": 60}, {"Version": "2", "Weight": 30}]', "add up to 90"),
        ('[{"Version": "1", "Weight": 101}]', "from 0 to 100"),
        ('[{"Version": "1", "Weight": -5}, {"Version": "2", "Weight": 105}]', "from 0 to 100"),
        ('[{"Version": "1", "Weight": 1.5}]', "Weight must be a whole number"),
        ('[{"Version": "x", "Weight": 100}]', "RoutingConfigurations[0].Version"),
        ('[{"Version": "0", "Weight": 100}]', "from 1 to"),
        ('[{"Weight": 100}]', "RoutingConfigurations[0] must be an object"),
        ('[{"Version": "1", "Weight": 50}, {"Version": "1", "Weight": 50}]', "version 1 twice"),
        ("[]", "a list of 1 or 2 objects"),
        ('{"Version": "1"}', "a list of 1 or 2 objects"),
        ("not json", "not valid JSON"),
        (json.dumps([{"Version": str(v), "Weight": 25} for v in (1, 2, 3, 4)]), "at most 2"),
        ("[" + " " * version_records.MAX_ROUTING_CHARS + "]", "at most 4096 characters"),
    ],
)
def test_bad_routing_configurations_are_refused_with_what_is_wrong(given, words):
    with pytest.raises(EngineError) as info:
        parse_routes(given)
    assert info.value.code == "InvalidArgument"
    assert words in info.value.message


def test_each_version_gets_its_weights_share_of_the_draws():
    routes = (Route(1, 30), Route(2, 70))
    picked = Counter(pick_route(routes, draw) for draw in range(100))
    assert picked == {1: 30, 2: 70}
    assert {pick_route((Route(1, 0), Route(2, 100)), d) for d in range(100)} == {2}


# -- aliases in the engine -----------------------------------------------------------------------


@bounded
async def test_an_alias_is_created_described_listed_updated_and_deleted(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        made = await engine.create_flow_alias(flow, "prod", SPLIT, "live traffic")
        doc = made.to_api()
        assert doc["Name"] == "prod" and doc["Description"] == "live traffic"
        assert doc["RoutingConfigurations"] == [
            {"Version": "1", "Weight": 30},
            {"Version": "2", "Weight": 70},
        ]
        assert (await engine.describe_flow_alias(flow, "prod")).routes == made.routes
        await engine.create_flow_alias(flow, "canary", [{"Version": "2", "Weight": 100}])
        first = await engine.list_flow_aliases(flow, limit=1)
        assert [a.name for a in first.items] == ["canary"] and first.next_token == "canary"
        rest = await engine.list_flow_aliases(flow, next_token=first.next_token)
        assert [a.name for a in rest.items] == ["prod"] and rest.next_token == ""

        moved = await engine.update_flow_alias(flow, "prod", '[{"Version": "2", "Weight": 100}]')
        assert moved.routes == (Route(2, 100),) and moved.description == "live traffic"
        assert moved.created_time == made.created_time
        renamed = await engine.update_flow_alias(flow, "prod", description="all on 2")
        assert renamed.routes == (Route(2, 100),) and renamed.description == "all on 2"

        await engine.delete_flow_alias(flow, "prod")
        gone = await refused("FlowAliasNotExists", engine.describe_flow_alias(flow, "prod"))
        assert gone.message == f"Flow alias 'prod' does not exist in flow '{flow}'"
        await refused("FlowAliasNotExists", engine.delete_flow_alias(flow, "prod"))
        await refused("FlowAliasNotExists", engine.update_flow_alias(flow, "prod", SPLIT))
        await refused("FlowNotExists", engine.describe_flow_alias("nope_" + flow, "canary"))
        await refused("FlowNotExists", engine.list_flow_aliases("nope_" + flow))


@bounded
async def test_an_alias_starts_the_version_its_weights_pick(store_url, flow):
    seed = 20261202
    async with make_engine(store=store_url, routing_random=random.Random(seed)) as engine:
        await published(engine, flow, ONE, TWO)
        await engine.update_flow(flow, THREE)
        await engine.create_flow_alias(flow, "prod", SPLIT)
        ran = []
        for i in range(40):
            started = await engine.start_execution(flow, {}, f"run{i}", qualifier="prod")
            ran.append(started.flow_version)
        draws = random.Random(seed)
        routes = parse_routes(SPLIT)
        assert ran == [str(pick_route(routes, draws.randrange(100))) for _ in range(40)]
        assert set(ran) == {"1", "2"}
        last = await engine.describe_execution(flow, "run39", wait_seconds=10)
        assert last.output == {"ran": "one" if ran[-1] == "1" else "two"}
        # The alias lists the executions of the versions it routes to.
        listed = await engine.list_executions(flow, qualifier="prod", limit=100)
        assert len(listed.items) == 40


@bounded
async def test_a_version_an_alias_routes_to_cannot_be_deleted(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE, TWO)
        await engine.create_flow_alias(flow, "prod", SPLIT)
        await engine.create_flow_alias(
            flow, "zero", '[{"Version":"2","Weight":0},{"Version":"1","Weight":100}]'
        )
        in_use = await refused("FlowVersionInUse", engine.delete_flow_version(flow, "2"))
        assert "'prod', 'zero'" in in_use.message and "version 2" in in_use.message
        assert in_use.status == 409
        await engine.update_flow_alias(flow, "prod", '[{"Version": "1", "Weight": 100}]')
        await engine.delete_flow_alias(flow, "zero")
        await engine.delete_flow_version(flow, "2")
        assert [v.version for v in (await engine.list_flow_versions(flow)).items] == [1]


@bounded
async def test_an_alias_routes_only_to_published_versions(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE)
        unknown = await refused(
            "FlowVersionNotExists", engine.create_flow_alias(flow, "prod", SPLIT)
        )
        assert "version 2" in unknown.message
        await engine.create_flow_alias(flow, "prod", '[{"Version": "1", "Weight": 100}]')
        await refused("FlowVersionNotExists", engine.update_flow_alias(flow, "prod", SPLIT))
        taken = await refused(
            "FlowAliasAlreadyExists",
            engine.create_flow_alias(flow, "prod", '[{"Version": "1", "Weight": 100}]'),
        )
        assert taken.message == f"Flow alias 'prod' already exists in flow '{flow}'"
        # A name that would read as a version number is not an alias's name.
        await refused(
            "InvalidArgument",
            engine.create_flow_alias(flow, "12", '[{"Version": "1", "Weight": 100}]'),
        )
        await refused("InvalidArgument", engine.create_flow_alias(flow, "p", "[]"))
        await refused("FlowNotExists", engine.create_flow_alias("nope_" + flow, "p", SPLIT))


@bounded
async def test_aliases_are_limited_per_flow(store_url, flow, monkeypatch):
    monkeypatch.setattr(versions, "MAX_ALIASES", 2)
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE)
        only = '[{"Version": "1", "Weight": 100}]'
        await engine.create_flow_alias(flow, "a", only)
        await engine.create_flow_alias(flow, "b", only)
        full = await refused("InvalidArgument", engine.create_flow_alias(flow, "c", only))
        assert "2 aliases" in full.message


@bounded
async def test_deleting_the_flow_deletes_its_aliases(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await published(engine, flow, ONE)
        await engine.create_flow_alias(flow, "prod", '[{"Version": "1", "Weight": 100}]')
        await engine.delete_flow(flow)
        await engine.create_flow(flow, ONE)
        assert (await engine.list_flow_aliases(flow)).items == []
