"""Versions, aliases and Qualifier over the API, as the current official SDK sends and reads them.

One path runs through `alibabacloud-fnf20190315`'s client (its RoutingConfigurations go as
JSON text, its models read the answers); the refusals are checked on the raw answer (code,
HTTP status, one sentence). All against the session's shared server (`api_server`), but for
the last test, which runs two replicas on one PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from alibabacloud_fnf20190315.client import Client
from alibabacloud_tea_openapi import utils_models as open_api
from darabonba.runtime import RuntimeOptions

from tests.api_server import KEYS, ApiServer, config_text, serving
from tests.test_replica_api import at_once

ONE = """version: v1
type: flow
steps:
  - type: pass
    name: one
    outputMappings:
      - target: ran
        source: "one"
"""
TWO = ONE.replace("one", "two")
SPLIT = '[{"Version": "1", "Weight": 30}, {"Version": "2", "Weight": 70}]'


def sdk(server: ApiServer) -> Client:
    key_id, secret = KEYS["admin"]
    return Client(
        open_api.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=server.endpoint,
            protocol="http",
            region_id="cn-hangzhou",
        )
    )


RUNTIME = RuntimeOptions(autoretry=False, read_timeout=30_000)


@pytest.fixture
def flow(api_server: ApiServer) -> str:
    """A flow with versions 1 (ONE) and 2 (TWO) published; its current definition is TWO."""
    name = "v_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": ONE, "Type": "FDL"})
    api_server.ok({"Action": "PublishFlowVersion", "FlowName": name, "Description": "first"})
    api_server.ok({"Action": "UpdateFlow", "Name": name, "Definition": TWO})
    api_server.ok({"Action": "PublishFlowVersion", "FlowName": name})
    return name


def refused(server: ApiServer, params: dict[str, str], role: str = "admin") -> dict[str, Any]:
    answer = server.rpc(params, role)
    assert answer.status_code >= 400, answer.text
    doc: dict[str, Any] = answer.json()
    doc["Status"] = answer.status_code
    return doc


def test_the_current_sdk_publishes_routes_and_starts_by_alias(api_server: ApiServer) -> None:
    client = sdk(api_server)
    name = "sdk_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": ONE, "Type": "FDL"})
    first = client.publish_flow_version_with_options(
        models.PublishFlowVersionRequest(flow_name=name, description="first"), RUNTIME
    ).body
    assert (first.version, first.flow_name, first.description) == ("1", name, "first")
    assert first.created_time.endswith("Z")
    api_server.ok({"Action": "UpdateFlow", "Name": name, "Definition": TWO})
    client.publish_flow_version_with_options(
        models.PublishFlowVersionRequest(flow_name=name), RUNTIME
    )
    listed = client.list_flow_versions_with_options(
        models.ListFlowVersionsRequest(flow_name=name, limit="1"), RUNTIME
    ).body
    assert [v.version for v in listed.flow_versions] == ["1"] and listed.next_token == "1"

    route = models.CreateFlowAliasRequestRoutingConfigurations
    made = client.create_flow_alias_with_options(
        models.CreateFlowAliasRequest(
            flow_name=name,
            name="prod",
            description="live",
            routing_configurations=[route(version="1", weight=0), route(version="2", weight=100)],
        ),
        RUNTIME,
    ).body
    assert made.name == "prod" and [(r.version, r.weight) for r in made.routing_configurations] == [
        ("1", 0),
        ("2", 100),
    ]
    alias = client.describe_flow_alias_with_options(
        models.DescribeFlowAliasRequest(flow_name=name, name="prod"), RUNTIME
    ).body.alias
    assert alias.description == "live" and alias.routing_configurations[1].weight == 100

    started = client.start_execution_with_options(
        models.StartExecutionRequest(flow_name=name, execution_name="run", qualifier="prod"),
        RUNTIME,
    ).body
    assert "name: two" in started.flow_definition
    done = api_server.ok(
        {
            "Action": "DescribeExecution",
            "FlowName": name,
            "ExecutionName": "run",
            "WaitTimeSeconds": "10",
        }
    )
    assert done["FlowVersion"] == "2" and json.loads(done["Output"]) == {"ran": "two"}
    by_version = client.list_executions_with_options(
        models.ListExecutionsRequest(flow_name=name, qualifier="2"), RUNTIME
    ).body
    assert [e.name for e in by_version.executions] == ["run"]

    moved = client.update_flow_alias_with_options(
        models.UpdateFlowAliasRequest(
            flow_name=name,
            name="prod",
            routing_configurations=[
                models.UpdateFlowAliasRequestRoutingConfigurations(version="1", weight=100)
            ],
        ),
        RUNTIME,
    ).body.alias
    assert [(r.version, r.weight) for r in moved.routing_configurations] == [("1", 100)]
    aliases = client.list_flow_aliases_with_options(
        models.ListFlowAliasesRequest(flow_name=name), RUNTIME
    ).body
    assert [a.name for a in aliases.aliases] == ["prod"]
    client.delete_flow_version_with_options(
        models.DeleteFlowVersionRequest(flow_name=name, flow_version="2"), RUNTIME
    )
    client.delete_flow_alias_with_options(
        models.DeleteFlowAliasRequest(flow_name=name, name="prod"), RUNTIME
    )
    client.delete_flow_version_with_options(
        models.DeleteFlowVersionRequest(flow_name=name, flow_version="1"), RUNTIME
    )
    assert api_server.ok({"Action": "ListFlowVersions", "FlowName": name})["FlowVersions"] == []


def test_describe_flow_with_a_version_answers_that_versions_definition(
    api_server: ApiServer, flow: str
) -> None:
    old = api_server.ok({"Action": "DescribeFlow", "Name": flow, "FlowVersion": "1"})
    assert "name: one" in old["Definition"] and old["Name"] == flow
    assert "name: two" in api_server.ok({"Action": "DescribeFlow", "Name": flow})["Definition"]
    missing = refused(api_server, {"Action": "DescribeFlow", "Name": flow, "FlowVersion": "9"})
    assert (missing["Code"], missing["Status"]) == ("FlowVersionNotExists", 404)
    assert missing["Message"] == f"Flow version '9' does not exist in flow '{flow}'"


def test_bad_weights_get_invalid_argument_with_their_sum(api_server: ApiServer, flow: str) -> None:
    doc = refused(
        api_server,
        {
            "Action": "CreateFlowAlias",
            "FlowName": flow,
            "Name": "prod",
            "RoutingConfigurations": '[{"Version":"1","Weight":50},{"Version":"2","Weight":40}]',
        },
    )
    assert (doc["Code"], doc["Status"]) == ("InvalidArgument", 400)
    assert doc["Message"] == (
        "the Weights in RoutingConfigurations must add up to 100, they add up to 90"
    )
    missing = refused(api_server, {"Action": "CreateFlowAlias", "FlowName": flow, "Name": "p"})
    assert missing["Code"] == "MissingParameter" and "RoutingConfigurations" in missing["Message"]


def test_a_qualifier_naming_nothing_gets_not_found(api_server: ApiServer, flow: str) -> None:
    start = {"Action": "StartExecution", "FlowName": flow}
    alias = refused(api_server, {**start, "Qualifier": "blue"})
    assert (alias["Code"], alias["Status"]) == ("FlowAliasNotExists", 404)
    assert alias["Message"] == f"Qualifier 'blue' names no version or alias of flow '{flow}'"
    version = refused(api_server, {**start, "Qualifier": "5"})
    assert (version["Code"], version["Status"]) == ("FlowVersionNotExists", 404)
    listing = refused(api_server, {"Action": "ListExecutions", "FlowName": flow, "Qualifier": "5"})
    assert listing["Code"] == "FlowVersionNotExists"


def test_a_routed_version_cannot_be_deleted(api_server: ApiServer, flow: str) -> None:
    api_server.ok(
        {
            "Action": "CreateFlowAlias",
            "FlowName": flow,
            "Name": "prod",
            "RoutingConfigurations": SPLIT,
        }
    )
    doc = refused(api_server, {"Action": "DeleteFlowVersion", "FlowName": flow, "FlowVersion": "1"})
    assert (doc["Code"], doc["Status"]) == ("FlowVersionInUse", 409)
    assert "alias 'prod'" in doc["Message"]
    described = api_server.ok({"Action": "DescribeFlowAlias", "FlowName": flow, "Name": "prod"})
    body = models.DescribeFlowAliasResponseBody().from_map({**described, "RequestId": "r"})
    assert [(r.version, r.weight) for r in body.alias.routing_configurations] == [
        ("1", 30),
        ("2", 70),
    ]


def test_readers_list_and_describe_but_do_not_change(api_server: ApiServer, flow: str) -> None:
    listed = api_server.ok({"Action": "ListFlowVersions", "FlowName": flow}, role="reader")
    assert [v["Version"] for v in listed["FlowVersions"]] == ["1", "2"]
    assert listed["FlowVersions"][0]["Description"] == "first"
    assert api_server.ok({"Action": "ListFlowAliases", "FlowName": flow}, role="reader") == {
        "Aliases": [],
        "NextToken": "",
    }
    doc = refused(api_server, {"Action": "PublishFlowVersion", "FlowName": flow}, role="reader")
    assert doc["Status"] == 403


# -- two replicas on one PostgreSQL database ---------------------------------------------------


@pytest.fixture(scope="module")
def replicas(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two servers on one fresh PostgreSQL database, as two replicas behind a balancer."""
    from tests.services import fresh_database

    with fresh_database(postgres_url, "rf_versions_api") as database:
        config = config_text(keys=KEYS).replace("sqlite:///relayflow.db", database)
        with contextlib.ExitStack() as stack:
            a, b = (
                stack.enter_context(serving(tmp_path_factory.mktemp(f"replica-{n}"), config))
                for n in ("a", "b")
            )
            yield a, b


def test_replicas_publish_distinct_numbers_and_share_aliases(
    replicas: tuple[ApiServer, ApiServer],
) -> None:
    a, b = replicas
    name = "rv_" + uuid.uuid4().hex[:10]
    a.ok({"Action": "CreateFlow", "Name": name, "Definition": ONE, "Type": "FDL"})
    publish = {"Action": "PublishFlowVersion", "FlowName": name}
    made: list[str] = []
    for _ in range(4):  # each round: one publish on each replica, released together
        made += [doc["Version"] for doc in at_once(lambda: a.ok(publish), lambda: b.ok(publish))]
    assert sorted(made, key=int) == [str(n) for n in range(1, 9)]

    b.ok(
        {
            "Action": "CreateFlowAlias",
            "FlowName": name,
            "Name": "prod",
            "RoutingConfigurations": '[{"Version": "8", "Weight": 100}]',
        }
    )
    a.ok({"Action": "StartExecution", "FlowName": name, "ExecutionName": "r", "Qualifier": "prod"})
    shown = b.ok(
        {
            "Action": "DescribeExecution",
            "FlowName": name,
            "ExecutionName": "r",
            "WaitTimeSeconds": "10",
        }
    )
    assert shown["FlowVersion"] == "8" and shown["Status"] == "Succeeded"
    in_use = a.rpc({"Action": "DeleteFlowVersion", "FlowName": name, "FlowVersion": "8"})
    assert in_use.status_code == 409 and in_use.json()["Code"] == "FlowVersionInUse"
