"""RedriveExecution over HTTP, against the session's server (`api_server`, a SQLite store).

The engine's own tests (tests/engine/test_redrive.py) cover what a redrive does on SQLite and
PostgreSQL; these check the action: its parameters, its answer, its refusals and its role.
"""

from __future__ import annotations

import uuid

import httpx

from tests.api_server import QUEUE_ARN, ApiServer

TWO_STEPS = f"""version: v1
type: flow
steps:
  - type: task
    name: job
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
  - type: pass
    name: after
"""


def refused(answer: httpx.Response, code: str, status: int) -> str:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    message: str = answer.json()["Message"]
    assert message and "\n" not in message
    return message


def fail(server: ApiServer, flow: str, name: str, count: int) -> None:
    """Fail the ``count``-th task attempt of the execution, as a worker reports it."""
    token = server.wait_messages(flow, name, count)[count - 1]["token"]
    params = {"Action": "ReportTaskFailed", "TaskToken": token, "Error": "Job.Broke"}
    server.ok(params, role="worker")


def test_redrive_over_http(api_server: ApiServer) -> None:
    flow = "redrive_" + uuid.uuid4().hex[:8]
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": TWO_STEPS})
    api_server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "e"})
    fail(api_server, flow, "e", 1)
    assert api_server.describe(flow, "e")["Status"] == "Failed"

    # Only the admin may redrive.
    params = {"Action": "RedriveExecution", "FlowName": flow, "ExecutionName": "e"}
    assert api_server.rpc(params, role="reader").status_code == 403
    assert api_server.rpc(params, role="worker").status_code == 403

    answer = api_server.ok(params)
    assert (answer["Name"], answer["FlowName"], answer["Status"]) == ("e", flow, "Running")
    assert answer["RedriveCount"] == 1 and "Error" not in answer and answer["StoppedTime"] == ""
    assert answer["FlowDefinition"] == TWO_STEPS
    second = api_server.wait_messages(flow, "e", 2)[1]
    assert (second["step"], second["attempt"]) == ("job", 0)
    report = {"Action": "ReportTaskSucceeded", "TaskToken": second["token"], "Output": "{}"}
    api_server.ok(report, role="worker")
    described = api_server.ok(
        {
            "Action": "DescribeExecution",
            "FlowName": flow,
            "ExecutionName": "e",
            "WaitTimeSeconds": "5",
        }
    )
    assert (described["Status"], described["RedriveCount"]) == ("Succeeded", 1)
    kinds = [event["Type"] for event in api_server.history(flow, "e")]
    assert kinds.count("ExecutionRedriven") == 1
    assert kinds.index("ExecutionFailed") < kinds.index("ExecutionRedriven")

    message = refused(api_server.rpc(params), "ExecutionNotRedrivable", 409)
    assert message == (
        "Execution 'e' is Succeeded; only a Failed, TimedOut or Stopped execution can be redriven"
    )
    missing = {**params, "ExecutionName": "ghost"}
    refused(api_server.rpc(missing), "ExecutionNotExists", 404)
    refused(api_server.rpc({**params, "FlowName": ""}), "MissingParameter", 400)
    bad = refused(
        api_server.rpc({**params, "UseCurrentDefinition": "maybe"}), "InvalidArgument", 400
    )
    assert "UseCurrentDefinition" in bad


def test_redrive_onto_the_current_definition_over_http(api_server: ApiServer) -> None:
    flow = "redrive_" + uuid.uuid4().hex[:8]
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": TWO_STEPS})
    api_server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "c"})
    fail(api_server, flow, "c", 1)
    params = {"Action": "RedriveExecution", "FlowName": flow, "ExecutionName": "c"}

    renamed = TWO_STEPS.replace("name: job", "name: work")
    api_server.ok({"Action": "UpdateFlow", "Name": flow, "Definition": renamed})
    message = refused(
        api_server.rpc({**params, "UseCurrentDefinition": "true"}), "ExecutionNotRedrivable", 409
    )
    assert "step 'job' is not in the flow's current definition" in message

    fixed = TWO_STEPS.replace("name: after", "name: then")
    api_server.ok({"Action": "UpdateFlow", "Name": flow, "Definition": fixed})
    answer = api_server.ok({**params, "UseCurrentDefinition": "true"})
    assert answer["Status"] == "Running" and answer["FlowDefinition"] == fixed
    assert api_server.wait_messages(flow, "c", 2)[1]["step"] == "job"
    api_server.ok({"Action": "StopExecution", "FlowName": flow, "ExecutionName": "c"})
    # Stopped now: redriven with the definition it runs (the current one since the last redrive).
    answer = api_server.ok({**params, "UseCurrentDefinition": "false"})
    assert (answer["RedriveCount"], answer["FlowDefinition"]) == (2, fixed)
    assert api_server.wait_messages(flow, "c", 3)[2]["attempt"] == 0
    api_server.ok({"Action": "StopExecution", "FlowName": flow, "ExecutionName": "c"})
