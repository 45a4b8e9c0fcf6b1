"""Every action of the CURRENT official SDK, `alibabacloud-fnf20190315`, against a real server.

The SDK's `Client` is pointed at relayflow with `Config(endpoint=..., protocol=...)`, over HTTP
and over HTTPS with a private CA (`Config(ca=...)`); one server per protocol serves
the whole module. Each of the 29 actions the SDK's client has is sent through the SDK's own
`<action>_with_options` method (on the SQLite store over both protocols, and on a PostgreSQL
store over HTTP), and its answer read back through the SDK's response model, so a
field relayflow names differently from the service would arrive as None here.
`test_every_action_of_the_sdk_is_sent_here` checks that none was left out.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models as m
from alibabacloud_fnf20190315.client import Client
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from tests.api_server import TOKEN_FLOW
from tests.sdk_servers import SdkServer, new_client, sdk_server
from tests.services import fresh_database

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"
ECHO_FLOW = (
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: echo\n"
    "    outputMappings:\n      - target: echoed\n        source: $input.value\n"
)

# The actions of the SDK's client, read from its methods: the list this module must cover.
SDK_ACTIONS = sorted(
    "".join(word.title() for word in name.removesuffix("_with_options").split("_"))
    for name in dir(Client)
    if name.endswith("_with_options") and not name.startswith("_")
)


@pytest.fixture(scope="module", params=["http", "https", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SdkServer]:
    """A server over HTTP, over HTTPS, and (over HTTP) on a PostgreSQL store of its own."""
    folder = tmp_path_factory.mktemp(f"sdk-new-{request.param}")
    with contextlib.ExitStack() as stack:
        store = None
        if request.param == "postgresql":
            server_url = request.getfixturevalue("postgres_url")
            store = stack.enter_context(fresh_database(server_url, "sdk_new"))
        running = stack.enter_context(sdk_server(folder, tls=request.param == "https", store=store))
        yield running


@pytest.fixture(scope="module")
def clients(server: SdkServer) -> dict[str, Client]:
    return {role: new_client(server, role) for role in ("admin", "worker", "reader")}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _method(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower() + "_with_options"


def send(server: SdkServer, client: Client, request: Any) -> Any:
    """Send ``request`` (an SDK request model) with the SDK's method for it; the body model."""
    action = type(request).__name__.removesuffix("Request")
    response = getattr(client, _method(action))(request, server.runtime())
    assert response.status_code == 200
    assert len(response.body.request_id) == 36
    return response.body


def refused(call: Callable[[], Any], code: str, status: int) -> str:
    """Run a call that the server must refuse; its message, once code and status are checked."""
    with pytest.raises(AlibabaCloudException) as caught:
        call()
    exc = caught.value
    assert (exc.code, exc.status_code) == (code, status), exc.data
    message: str = exc.data["Message"]
    assert message and len(exc.request_id) == 36
    return message


def variables(body: Any) -> list[tuple[str, str, str | None]]:
    return [(v.name, v.value, getattr(v, "description", None)) for v in body.environment.variables]


def create(server: SdkServer, admin: Client, name: str, definition: str, **fields: Any) -> Any:
    request = m.CreateFlowRequest(
        name=name, definition=definition, description="sdk", type="FDL", **fields
    )
    return send(server, admin, request)


def wait_message(server: SdkServer, flow: str, execution: str) -> dict[str, Any]:
    return server.api.wait_messages(flow, execution)[-1]


# -- flows -----------------------------------------------------------------------------------


def test_flows_with_their_environment(server, clients):
    admin, reader = clients["admin"], clients["reader"]
    name = unique("new-flow")
    env = m.CreateFlowRequestEnvironment(
        variables=[
            m.CreateFlowRequestEnvironmentVariables(name="REGION", value="eu", description="d")
        ]
    )
    created = create(server, admin, name, PASS_FLOW, environment=env, execution_mode="Standard")
    assert (created.name, created.type, created.execution_mode) == (name, "FDL", "Standard")
    assert created.definition == PASS_FLOW
    assert variables(created) == [("REGION", "eu", "d")]
    uuid.UUID(created.id)

    described = send(server, reader, m.DescribeFlowRequest(name=name))
    assert described.to_map() | {"RequestId": ""} == created.to_map() | {"RequestId": ""}

    update_env = m.UpdateFlowRequestEnvironment(
        variables=[m.UpdateFlowRequestEnvironmentVariables(name="REGION", value="cn")]
    )
    updated = send(
        server,
        admin,
        m.UpdateFlowRequest(name=name, description="second", environment=update_env),
    )
    assert (updated.description, updated.id) == ("second", created.id)
    assert variables(updated) == [("REGION", "cn", "")]

    listed = send(server, reader, m.ListFlowsRequest(limit=1000))
    (flow,) = [f for f in listed.flows if f.name == name]
    assert [(v.name, v.value) for v in flow.environment.variables] == [("REGION", "cn")]

    send(server, admin, m.DeleteFlowRequest(name=name))
    message = refused(
        lambda: send(server, reader, m.DescribeFlowRequest(name=name)), "FlowNotExists", 404
    )
    assert message == f"Flow '{name}' does not exist"


def test_bad_flows_get_the_service_code_and_one_sentence(server, clients):
    admin = clients["admin"]
    bad_env = m.CreateFlowRequestEnvironment(
        variables=[m.CreateFlowRequestEnvironmentVariables(name="1st", value="x")]
    )
    message = refused(
        lambda: create(server, admin, unique("new-bad"), PASS_FLOW, environment=bad_env),
        "InvalidArgument",
        400,
    )
    assert "Variables[0].Name '1st'" in message and "\n" not in message
    refused(lambda: send(server, admin, m.ListFlowsRequest(limit=1001)), "InvalidArgument", 400)


# -- executions and reports ------------------------------------------------------------------


def test_executions_reports_and_history(server, clients):
    admin, worker, reader = clients["admin"], clients["worker"], clients["reader"]
    flow = unique("new-run")
    create(server, admin, flow, TOKEN_FLOW)

    started = send(
        server,
        admin,
        m.StartExecutionRequest(flow_name=flow, execution_name="ok", input='{"n": 1}'),
    )
    assert (started.name, started.flow_name, started.status) == ("ok", flow, "Running")
    token = wait_message(server, flow, "ok")["token"]
    answer = send(
        server, worker, m.ReportTaskSucceededRequest(task_token=token, output='{"done": true}')
    )
    assert answer.event_id > 0
    done = send(
        server,
        reader,
        m.DescribeExecutionRequest(flow_name=flow, execution_name="ok", wait_time_seconds=5),
    )
    assert (done.status, json.loads(done.output)) == ("Succeeded", {"done": True})
    assert done.flow_definition == TOKEN_FLOW and done.stopped_time.endswith("Z")

    send(server, admin, m.StartExecutionRequest(flow_name=flow, execution_name="bad"))
    token = wait_message(server, flow, "bad")["token"]
    send(server, worker, m.ReportTaskFailedRequest(task_token=token, error="Boom", cause="why"))
    failed = send(
        server,
        reader,
        m.DescribeExecutionRequest(flow_name=flow, execution_name="bad", wait_time_seconds=5),
    )
    # The new SDK's model has no Error or Cause: the history's last event carries them.
    assert failed.status == "Failed" and not hasattr(failed, "error")
    history = send(
        server,
        reader,
        m.GetExecutionHistoryRequest(flow_name=flow, execution_name="bad", limit=1000),
    )
    assert history.next_token == ""
    last = history.events[-1]
    assert last.type == "ExecutionFailed"
    assert json.loads(last.event_detail) == {"error": "Boom", "cause": "why"}

    send(server, admin, m.StartExecutionRequest(flow_name=flow, execution_name="halt"))
    stopped = send(
        server,
        admin,
        m.StopExecutionRequest(flow_name=flow, execution_name="halt", error="E", cause="C"),
    )
    assert stopped.status == "Stopped"

    page = send(server, reader, m.ListExecutionsRequest(flow_name=flow, limit=100))
    assert [(e.name, e.status) for e in page.executions] == [
        ("bad", "Failed"),
        ("halt", "Stopped"),
        ("ok", "Succeeded"),
    ]
    only = send(
        server,
        reader,
        m.ListExecutionsRequest(flow_name=flow, status="Succeeded", metadata_only=True),
    )
    assert [e.name for e in only.executions] == ["ok"]
    assert only.executions[0].input is None  # MetadataOnly: no data

    message = refused(
        lambda: send(
            server, reader, m.DescribeExecutionRequest(flow_name=flow, execution_name="none")
        ),
        "ExecutionNotExists",
        404,
    )
    assert message == f"Execution 'none' does not exist in flow '{flow}'"
    refused(
        lambda: send(server, reader, m.ListExecutionsRequest(flow_name=flow, status="Done")),
        "InvalidArgument",
        400,
    )


def test_execution_environment_is_the_flows(server, clients):
    admin = clients["admin"]
    flow = unique("new-env")
    env = m.CreateFlowRequestEnvironment(
        variables=[m.CreateFlowRequestEnvironmentVariables(name="STAGE", value="test")]
    )
    create(server, admin, flow, PASS_FLOW, environment=env)
    send(server, admin, m.StartExecutionRequest(flow_name=flow, execution_name="e"))
    described = send(
        server,
        admin,
        m.DescribeExecutionRequest(flow_name=flow, execution_name="e", wait_time_seconds=5),
    )
    assert [(v.name, v.value) for v in described.environment.variables] == [("STAGE", "test")]


STAGE_FLOW = (
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: read\n"
    "    outputMappings:\n      - target: stage\n        source: $context.flow.environment.STAGE\n"
)


def _stage_flow(server: SdkServer, admin: Client, mode: str) -> str:
    flow = unique(f"new-stage-{mode.lower()}")
    env = m.CreateFlowRequestEnvironment(
        variables=[m.CreateFlowRequestEnvironmentVariables(name="STAGE", value="test")]
    )
    create(server, admin, flow, STAGE_FLOW, environment=env, execution_mode=mode)
    return flow


def test_a_definition_reads_its_flows_environment(server, clients):
    admin = clients["admin"]
    flow = _stage_flow(server, admin, "Standard")
    send(server, admin, m.StartExecutionRequest(flow_name=flow, execution_name="e"))
    done = send(
        server,
        admin,
        m.DescribeExecutionRequest(flow_name=flow, execution_name="e", wait_time_seconds=5),
    )
    assert json.loads(done.output) == {"stage": "test"}


def test_an_express_definition_reads_its_flows_environment(server, clients):
    admin = clients["admin"]
    flow = _stage_flow(server, admin, "Express")
    answer = send(server, admin, m.StartSyncExecutionRequest(flow_name=flow))
    assert json.loads(answer.output) == {"stage": "test"}


def test_start_sync_execution_of_an_express_flow(server, clients):
    admin = clients["admin"]
    flow = unique("new-express")
    create(server, admin, flow, ECHO_FLOW, execution_mode="Express")
    answer = send(
        server,
        admin,
        m.StartSyncExecutionRequest(flow_name=flow, execution_name="s", input='{"value": 3}'),
    )
    assert (answer.status, json.loads(answer.output)) == ("Succeeded", {"echoed": 3})
    assert answer.flow_name == flow and answer.name.startswith("s")


# -- schedules -------------------------------------------------------------------------------


def test_schedules(server, clients):
    admin, reader = clients["admin"], clients["reader"]
    flow = unique("new-sched")
    create(server, admin, flow, PASS_FLOW)
    created = send(
        server,
        admin,
        m.CreateScheduleRequest(
            flow_name=flow,
            schedule_name="hourly",
            cron_expression="0 0 * * * *",
            payload='{"a": 1}',
            enable=True,
            description="d",
        ),
    )
    assert (created.schedule_name, created.cron_expression, created.enable) == (
        "hourly",
        "0 0 * * * *",
        True,
    )
    assert created.schedule_id and json.loads(created.payload) == {"a": 1}
    described = send(
        server, reader, m.DescribeScheduleRequest(flow_name=flow, schedule_name="hourly")
    )
    assert described.schedule_id == created.schedule_id
    updated = send(
        server,
        admin,
        m.UpdateScheduleRequest(flow_name=flow, schedule_name="hourly", enable=False),
    )
    assert (updated.enable, updated.cron_expression) == (False, "0 0 * * * *")
    listed = send(server, reader, m.ListSchedulesRequest(flow_name=flow, limit=1000))
    assert [s.schedule_name for s in listed.schedules] == ["hourly"]
    send(server, admin, m.DeleteScheduleRequest(flow_name=flow, schedule_name="hourly"))

    message = refused(
        lambda: send(
            server, reader, m.DescribeScheduleRequest(flow_name=flow, schedule_name="hourly")
        ),
        "ScheduleNotExists",
        404,
    )
    assert message == f"Schedule 'hourly' does not exist in flow '{flow}'"
    missing = unique("new-none")
    message = refused(
        lambda: send(
            server,
            admin,
            m.CreateScheduleRequest(
                flow_name=missing, schedule_name="s", cron_expression="0 * * * * *"
            ),
        ),
        "FlowNotExists",
        404,
    )
    assert message == f"Flow '{missing}' does not exist"
    message = refused(
        lambda: send(
            server,
            admin,
            m.CreateScheduleRequest(flow_name=flow, schedule_name="s", cron_expression="* * * * *"),
        ),
        "InvalidArgument",
        400,
    )
    assert "CronExpression" in message and "\n" not in message


# -- versions and aliases --------------------------------------------------------------------


def test_versions_and_aliases(server, clients):
    admin, reader = clients["admin"], clients["reader"]
    flow = unique("new-ver")
    create(server, admin, flow, PASS_FLOW)
    first = send(server, admin, m.PublishFlowVersionRequest(flow_name=flow, description="v1"))
    send(server, admin, m.UpdateFlowRequest(name=flow, definition=ECHO_FLOW))
    second = send(server, admin, m.PublishFlowVersionRequest(flow_name=flow))
    assert (first.version, second.version, first.flow_name) == ("1", "2", flow)
    versions = send(server, reader, m.ListFlowVersionsRequest(flow_name=flow, limit="10"))
    assert [v.version for v in versions.flow_versions] == ["1", "2"]
    assert send(server, reader, m.DescribeFlowRequest(name=flow, flow_version="1")).definition == (
        PASS_FLOW
    )

    route = m.CreateFlowAliasRequestRoutingConfigurations(version="1", weight=100)
    alias = send(
        server,
        admin,
        m.CreateFlowAliasRequest(flow_name=flow, name="live", routing_configurations=[route]),
    )
    assert (alias.name, alias.flow_name) == ("live", flow)
    described = send(server, reader, m.DescribeFlowAliasRequest(flow_name=flow, name="live"))
    assert [(r.version, r.weight) for r in described.alias.routing_configurations] == [("1", 100)]
    moved = m.UpdateFlowAliasRequestRoutingConfigurations(version="2", weight=100)
    updated = send(
        server,
        admin,
        m.UpdateFlowAliasRequest(flow_name=flow, name="live", routing_configurations=[moved]),
    )
    assert [r.version for r in updated.alias.routing_configurations] == ["2"]
    aliases = send(server, reader, m.ListFlowAliasesRequest(flow_name=flow, limit=10))
    assert [a.name for a in aliases.aliases] == ["live"]

    run = send(
        server,
        admin,
        m.StartExecutionRequest(flow_name=flow, qualifier="live", input='{"value": 5}'),
    )
    done = send(
        server,
        reader,
        m.DescribeExecutionRequest(flow_name=flow, execution_name=run.name, wait_time_seconds=5),
    )
    assert json.loads(done.output) == {"echoed": 5}

    message = refused(
        lambda: send(server, admin, m.DeleteFlowVersionRequest(flow_name=flow, flow_version="2")),
        "FlowVersionInUse",
        409,
    )
    assert "live" in message
    send(server, admin, m.DeleteFlowAliasRequest(flow_name=flow, name="live"))
    send(server, admin, m.DeleteFlowVersionRequest(flow_name=flow, flow_version="2"))
    message = refused(
        lambda: send(server, reader, m.DescribeFlowAliasRequest(flow_name=flow, name="live")),
        "FlowAliasNotExists",
        404,
    )
    assert message == f"Flow alias 'live' does not exist in flow '{flow}'"
    refused(
        lambda: send(server, admin, m.StartExecutionRequest(flow_name=flow, qualifier="nothing")),
        "FlowAliasNotExists",
        404,
    )


# -- the service's own actions ----------------------------------------------------------------


def test_regions_and_map_runs(server, clients):
    admin = clients["admin"]
    regions = send(server, admin, m.DescribeRegionsRequest())
    (region,) = regions.regions.region
    assert region.region_id
    flow = unique("new-map")
    create(server, admin, flow, PASS_FLOW)
    send(server, admin, m.StartExecutionRequest(flow_name=flow, execution_name="e"))
    for request in (
        m.DescribeMapRunRequest(flow_name=flow, execution_name="e", map_run_name="r"),
        m.UpdateMapRunRequest(flow_name=flow, execution_name="e", map_run_name="r", concurrency=2),
    ):
        message = refused(
            lambda request=request: send(server, admin, request), "MapRunNotExists", 404
        )
        assert "'r'" in message and "does not exist" in message


def test_every_action_of_the_sdk_is_sent_here():
    """Each of the SDK client's 29 actions has its request sent by a test of this module."""
    source = Path(__file__).read_text(encoding="utf-8")
    sent = {action for action in SDK_ACTIONS if f"m.{action}Request(" in source}
    assert len(SDK_ACTIONS) == 29
    assert sorted(sent) == SDK_ACTIONS
