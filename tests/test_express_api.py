"""StartSyncExecution and Express flows over HTTP, on the session's real server, with both SDKs."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from alibabacloud_fnf20190315 import models
from alibabacloud_fnf20190315.client import Client as SdkClient
from alibabacloud_tea_openapi import utils_models as open_api
from aliyunsdkfnf.request.v20190315 import StartSyncExecutionRequest
from darabonba.runtime import RuntimeOptions

from relayflow.client import Client
from tests.api_server import KEYS, TOKEN_FLOW, ApiServer
from tests.engine.test_express import FAILS, FIVE

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def new_sdk(server: ApiServer) -> SdkClient:
    key_id, secret = KEYS["admin"]
    return SdkClient(
        open_api.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=server.endpoint,
            protocol="http",
            region_id="cn-hangzhou",
        )
    )


def refused(server: ApiServer, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    answer = server.rpc(params)
    assert answer.status_code >= 400, answer.text
    doc: dict[str, Any] = answer.json()
    return answer.status_code, doc


def express_flow(server: ApiServer, definition: str = FIVE) -> str:
    name = "x_" + uuid.uuid4().hex[:10]
    server.ok(
        {
            "Action": "CreateFlow",
            "Name": name,
            "Definition": definition,
            "Type": "FDL",
            "ExecutionMode": "Express",
        }
    )
    return name


def test_the_current_sdk_gets_output_and_errors_in_the_same_call(api_server: ApiServer) -> None:
    five, fails = express_flow(api_server), express_flow(api_server, FAILS)
    client = new_sdk(api_server)
    runtime = RuntimeOptions(autoretry=False, read_timeout=30_000)
    ok = client.start_sync_execution_with_options(
        models.StartSyncExecutionRequest(flow_name=five, execution_name="o1", input='{"n": 30}'),
        runtime,
    ).body
    assert (ok.status, json.loads(ok.output)) == ("Succeeded", {"n": 30, "size": "big"})
    assert ok.flow_name == five and re.fullmatch(f"o1:{UUID}", ok.name), ok.name
    assert ok.started_time and ok.stopped_time and ok.error_code is None
    bad = client.start_sync_execution_with_options(
        models.StartSyncExecutionRequest(flow_name=fails), runtime
    ).body
    assert (bad.status, bad.error_code, bad.error_message) == (
        "Failed",
        "Bad.Input",
        "the input was bad",
    )
    assert bad.output is None and re.fullmatch(UUID, bad.name)
    described = client.describe_execution_with_options(
        models.DescribeExecutionRequest(flow_name=five, execution_name=ok.name), runtime
    ).body
    assert (described.status, described.output) == ("Succeeded", ok.output)
    listed = client.list_executions_with_options(
        models.ListExecutionsRequest(flow_name=five), runtime
    ).body
    assert [e.name for e in listed.executions] == [ok.name]


def test_the_older_sdk_starts_synchronously_too(api_server: ApiServer) -> None:
    five = express_flow(api_server)
    request = StartSyncExecutionRequest.StartSyncExecutionRequest()
    request.set_FlowName(five)
    request.set_Input('{"n": 2}')
    answer = api_server.call(request)
    assert answer["Status"] == "Succeeded"
    assert json.loads(answer["Output"]) == {"n": 2, "size": "small"}
    assert set(answer) >= {"Name", "FlowName", "StartedTime", "StoppedTime", "RequestId"}


def test_a_qualifier_runs_a_published_version(api_server: ApiServer) -> None:
    five = express_flow(api_server)
    api_server.ok({"Action": "PublishFlowVersion", "FlowName": five})
    changed = FIVE.replace("source: small", "source: tiny")
    api_server.ok({"Action": "UpdateFlow", "Name": five, "Definition": changed})
    params = {"Action": "StartSyncExecution", "FlowName": five, "Input": '{"n": 1}'}
    assert json.loads(api_server.ok(params)["Output"])["size"] == "tiny"
    old = api_server.ok({**params, "Qualifier": "1"})
    assert (json.loads(old["Output"])["size"], old["FlowVersion"]) == ("small", "1")
    status, doc = refused(api_server, {**params, "Qualifier": "7"})
    assert (status, doc["Code"]) == (404, "FlowVersionNotExists")


def test_a_standard_flow_is_refused_with_the_services_code(api_server: ApiServer) -> None:
    name = "s_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": FIVE, "Type": "FDL"})
    status, doc = refused(api_server, {"Action": "StartSyncExecution", "FlowName": name})
    assert (status, doc["Code"]) == (400, "ActionNotSupported")
    assert "Standard execution is not supported" in doc["Message"]
    status, doc = refused(api_server, {"Action": "StartSyncExecution", "FlowName": "nope"})
    assert (status, doc["Code"]) == (404, "FlowNotExists")
    status, doc = refused(api_server, {"Action": "StartSyncExecution"})
    assert (status, doc["Code"]) == (400, "MissingParameter")


def test_express_refusals_at_create_and_start(api_server: ApiServer) -> None:
    five = express_flow(api_server)
    status, doc = refused(api_server, {"Action": "StartExecution", "FlowName": five})
    assert (status, doc["Code"]) == (400, "ActionNotSupported")
    params = {
        "Action": "CreateFlow",
        "Name": "cb_" + uuid.uuid4().hex[:10],
        "Definition": TOKEN_FLOW,
        "Type": "FDL",
        "ExecutionMode": "Express",
    }
    status, doc = refused(api_server, params)
    assert doc["Code"] == "InvalidDefinition" and "task step 'job'" in doc["Message"]


def test_relayflows_own_client_runs_an_express_flow(api_server: ApiServer) -> None:
    five, fails = express_flow(api_server), express_flow(api_server, FAILS)
    key_id, secret = KEYS["admin"]
    with Client(api_server.url, access_key_id=key_id, access_key_secret=secret) as client:
        ok = client.start_sync_execution(five, {"n": 11}, "c")
        bad = client.start_sync_execution(fails)
        assert (ok.status, ok.output) == ("Succeeded", {"n": 11, "size": "big"})
        assert re.fullmatch(f"c:{UUID}", ok.name)
        assert (bad.status, bad.error, bad.cause) == ("Failed", "Bad.Input", "the input was bad")
        assert client.describe_execution(five, ok.name).output == ok.output
