"""The async client against the fake server."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.client import AsyncClient, ClientError
from tests.client.fake_server import DEFINITION, KEY_ID, SECRET, free_port


def test_async_client(fake):
    async def main() -> None:
        async with AsyncClient(fake.url, KEY_ID, SECRET, timeout=5) as c:
            flow = await c.create_flow("orders", DEFINITION)
            assert flow.name == "orders"
            run = await c.start_execution("orders", {"id": 7}, name="order-7")
            assert run.status == "Running"
            done = await c.wait_for_execution("orders", "order-7")
            assert done.output == {"id": 7, "ok": True}
            events = [e async for e in c.iter_history("orders", "order-7")]
            assert [e.type for e in events] == ["ExecutionStarted", "StepEntered"]
            assert [e.name async for e in c.iter_executions("orders")] == ["a", "b"]
            assert [f.name async for f in c.iter_flows()] == ["orders", "refunds"]
            assert (await c.stop_execution("orders", "order-7")).status == "Stopped"
            assert await c.report_task_succeeded("tok", {"a": 1}) == 12
            assert await c.report_task_failed("tok", "E", "c") == 12
            assert (await c.update_flow("orders", description="d")).name == "orders"
            assert (await c.describe_flow("orders")).id
            assert len(await c.list_flows()) == 2
            assert len(await c.list_executions("orders", status="Running")) == 2
            assert (await c.get_execution_history("orders", "order-7", limit=5)).last
            await c.delete_flow("orders")
            fake.fail("DescribeExecution", 404, "ExecutionNotExists")
            with pytest.raises(ClientError) as info:
                await c.describe_execution("orders", "nope", wait_seconds=5)
            assert (info.value.code, info.value.status) == ("ExecutionNotExists", 404)
        async with AsyncClient(f"http://127.0.0.1:{free_port()}") as c:
            with pytest.raises(ClientError) as info:
                await c.list_flows()
            assert info.value.code == "ConnectionFailed"

    asyncio.run(main())
    assert fake.last("DescribeExecution").params["WaitTimeSeconds"] == "5"
    assert fake.last("ReportTaskFailed").params == {"TaskToken": "tok", "Error": "E", "Cause": "c"}
    assert fake.last("ListExecutions").params == {"FlowName": "orders", "Status": "Running"}
