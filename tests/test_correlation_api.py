"""ReportTaskSucceeded and ReportTaskFailed by FlowName and CorrelationKey, over HTTP.

Against real servers: the session's (SQLite) and one of this module's on PostgreSQL. Checked:
both forms of naming a task, the refusal of both or neither, the worker role, the second report
of a key, the official SDK's request with the two extra parameters, and relayflow's clients.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aliyunsdkfnf.request.v20190315 import ReportTaskSucceededRequest

from relayflow.client import AsyncClient, Client, ClientError
from tests.api_server import KEYS, QUEUE_ARN, ApiServer, config_text, serving

KEYED = f"""version: v1
type: flow
steps:
  - type: task
    name: pay
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    correlationKey: $.orderId
    inputMappings:
      - target: orderId
        source: $input.order.id
      - target: taskToken
        source: $context.task.token
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The session's server (SQLite), or one of this module's on a PostgreSQL database."""
    if request.param == "sqlite":
        yield request.getfixturevalue("api_server")
        return
    pytest.importorskip("psycopg")
    from tests.services import fresh_database

    pg = request.getfixturevalue("postgres_url")
    with fresh_database(pg, "correlation_api_" + uuid.uuid4().hex[:10]) as url:
        config = config_text(keys=KEYS).replace('"sqlite:///relayflow.db"', f'"{url}"')
        with serving(tmp_path_factory.mktemp("correlation-pg"), config) as running:
            yield running


def new_flow(server: ApiServer) -> str:
    name = "corr_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": name, "Definition": KEYED, "Type": "FDL"})
    return name


def start(server: ApiServer, flow: str, name: str, order: Any) -> dict[str, Any]:
    """Start an execution for ``order`` and return the message its task sent."""
    params = {
        "Action": "StartExecution",
        "FlowName": flow,
        "ExecutionName": name,
        "Input": json.dumps({"order": {"id": order}}),
    }
    server.ok(params)
    return server.wait_messages(flow, name)[0]


def refused(answer: httpx.Response, code: str, status: int) -> str:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    message: str = answer.json()["Message"]
    assert message and "\n" not in message
    return message


def ended(server: ApiServer, flow: str, name: str) -> dict[str, Any]:
    params = {
        "Action": "DescribeExecution",
        "FlowName": flow,
        "ExecutionName": name,
        "WaitTimeSeconds": "10",
    }
    doc = server.ok(params)
    assert doc["Status"] != "Running", doc
    return doc


def test_a_worker_reports_by_key_and_the_first_report_wins(server: ApiServer) -> None:
    flow = new_flow(server)
    message = start(server, flow, "o-1", "A-1")
    assert message["input"]["orderId"] == "A-1"
    succeed = {"Action": "ReportTaskSucceeded", "FlowName": flow, "CorrelationKey": "A-1"}
    doc = server.ok({**succeed, "Output": '{"paid": true}'}, role="worker")
    history = {e["EventId"]: e for e in server.history(flow, "o-1")}
    assert history[doc["EventId"]]["Type"] == "TaskSucceeded"
    assert json.loads(ended(server, flow, "o-1")["Output"]) == {"paid": True}

    again = server.rpc({**succeed, "Output": "{}"}, role="worker")
    assert "A-1" in refused(again, "CorrelationKeyNotExists", 404)
    by_token = {"Action": "ReportTaskFailed", "TaskToken": message["token"], "Error": "Late"}
    refused(server.rpc(by_token, role="worker"), "TaskAlreadyCompleted", 409)


def test_report_failed_by_key_and_by_token_after_it(server: ApiServer) -> None:
    flow = new_flow(server)
    message = start(server, flow, "o-2", 42)  # an integer key: reported as text
    failed = {"Action": "ReportTaskFailed", "FlowName": flow, "CorrelationKey": "42"}
    doc = server.ok({**failed, "Error": "Card.Declined", "Cause": "no funds"}, role="worker")
    assert doc["EventId"] > 0
    done = ended(server, flow, "o-2")
    assert (done["Status"], done["Error"]) == ("Failed", "Card.Declined")
    late = {"Action": "ReportTaskSucceeded", "TaskToken": message["token"], "Output": "{}"}
    refused(server.rpc(late, role="worker"), "TaskAlreadyCompleted", 409)


@pytest.mark.parametrize(
    "target",
    [
        {"TaskToken": "t", "FlowName": "f", "CorrelationKey": "k"},
        {"TaskToken": "t", "CorrelationKey": "k"},
        {},
        {"FlowName": "f"},
        {"CorrelationKey": "k"},
    ],
)
def test_both_forms_or_neither_or_half_is_refused(
    server: ApiServer, target: dict[str, str]
) -> None:
    for action, more in (
        ("ReportTaskSucceeded", {"Output": "{}"}),
        ("ReportTaskFailed", {"Error": "E"}),
    ):
        answer = server.rpc({"Action": action, **target, **more}, role="worker")
        message = refused(answer, "InvalidArgument", 400)
        assert "CorrelationKey" in message
        assert ("TaskToken" in message) or ("FlowName" in message)


def test_unknown_keys_and_flows_and_bad_keys_are_refused(server: ApiServer) -> None:
    flow = new_flow(server)
    params = {"Action": "ReportTaskSucceeded", "FlowName": flow, "Output": "{}"}
    refused(server.rpc({**params, "CorrelationKey": "nobody"}), "CorrelationKeyNotExists", 404)
    gone = {**params, "FlowName": flow + "_gone", "CorrelationKey": "k"}
    refused(server.rpc(gone), "FlowNotExists", 404)
    long_key = {**params, "CorrelationKey": "k" * 129}
    assert "128" in refused(server.rpc(long_key), "InvalidArgument", 400)
    reader = server.rpc({**params, "CorrelationKey": "k"}, role="reader")
    assert reader.status_code == 403, reader.text


def test_the_sdk_request_with_flow_name_and_correlation_key(server: ApiServer) -> None:
    flow = new_flow(server)
    start(server, flow, "o-3", "sdk-1")
    request = ReportTaskSucceededRequest.ReportTaskSucceededRequest()
    request.set_Output('{"via": "sdk"}')
    request.add_query_param("FlowName", flow)
    request.add_query_param("CorrelationKey", "sdk-1")
    assert server.call(request, role="worker")["EventId"] > 0
    assert json.loads(ended(server, flow, "o-3")["Output"]) == {"via": "sdk"}


def test_relayflows_clients_report_by_key(server: ApiServer) -> None:
    flow = new_flow(server)
    start(server, flow, "o-4", "c-1")
    start(server, flow, "o-5", "c-2")
    key_id, secret = KEYS["worker"]
    with Client(server.url, key_id, secret) as client:
        client.report_task_succeeded(output={"n": 1}, flow_name=flow, correlation_key="c-1")
        with pytest.raises(ClientError) as info:
            client.report_task_failed(error="E", flow_name=flow, correlation_key="c-1")
        assert info.value.code == "CorrelationKeyNotExists"
        with pytest.raises(ValueError, match="not both"):
            client.report_task_succeeded("token", {}, flow_name=flow, correlation_key="c-1")
        with pytest.raises(ValueError, match="give both"):
            client.report_task_succeeded(output={}, flow_name=flow)

    async def report() -> int:
        async with AsyncClient(server.url, key_id, secret) as client:
            return await client.report_task_failed(
                error="Out.Of.Stock", flow_name=flow, correlation_key="c-2"
            )

    assert asyncio.run(report()) > 0
    assert json.loads(ended(server, flow, "o-4")["Output"]) == {"n": 1}
    assert ended(server, flow, "o-5")["Error"] == "Out.Of.Stock"
