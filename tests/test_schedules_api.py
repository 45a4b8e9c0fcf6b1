"""The schedule actions over HTTP, against the session's real server: the service's fields,
booleans in any case, paging, refusals with the service's codes, and a schedule that fires.

The server runs on the real clock, so schedules made here either never come due during the
session (a tick once a year, or disabled) or are deleted once they have fired.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from aliyunsdkfnf.request.v20190315 import CreateScheduleRequest, DescribeScheduleRequest

from tests.api_server import ApiServer
from tests.replicas.harness import wait_for

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: hello\n"
YEARLY = "0 0 0 1 1 *"
FIELDS = {
    "ScheduleName",
    "ScheduleId",
    "CronExpression",
    "Payload",
    "Enable",
    "Description",
    "CreatedTime",
    "LastModifiedTime",
}


def new_flow(server: ApiServer) -> str:
    name = "sched_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": name, "Definition": PASS_FLOW, "Type": "FDL"})
    return name


def refused(answer: httpx.Response, code: str, status: int) -> str:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    message: str = answer.json()["Message"]
    assert message and "\n" not in message
    return message


def create(server: ApiServer, flow: str, name: str, **more: str) -> dict[str, Any]:
    params = {"Action": "CreateSchedule", "FlowName": flow, "ScheduleName": name}
    params.setdefault("CronExpression", YEARLY)
    params.update(more)
    return server.ok(params)


def test_create_describe_update_delete_with_the_services_fields(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    made = create(
        api_server,
        flow,
        "nightly",
        Payload='{"full": true}',
        Enable="true",
        Description="the nightly run",
    )
    assert set(made) == FIELDS
    assert made["ScheduleName"] == "nightly" and made["CronExpression"] == YEARLY
    assert made["Enable"] is True and made["Payload"] == '{"full": true}'
    assert made["CreatedTime"].endswith("Z") and len(made["ScheduleId"]) == 36

    params = {"FlowName": flow, "ScheduleName": "nightly"}
    described = api_server.ok({"Action": "DescribeSchedule", **params}, role="reader")
    assert described == made

    changed = api_server.ok(
        {"Action": "UpdateSchedule", **params, "Enable": "FALSE", "Description": "paused"}
    )
    assert changed["Enable"] is False and changed["Description"] == "paused"
    assert changed["Payload"] == made["Payload"] and changed["ScheduleId"] == made["ScheduleId"]

    assert api_server.ok({"Action": "DeleteSchedule", **params}) == {}
    gone = api_server.rpc({"Action": "DescribeSchedule", **params})
    text = refused(gone, "ScheduleNotExists", 404)
    assert text == f"Schedule 'nightly' does not exist in flow '{flow}'"


def test_enable_is_read_in_any_case_and_checked(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    for i, (sent, expected) in enumerate(
        [("True", True), ("TRUE", True), ("false", False), ("False", False)]
    ):
        assert create(api_server, flow, f"s{i}", Enable=sent)["Enable"] is expected
    assert create(api_server, flow, "default")["Enable"] is True
    answer = api_server.rpc(
        {
            "Action": "CreateSchedule",
            "FlowName": flow,
            "ScheduleName": "odd",
            "CronExpression": YEARLY,
            "Enable": "yes",
        }
    )
    assert "Enable" in refused(answer, "InvalidArgument", 400)


def test_list_schedules_pages_by_limit_and_next_token(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    for name in ("a", "b", "c", "d", "e"):
        create(api_server, flow, name, Enable="false")
    seen, token, pages = [], "", 0
    while True:
        params = {"Action": "ListSchedules", "FlowName": flow, "Limit": "2"}
        if token:
            params["NextToken"] = token
        page = api_server.ok(params, role="reader")
        assert all(set(s) == FIELDS for s in page["Schedules"])
        seen += [s["ScheduleName"] for s in page["Schedules"]]
        pages += 1
        token = page["NextToken"]
        if not token:
            break
    assert seen == ["a", "b", "c", "d", "e"] and pages == 3
    everything = api_server.ok({"Action": "ListSchedules", "FlowName": flow, "Limit": "1000"})
    assert len(everything["Schedules"]) == 5 and everything["NextToken"] == ""
    too_many = api_server.rpc({"Action": "ListSchedules", "FlowName": flow, "Limit": "1001"})
    assert "Limit" in refused(too_many, "InvalidArgument", 400)


def test_refusals_use_the_services_codes(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    create(api_server, flow, "taken")
    missing = api_server.rpc(
        {
            "Action": "CreateSchedule",
            "FlowName": "no_such_flow",
            "ScheduleName": "s",
            "CronExpression": YEARLY,
        }
    )
    assert refused(missing, "FlowNotExists", 404) == "Flow 'no_such_flow' does not exist"
    five = api_server.rpc(
        {
            "Action": "CreateSchedule",
            "FlowName": flow,
            "ScheduleName": "five",
            "CronExpression": "*/5 * * * *",
        }
    )
    assert "has 5 fields; it needs 6" in refused(five, "InvalidArgument", 400)
    twice = api_server.rpc(
        {
            "Action": "CreateSchedule",
            "FlowName": flow,
            "ScheduleName": "taken",
            "CronExpression": YEARLY,
        }
    )
    assert refused(twice, "ScheduleAlreadyExists", 409) == (
        f"Schedule 'taken' already exists in flow '{flow}'"
    )
    no_cron = api_server.rpc({"Action": "CreateSchedule", "FlowName": flow, "ScheduleName": "x"})
    assert "CronExpression" in refused(no_cron, "MissingParameter", 400)
    delete = api_server.rpc({"Action": "DeleteSchedule", "FlowName": flow, "ScheduleName": "x"})
    refused(delete, "ScheduleNotExists", 404)
    by_reader = api_server.rpc(
        {"Action": "DeleteSchedule", "FlowName": flow, "ScheduleName": "taken"}, role="reader"
    )
    assert by_reader.status_code == 403, by_reader.text


def test_the_old_sdk_creates_and_describes_a_schedule(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    request = CreateScheduleRequest.CreateScheduleRequest()
    request.set_FlowName(flow)
    request.set_ScheduleName("sdk")
    request.set_CronExpression(YEARLY)
    request.set_Enable(True)  # sent as "True"
    request.set_Payload('{"a": 1}')
    made = api_server.call(request)
    assert made["Enable"] is True and made["ScheduleName"] == "sdk"
    describe = DescribeScheduleRequest.DescribeScheduleRequest()
    describe.set_FlowName(flow)
    describe.set_ScheduleName("sdk")
    assert api_server.call(describe, role="reader")["ScheduleId"] == made["ScheduleId"]


def test_a_schedule_starts_executions_on_the_server(api_server: ApiServer) -> None:
    flow = new_flow(api_server)
    create(api_server, flow, "often", CronExpression="* * * * * *", Payload='{"n": 1}')

    def started() -> list[dict[str, Any]]:
        page = api_server.ok({"Action": "ListExecutions", "FlowName": flow, "Limit": "100"})
        return list(page["Executions"])

    try:
        wait_for("a scheduled execution", lambda: bool(started()), 15)
    finally:
        api_server.ok({"Action": "DeleteSchedule", "FlowName": flow, "ScheduleName": "often"})
    runs = started()
    assert all(run["Name"].startswith("schedule-often-") for run in runs)
    assert len({run["Name"] for run in runs}) == len(runs)
    first = api_server.describe(flow, runs[0]["Name"])
    assert json.loads(first["Input"]) == {"n": 1}
