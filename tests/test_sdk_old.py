"""Every request class of the OLD official SDK, `aliyun-python-sdk-fnf` 1.8.3, against a real server.

`AcsClient` with `request.set_endpoint(...)` and `set_protocol_type(...)`, over HTTP and over
HTTPS with a private CA (`AcsClient(..., verify=ca_file)`); one server per protocol for the
module. The SDK ships 18 request classes (no versions, aliases, regions or map runs, which came
later); each is sent here with its setters, as its users write them. The old SDK sends
booleans as Python writes them (`Enable=True`), which the server reads case-insensitively.
tests/test_api_sdk.py drives the first twelve in depth over HTTP; this module covers all 18 on
both protocols.
"""

from __future__ import annotations

import json
import pkgutil
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aliyunsdkfnf.request.v20190315 as requests_package
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import RpcRequest
from aliyunsdkfnf.request.v20190315 import (
    CreateFlowRequest,
    CreateScheduleRequest,
    DeleteFlowRequest,
    DeleteScheduleRequest,
    DescribeExecutionRequest,
    DescribeFlowRequest,
    DescribeScheduleRequest,
    GetExecutionHistoryRequest,
    ListExecutionsRequest,
    ListFlowsRequest,
    ListSchedulesRequest,
    ReportTaskFailedRequest,
    ReportTaskSucceededRequest,
    StartExecutionRequest,
    StartSyncExecutionRequest,
    StopExecutionRequest,
    UpdateFlowRequest,
    UpdateScheduleRequest,
)

from tests.api_server import TOKEN_FLOW
from tests.sdk_servers import SdkServer, old_call, sdk_server

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"
ECHO_FLOW = (
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: echo\n"
    "    outputMappings:\n      - target: echoed\n        source: $input.value\n"
)
# The old SDK's vendored urllib3 uses ssl calls Python deprecates; its HTTPS works all the same.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:aliyunsdkcore")
REQUEST_CLASSES = sorted(info.name for info in pkgutil.iter_modules(requests_package.__path__))


@pytest.fixture(scope="module", params=["http", "https"])
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SdkServer]:
    folder = tmp_path_factory.mktemp(f"sdk-old-{request.param}")
    with sdk_server(folder, tls=request.param == "https") as running:
        yield running


def sdk(module: ModuleType, **params: Any) -> RpcRequest:
    """A request of the SDK module (e.g. `CreateFlowRequest`) with its setters called."""
    request: RpcRequest = getattr(module, module.__name__.rsplit(".", 1)[1])()
    for name, value in params.items():
        getattr(request, f"set_{name}")(value)
    return request


def refused(server: SdkServer, request: RpcRequest, code: str, status: int) -> str:
    """Send a request the server must refuse; its message, once code and status are checked."""
    with pytest.raises(ServerException) as caught:
        old_call(server, request)
    exc = caught.value
    assert (exc.get_error_code(), exc.get_http_status()) == (code, status), exc
    assert len(exc.get_request_id()) == 36
    message: str = exc.get_error_msg()
    return message


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(server: SdkServer, name: str, definition: str, **more: Any) -> dict[str, Any]:
    return old_call(
        server,
        sdk(
            CreateFlowRequest,
            Name=name,
            Definition=definition,
            Description="old",
            Type="FDL",
            **more,
        ),
    )


def test_flows(server):
    name = unique("old-flow")
    created = create(server, name, PASS_FLOW, ExecutionMode="Standard")
    assert (created["Name"], created["ExecutionMode"]) == (name, "Standard")
    assert created["Environment"] == {"Variables": []}
    described = old_call(server, sdk(DescribeFlowRequest, Name=name), "reader")
    assert described["Id"] == created["Id"]
    updated = old_call(server, sdk(UpdateFlowRequest, Name=name, Description="2", Type="FDL"))
    assert updated["Description"] == "2"
    listed = old_call(server, sdk(ListFlowsRequest, Limit=1000), "reader")
    assert name in [f["Name"] for f in listed["Flows"]]
    old_call(server, sdk(DeleteFlowRequest, Name=name))
    message = refused(server, sdk(DescribeFlowRequest, Name=name), "FlowNotExists", 404)
    assert message == f"Flow '{name}' does not exist"


def test_executions_and_reports(server):
    flow = unique("old-run")
    create(server, flow, TOKEN_FLOW)
    started = old_call(
        server, sdk(StartExecutionRequest, FlowName=flow, ExecutionName="ok", Input='{"n": 1}')
    )
    assert started["Status"] == "Running"
    token = server.api.wait_messages(flow, "ok")[-1]["token"]
    answer = old_call(
        server, sdk(ReportTaskSucceededRequest, TaskToken=token, Output='{"x": 1}'), "worker"
    )
    assert answer["EventId"] > 0
    done = old_call(
        server,
        sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="ok", WaitTimeSeconds=5),
        "reader",
    )
    assert (done["Status"], json.loads(done["Output"])) == ("Succeeded", {"x": 1})

    old_call(server, sdk(StartExecutionRequest, FlowName=flow, ExecutionName="bad"))
    token = server.api.wait_messages(flow, "bad")[-1]["token"]
    old_call(
        server, sdk(ReportTaskFailedRequest, TaskToken=token, Error="Boom", Cause="c"), "worker"
    )
    failed = old_call(
        server,
        sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="bad", WaitTimeSeconds=5),
    )
    # The old SDK hands over the whole JSON answer: Error and Cause are there.
    assert (failed["Status"], failed["Error"], failed["Cause"]) == ("Failed", "Boom", "c")

    old_call(server, sdk(StartExecutionRequest, FlowName=flow, ExecutionName="halt"))
    stopped = old_call(
        server,
        sdk(StopExecutionRequest, FlowName=flow, ExecutionName="halt", Error="E", Cause="C"),
    )
    assert stopped["Status"] == "Stopped"
    listed = old_call(
        server, sdk(ListExecutionsRequest, FlowName=flow, Limit=100, Status="Stopped"), "reader"
    )
    assert [e["Name"] for e in listed["Executions"]] == ["halt"]
    history = old_call(
        server,
        sdk(GetExecutionHistoryRequest, FlowName=flow, ExecutionName="bad", Limit=1000),
        "reader",
    )
    assert history["Events"][-1]["Type"] == "ExecutionFailed"
    message = refused(
        server,
        sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="none"),
        "ExecutionNotExists",
        404,
    )
    assert message == f"Execution 'none' does not exist in flow '{flow}'"


STAGE_FLOW = (
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: read\n"
    "    outputMappings:\n      - target: stage\n        source: $context.flow.environment.STAGE\n"
)


def _stage_flow(server: SdkServer) -> str:
    """A flow with Environment STAGE=test: the old SDK has no setter, add_body_params sends it."""
    flow = unique("old-env")
    request = sdk(CreateFlowRequest, Name=flow, Definition=STAGE_FLOW, Description="", Type="FDL")
    environment = {"Variables": [{"Name": "STAGE", "Value": "test", "Description": "d"}]}
    request.add_body_params("Environment", json.dumps(environment))
    assert old_call(server, request)["Environment"] == environment
    return flow


def test_environment_through_add_body_params(server):
    flow = _stage_flow(server)
    described = old_call(server, sdk(DescribeFlowRequest, Name=flow), "reader")
    assert described["Environment"]["Variables"][0]["Value"] == "test"


def test_a_definition_reads_the_environment(server):
    flow = _stage_flow(server)
    old_call(server, sdk(StartExecutionRequest, FlowName=flow, ExecutionName="e"))
    done = old_call(
        server, sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="e", WaitTimeSeconds=5)
    )
    assert json.loads(done["Output"]) == {"stage": "test"}
    assert done["Environment"] == {"Variables": [{"Name": "STAGE", "Value": "test"}]}


def test_start_sync_execution(server):
    flow = unique("old-express")
    create(server, flow, ECHO_FLOW, ExecutionMode="Express")
    answer = old_call(
        server,
        sdk(StartSyncExecutionRequest, FlowName=flow, ExecutionName="s", Input='{"value": 1}'),
    )
    assert (answer["Status"], json.loads(answer["Output"])) == ("Succeeded", {"echoed": 1})


def test_schedules(server):
    flow = unique("old-sched")
    create(server, flow, PASS_FLOW)
    created = old_call(
        server,
        sdk(
            CreateScheduleRequest,
            FlowName=flow,
            ScheduleName="nightly",
            CronExpression="0 0 2 * * *",
            Payload='{"a": 1}',
            Enable=True,  # sent as "True"
            Description="d",
        ),
    )
    assert (created["ScheduleName"], created["Enable"]) == ("nightly", True)
    described = old_call(
        server, sdk(DescribeScheduleRequest, FlowName=flow, ScheduleName="nightly"), "reader"
    )
    assert described["ScheduleId"] == created["ScheduleId"]
    updated = old_call(
        server,
        sdk(UpdateScheduleRequest, FlowName=flow, ScheduleName="nightly", Enable=False),
    )
    assert updated["Enable"] is False
    listed = old_call(server, sdk(ListSchedulesRequest, FlowName=flow, Limit=1000), "reader")
    assert [s["ScheduleName"] for s in listed["Schedules"]] == ["nightly"]
    old_call(server, sdk(DeleteScheduleRequest, FlowName=flow, ScheduleName="nightly"))
    message = refused(
        server,
        sdk(DescribeScheduleRequest, FlowName=flow, ScheduleName="nightly"),
        "ScheduleNotExists",
        404,
    )
    assert message == f"Schedule 'nightly' does not exist in flow '{flow}'"


def test_every_request_class_is_sent_here():
    """Each of the SDK's 18 request classes is imported and sent by a test of this module."""
    source = Path(__file__).read_text(encoding="utf-8")
    sent = {name for name in REQUEST_CLASSES if re.search(rf"sdk\(\s*{name},", source)}
    assert len(REQUEST_CLASSES) == 18
    assert sorted(sent) == REQUEST_CLASSES
