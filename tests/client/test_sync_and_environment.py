"""The clients' StartSyncExecution, ExecutionMode and Environment against a real server."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.client import AsyncClient, Client, ClientError
from tests.api_server import KEYS, ApiServer

PASSING = """version: v1
type: flow
steps:
  - type: pass
    name: hello
    outputMappings:
      - target: greeting
        source: $input.name
"""
FAILING = """version: v1
type: flow
steps:
  - type: fail
    name: nope
    error: Demo.Broken
    cause: it was meant to fail
"""


def admin(server: ApiServer) -> Client:
    return Client(server.url, *KEYS["admin"], timeout=10)


def test_start_sync_execution_returns_the_ended_run(api_server: ApiServer) -> None:
    with admin(api_server) as client:
        flow = client.create_flow(
            "sync-client", PASSING, execution_mode="Express", environment={"STAGE": "test"}
        )
        assert flow.raw.get("ExecutionMode") == "Express"
        assert client.describe_flow("sync-client").raw.get("Environment")
        done = client.start_sync_execution("sync-client", {"name": "ada"}, name="first")
        assert done.status == "Succeeded" and done.output == {"greeting": "ada"}
        assert done.name.startswith("first")

        client.create_flow("sync-fails", FAILING, execution_mode="Express")
        failed = client.start_sync_execution("sync-fails")
        assert failed.status == "Failed"
        assert (failed.error, failed.cause) == ("Demo.Broken", "it was meant to fail")

        client.create_flow("sync-standard", PASSING)
        with pytest.raises(ClientError) as caught:
            client.start_sync_execution("sync-standard", {})
        assert caught.value.code == "ActionNotSupported", caught.value

    async def from_async() -> str:
        async with AsyncClient(api_server.url, *KEYS["admin"], timeout=10) as client:
            return (await client.start_sync_execution("sync-client", {"name": "bo"})).status

    assert asyncio.run(from_async()) == "Succeeded"


def test_update_flow_sends_the_variables(api_server: ApiServer) -> None:
    with admin(api_server) as client:
        client.create_flow("env-client", PASSING)
        client.update_flow("env-client", environment={"REGION": "local", "LEVEL": "2"})
        environment = client.describe_flow("env-client").raw["Environment"]
    names = {v["Name"]: v["Value"] for v in environment["Variables"]}
    assert names == {"REGION": "local", "LEVEL": "2"}
    with pytest.raises(TypeError):
        Client("http://x").update_flow("f", environment=["REGION"])  # type: ignore[arg-type]


def test_request_calls_any_action_by_name(api_server: ApiServer) -> None:
    with admin(api_server) as client:
        regions = client.request("DescribeRegions")
        assert regions["Regions"]["Region"][0]["RegionId"] == "local"
        assert regions["RequestId"]
        client.create_flow("request-flow", PASSING)
        made = client.request(
            "CreateSchedule",
            {
                "FlowName": "request-flow",
                "ScheduleName": "nightly",
                "CronExpression": "0 0 2 * * *",
                "Payload": {"from": "request"},
                "Enable": False,
                "Description": None,  # left out
            },
        )
        assert made["ScheduleName"] == "nightly"
        described = client.request(
            "DescribeSchedule", {"FlowName": "request-flow", "ScheduleName": "nightly"}
        )
        assert described["Enable"] is False
        assert described["Payload"] in ('{"from":"request"}', {"from": "request"})
        with pytest.raises(ClientError) as caught:
            client.request("DescribeSchedule", {"FlowName": "request-flow", "ScheduleName": "x"})
        assert caught.value.code == "ScheduleNotExists"

    async def from_async() -> str:
        async with AsyncClient(api_server.url, *KEYS["admin"], timeout=10) as client:
            doc = await client.request("DescribeRegions")
            return str(doc["Regions"]["Region"][0]["RegionEndpoint"])

    assert asyncio.run(from_async()) == f"127.0.0.1:{api_server.port}"
    with pytest.raises(ValueError):
        Client("http://x").request("")
    with pytest.raises(TypeError):
        Client("http://x").request("DescribeFlow", {"Name": object()})
