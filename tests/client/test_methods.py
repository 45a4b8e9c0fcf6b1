"""Every client method sends its action and parameters, signed, and reads typed results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relayflow.client import Client, Execution, Flow, HistoryEvent, Page
from tests.client.fake_server import DEFINITION, event_doc, execution_doc, flow_doc

CALLS: list[tuple[str, Callable[[Client], Any], str, dict[str, str]]] = [
    (
        "create_flow",
        lambda c: c.create_flow(
            "orders", DEFINITION, "order intake", role_arn="acs:ram::1:role/fnf"
        ),
        "CreateFlow",
        {
            "Name": "orders",
            "Definition": DEFINITION,
            "Description": "order intake",
            "Type": "FDL",
            "RoleArn": "acs:ram::1:role/fnf",
        },
    ),
    (
        "create_flow_blank_description",
        lambda c: c.create_flow("orders", DEFINITION),
        "CreateFlow",
        {"Name": "orders", "Definition": DEFINITION, "Description": "", "Type": "FDL"},
    ),
    (
        "update_flow",
        lambda c: c.update_flow("orders", definition=DEFINITION),
        "UpdateFlow",
        {"Name": "orders", "Definition": DEFINITION},
    ),
    (
        "update_flow_description",
        lambda c: c.update_flow("orders", description="new", role_arn="r"),
        "UpdateFlow",
        {"Name": "orders", "Description": "new", "RoleArn": "r"},
    ),
    ("describe_flow", lambda c: c.describe_flow("orders"), "DescribeFlow", {"Name": "orders"}),
    ("list_flows", lambda c: c.list_flows(), "ListFlows", {}),
    (
        "list_flows_page",
        lambda c: c.list_flows(limit=10, next_token="orders"),
        "ListFlows",
        {"Limit": "10", "NextToken": "orders"},
    ),
    ("delete_flow", lambda c: c.delete_flow("orders"), "DeleteFlow", {"Name": "orders"}),
    (
        "start_execution",
        lambda c: c.start_execution("orders"),
        "StartExecution",
        {"FlowName": "orders"},
    ),
    (
        "start_execution_full",
        lambda c: c.start_execution(
            "orders", {"id": 7, "note": "a b&c=d~é*"}, name="order-7", callback_token="tok"
        ),
        "StartExecution",
        {
            "FlowName": "orders",
            "ExecutionName": "order-7",
            "Input": '{"id":7,"note":"a b&c=d~é*"}',
            "CallbackFnFTaskToken": "tok",
        },
    ),
    (
        "describe_execution",
        lambda c: c.describe_execution("orders", "order-7"),
        "DescribeExecution",
        {"FlowName": "orders", "ExecutionName": "order-7"},
    ),
    (
        "describe_execution_wait",
        lambda c: c.describe_execution("orders", "order-7", wait_seconds=1),
        "DescribeExecution",
        {"FlowName": "orders", "ExecutionName": "order-7", "WaitTimeSeconds": "1"},
    ),
    (
        "stop_execution",
        lambda c: c.stop_execution("orders", "order-7"),
        "StopExecution",
        {"FlowName": "orders", "ExecutionName": "order-7"},
    ),
    (
        "stop_execution_reason",
        lambda c: c.stop_execution("orders", "order-7", "Cancelled", "customer called"),
        "StopExecution",
        {
            "FlowName": "orders",
            "ExecutionName": "order-7",
            "Error": "Cancelled",
            "Cause": "customer called",
        },
    ),
    (
        "list_executions",
        lambda c: c.list_executions("orders"),
        "ListExecutions",
        {"FlowName": "orders"},
    ),
    (
        "list_executions_filters",
        lambda c: c.list_executions(
            "orders",
            status="Failed",
            name_prefix="order-",
            limit=99,
            next_token="order-3",
            started_after=datetime(2024, 1, 2, 4, 4, 5, tzinfo=UTC) + timedelta(hours=0),
            started_before="2024-02-01T00:00:00Z",
        ),
        "ListExecutions",
        {
            "FlowName": "orders",
            "Status": "Failed",
            "ExecutionNamePrefix": "order-",
            "Limit": "99",
            "NextToken": "order-3",
            "StartedTimeBegin": "2024-01-02T04:04:05Z",
            "StartedTimeEnd": "2024-02-01T00:00:00Z",
        },
    ),
    (
        "get_execution_history",
        lambda c: c.get_execution_history("orders", "order-7"),
        "GetExecutionHistory",
        {"FlowName": "orders", "ExecutionName": "order-7"},
    ),
    (
        "get_execution_history_page",
        lambda c: c.get_execution_history("orders", "order-7", limit=999, next_token="4"),
        "GetExecutionHistory",
        {"FlowName": "orders", "ExecutionName": "order-7", "Limit": "999", "NextToken": "4"},
    ),
    (
        "report_task_succeeded",
        lambda c: c.report_task_succeeded("djEjYSNiIzUjeA==", {"booked": True}),
        "ReportTaskSucceeded",
        {"TaskToken": "djEjYSNiIzUjeA==", "Output": '{"booked":true}'},
    ),
    (
        "report_task_failed",
        lambda c: c.report_task_failed("djEjYSNiIzUjeA==", "Booking.SoldOut"),
        "ReportTaskFailed",
        {"TaskToken": "djEjYSNiIzUjeA==", "Error": "Booking.SoldOut"},
    ),
    (
        "report_task_failed_cause",
        lambda c: c.report_task_failed("tok", "E", "no seats\nleft"),
        "ReportTaskFailed",
        {"TaskToken": "tok", "Error": "E", "Cause": "no seats\nleft"},
    ),
]


@pytest.mark.parametrize(
    ("call", "action", "params"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS]
)
def test_each_method_sends_its_action_and_parameters_signed(fake, client, call, action, params):
    call(client)
    received = fake.last()
    assert received.action == action
    assert received.params == params
    assert received.headers["user-agent"].startswith("relayflow-client/")


def test_results_are_typed(client):
    flow = client.describe_flow("orders")
    assert isinstance(flow, Flow)
    assert (flow.name, flow.type, flow.definition, flow.execution_mode) == (
        "orders",
        "FDL",
        DEFINITION,
        "Standard",
    )
    assert flow.created_time == datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert flow.raw["RequestId"].startswith("REQ-")

    started = client.start_execution("orders", {"id": 7}, name="order-7")
    assert isinstance(started, Execution)
    assert (started.name, started.status, started.input, started.output) == (
        "order-7",
        "Running",
        {"id": 7},
        None,
    )
    assert started.stopped_time is None and not started.done

    done = client.describe_execution("orders", "order-7")
    assert done.succeeded and done.done
    assert done.output == {"id": 7, "ok": True}
    assert done.raw["Output"] == '{"id": 7, "ok": true}'
    assert done.stopped_time is not None and done.stopped_time > done.started_time

    stopped = client.stop_execution("orders", "order-7", "Cancelled", "why")
    assert (stopped.status, stopped.error, stopped.cause) == ("Stopped", "Cancelled", "why")

    page = client.list_executions("orders")
    assert isinstance(page, Page) and page.last and page.request_id.startswith("REQ-")
    assert [e.name for e in page] == ["a", "b"] and len(page) == 2

    history = client.get_execution_history("orders", "order-7")
    assert all(isinstance(e, HistoryEvent) for e in history)
    assert [(e.event_id, e.type, e.step_name) for e in history] == [
        (1, "ExecutionStarted", ""),
        (2, "StepEntered", "hello"),
    ]

    assert [f.name for f in client.list_flows()] == ["orders", "refunds"]
    assert client.delete_flow("orders").startswith("REQ-")
    assert client.report_task_succeeded("tok", {}) == 12
    assert client.report_task_failed("tok", "E") == 12


def test_history_event_detail_is_parsed(fake, client):
    fake.on(
        "GetExecutionHistory",
        lambda p: {
            "Events": [
                event_doc(
                    3, "TaskSubmitted", "book", {"resourceArn": "acs:mns:::/queues/q/messages"}
                )
            ],
            "NextToken": "",
        },
    )
    (event,) = client.get_execution_history("orders", "order-7").items
    assert event.detail == {"resourceArn": "acs:mns:::/queues/q/messages"}
    assert event.schedule_event_id == 2 and event.time == datetime(2024, 1, 2, 3, 4, 3, tzinfo=UTC)


def test_iterators_follow_next_token(fake, client):
    def history(p: dict[str, str]) -> dict[str, Any]:
        token = p.get("NextToken", "")
        if not token:
            return {
                "Events": [event_doc(1, "ExecutionStarted"), event_doc(2, "StepEntered", "a")],
                "NextToken": "2",
            }
        assert token == "2"
        return {"Events": [event_doc(3, "StepExited", "a")], "NextToken": ""}

    fake.on("GetExecutionHistory", history)
    assert [e.event_id for e in client.iter_history("orders", "x", page_size=2)] == [1, 2, 3]
    assert [r.params.get("NextToken") for r in fake.requests] == [None, "2"]
    assert fake.requests[0].params["Limit"] == "2"

    fake.sequence(
        "ListExecutions",
        {"Executions": [execution_doc("a")], "NextToken": "a"},
        {"Executions": [execution_doc("b")], "NextToken": ""},
    )
    assert [e.name for e in client.iter_executions("orders", status="Running")] == ["a", "b"]
    assert fake.last("ListExecutions").params == {
        "FlowName": "orders",
        "Status": "Running",
        "NextToken": "a",
    }

    fake.sequence(
        "ListFlows",
        {"Flows": [flow_doc("x")], "NextToken": "x"},
        {"Flows": [flow_doc("y")], "NextToken": ""},
    )
    assert [f.name for f in client.iter_flows()] == ["x", "y"]


def test_wait_for_execution_long_polls_until_the_end(fake, client):
    fake.sequence(
        "DescribeExecution",
        execution_doc(status="Running"),
        execution_doc(status="Running"),
        execution_doc(status="Failed"),
    )
    final = client.wait_for_execution("orders", "order-7")
    assert final.status == "Failed" and final.error == "Booking.SoldOut"
    waits = [r.params["WaitTimeSeconds"] for r in fake.requests]
    assert waits == ["60", "60", "60"]
