"""The clients send Qualifier (StartExecution, ListExecutions) and FlowVersion (DescribeFlow)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import httpx

from relayflow.client import AsyncClient, Client

EXECUTION = {"Name": "run", "FlowName": "orders", "Status": "Running", "Input": "{}"}
FLOW = {"Name": "orders", "Definition": "version: v1\ntype: flow\nsteps: []\n", "Type": "FDL"}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode()))
        self.sent.append(params)
        doc: dict[str, Any] = {"RequestId": "r"}
        if params["Action"] == "ListExecutions":
            doc.update(Executions=[], NextToken="")
        elif params["Action"] == "DescribeFlow":
            doc.update(FLOW)
        else:
            doc.update(EXECUTION)
        return httpx.Response(200, json=doc)


def test_the_sync_client_sends_qualifier_and_flow_version() -> None:
    recorder = Recorder()
    with Client("http://relayflow.test", transport=httpx.MockTransport(recorder.answer)) as c:
        c.start_execution("orders", {"id": 1}, name="run", qualifier="prod")
        c.list_executions("orders", qualifier="2")
        list(c.iter_executions("orders", qualifier="prod"))
        c.describe_flow("orders", flow_version=3)
        c.start_execution("orders", {"id": 1}, name="plain")
    sent = recorder.sent
    assert [s.get("Qualifier") for s in sent[:3]] == ["prod", "2", "prod"]
    assert sent[3]["FlowVersion"] == "3"
    assert "Qualifier" not in sent[4] and "FlowVersion" not in sent[4]


def test_the_async_client_sends_them_too() -> None:
    recorder = Recorder()

    async def calls() -> None:
        transport = httpx.MockTransport(recorder.answer)
        async with AsyncClient("http://relayflow.test", transport=transport) as client:
            await client.start_execution("orders", {}, qualifier="prod")
            await client.list_executions("orders", qualifier="prod")
            _ = [e async for e in client.iter_executions("orders", qualifier="alias")]
            await client.describe_flow("orders", flow_version="1")

    asyncio.run(calls())
    assert [s.get("Qualifier") for s in recorder.sent[:3]] == ["prod", "prod", "alias"]
    assert recorder.sent[3]["FlowVersion"] == "1"
