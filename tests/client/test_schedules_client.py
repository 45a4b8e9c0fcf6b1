"""The clients' schedule methods against a real server: typed `ScheduleInfo` answers."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.client import AsyncClient, Client, ClientError
from relayflow.flow_objects import ScheduleInfo
from tests.api_server import KEYS, ApiServer

FLOW = """version: v1
type: flow
steps:
  - type: pass
    name: noop
"""


def test_schedules_round_trip_through_the_sync_client(api_server: ApiServer) -> None:
    with Client(api_server.url, *KEYS["admin"], timeout=10) as client:
        client.create_flow("client-schedules", FLOW)
        made = client.create_schedule(
            "client-schedules",
            "nightly",
            "0 0 2 * * *",
            payload={"from": "client"},
            enable=False,
            description="every night",
        )
        assert isinstance(made, ScheduleInfo)
        assert (made.flow_name, made.schedule_name, made.cron_expression) == (
            "client-schedules",
            "nightly",
            "0 0 2 * * *",
        )
        assert made.enable is False and made.description == "every night"
        assert made.schedule_id and made.created > 0 and made.next_tick is None
        client.create_schedule("client-schedules", "hourly", "0 0 * * * *")

        described = client.describe_schedule("client-schedules", "nightly")
        assert described.schedule_id == made.schedule_id
        assert described.payload.replace(" ", "") == '{"from":"client"}'

        updated = client.update_schedule("client-schedules", "nightly", enable=True)
        assert updated.enable is True and updated.cron_expression == "0 0 2 * * *"

        page = client.list_schedules("client-schedules", limit=1)
        assert len(page.items) == 1 and page.next_token
        names = [s.schedule_name for s in client.iter_schedules("client-schedules", page_size=1)]
        assert sorted(names) == ["hourly", "nightly"]

        assert client.delete_schedule("client-schedules", "hourly")
        with pytest.raises(ClientError) as caught:
            client.describe_schedule("client-schedules", "hourly")
        assert caught.value.code == "ScheduleNotExists"
        with pytest.raises(ClientError) as caught:
            client.create_schedule("client-schedules", "five", "*/5 * * * *")
        assert caught.value.status == 400


def test_the_async_client_has_them_too(api_server: ApiServer) -> None:
    async def calls() -> list[str]:
        async with AsyncClient(api_server.url, *KEYS["admin"], timeout=10) as client:
            await client.create_flow("client-schedules-async", FLOW)
            await client.create_schedule("client-schedules-async", "a", "0 * * * * *")
            await client.update_schedule("client-schedules-async", "a", description="x")
            one = await client.describe_schedule("client-schedules-async", "a")
            assert one.description == "x"
            names = [s.schedule_name async for s in client.iter_schedules("client-schedules-async")]
            await client.delete_schedule("client-schedules-async", "a")
            page = await client.list_schedules("client-schedules-async")
            assert page.items == []
            return names

    assert asyncio.run(calls()) == ["a"]
