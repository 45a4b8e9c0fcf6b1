"""relayflow.client and the `flows` / `executions` / `tasks` commands, against a strict fake server.

The fake speaks the wire protocol only: `POST /` with a form body, `Action` and
`Version=2019-03-15`, the action's parameters (no unknown ones, required ones present, values
well-formed), and a signature it recomputes with `relayflow.api.signature.sign`. Anything else
is a protocol violation, which fails the test at teardown.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import click
import httpx
import pytest
from click.testing import CliRunner

from relayflow.api.signature import SIGNATURE_METHOD, SIGNATURE_VERSION, sign
from relayflow.client import (
    AsyncClient,
    Client,
    ClientError,
    Execution,
    Flow,
    HistoryEvent,
    Page,
)
from relayflow.config import ClientConfig, Config
from relayflow.remote_cli import executions, flows, register, tasks

KEY_ID, SECRET = "ops", "s3cr3t-key-for-tests"
VERSION = "2019-03-15"
SIGNING = {
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
}

# Action -> (required parameters, optional parameters), as the server implements them.
ACTIONS: dict[str, tuple[set[str], set[str]]] = {
    "CreateFlow": ({"Name", "Definition", "Description", "Type"}, {"RoleArn"}),
    "UpdateFlow": ({"Name"}, {"Definition", "Description", "RoleArn"}),
    "DescribeFlow": ({"Name"}, set()),
    "ListFlows": (set(), {"Limit", "NextToken"}),
    "DeleteFlow": ({"Name"}, set()),
    "StartExecution": ({"FlowName"}, {"ExecutionName", "Input", "CallbackFnFTaskToken"}),
    "DescribeExecution": ({"FlowName", "ExecutionName"}, {"WaitTimeSeconds"}),
    "StopExecution": ({"FlowName", "ExecutionName"}, {"Error", "Cause"}),
    "ListExecutions": (
        {"FlowName"},
        {
            "Limit",
            "NextToken",
            "ExecutionNamePrefix",
            "Status",
            "StartedTimeBegin",
            "StartedTimeEnd",
        },
    ),
    "GetExecutionHistory": ({"FlowName", "ExecutionName"}, {"Limit", "NextToken"}),
    "ReportTaskSucceeded": ({"TaskToken", "Output"}, set()),
    "ReportTaskFailed": ({"TaskToken", "Error"}, {"Cause"}),
}
BLANK_OK = {"Description"}  # required, but may be empty
INT_RANGES = {
    ("DescribeExecution", "WaitTimeSeconds"): (0, 60),
    ("ListExecutions", "Limit"): (1, 99),
    ("GetExecutionHistory", "Limit"): (1, 999),
    ("ListFlows", "Limit"): (1, 999),
}
JSON_OBJECTS = {("StartExecution", "Input"), ("ReportTaskSucceeded", "Output")}
TIMES = {"StartedTimeBegin", "StartedTimeEnd"}
STATUSES = {"Starting", "Running", "Succeeded", "Failed", "TimedOut", "Stopped"}

DEFINITION = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: hello\n"


def flow_doc(name: str = "orders", **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": "5a0b5f6e-1c47-4a8e-9b1e-2f5a8e2f0c11",
        "Definition": DEFINITION,
        "Description": "order intake",
        "Type": "FDL",
        "RoleArn": "",
        "CreatedTime": "2024-01-02T03:04:05.006Z",
        "LastModifiedTime": "2024-01-02T03:04:06.007Z",
        "ExecutionMode": "Standard",
        **extra,
    }


def execution_doc(
    name: str = "order-7", status: str = "Running", flow: str = "orders", **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "Name": name,
        "FlowName": flow,
        "FlowDefinition": DEFINITION,
        "Input": json.dumps({"id": 7}),
        "Status": status,
        "StartedTime": "2024-01-02T03:04:05.006Z",
        "StoppedTime": "",
    }
    if status == "Succeeded":
        doc.update(Output=json.dumps({"id": 7, "ok": True}), StoppedTime="2024-01-02T03:04:09.010Z")
    elif status in ("Failed", "Stopped", "TimedOut"):
        doc.update(
            Error="Booking.SoldOut", Cause="no seats", StoppedTime="2024-01-02T03:04:09.010Z"
        )
    doc.update(extra)
    return doc


def event_doc(
    event_id: int, kind: str, step: str = "", detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "EventId": event_id,
        "ScheduleEventId": max(event_id - 1, 0),
        "StepName": step,
        "Type": kind,
        "Time": f"2024-01-02T03:04:{event_id:02d}.000Z",
        "EventDetail": json.dumps(detail or {}),
    }


def default_answer(action: str, p: dict[str, str]) -> dict[str, Any]:
    """Canned answers that echo the names asked for."""
    if action in ("CreateFlow", "UpdateFlow", "DescribeFlow"):
        return flow_doc(p["Name"])
    if action == "ListFlows":
        return {"Flows": [flow_doc("orders"), flow_doc("refunds", Description="")], "NextToken": ""}
    if action == "DeleteFlow":
        return {}
    if action == "StartExecution":
        return execution_doc(
            p.get("ExecutionName") or "generated-1",
            "Running",
            p["FlowName"],
            Input=p.get("Input", "{}"),
        )
    if action == "DescribeExecution":
        return execution_doc(p["ExecutionName"], "Succeeded", p["FlowName"])
    if action == "StopExecution":
        return execution_doc(
            p["ExecutionName"],
            "Stopped",
            p["FlowName"],
            Error=p.get("Error", ""),
            Cause=p.get("Cause", ""),
        )
    if action == "ListExecutions":
        return {
            "Executions": [execution_doc("a", "Running"), execution_doc("b", "Succeeded")],
            "NextToken": "",
        }
    if action == "GetExecutionHistory":
        return {
            "Events": [event_doc(1, "ExecutionStarted"), event_doc(2, "StepEntered", "hello")],
            "NextToken": "",
        }
    if action in ("ReportTaskSucceeded", "ReportTaskFailed"):
        return {"EventId": 12}
    raise AssertionError(action)


Answer = Callable[[dict[str, str]], "tuple[int, Any] | dict[str, Any]"]


@dataclass
class Received:
    action: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeServer:
    """A strict, minimal stand-in for the API on 127.0.0.1."""

    keys: dict[str, str] = field(default_factory=lambda: {KEY_ID: SECRET})
    requests: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    url: str = ""

    def on(self, action: str, answer: Answer) -> None:
        self.answers[action] = answer

    def sequence(self, action: str, *docs: dict[str, Any]) -> None:
        """Answer ``action`` with these documents in turn (the last one repeats)."""
        queue = list(docs)
        self.on(action, lambda p: queue.pop(0) if len(queue) > 1 else queue[0])

    def fail(self, action: str, status: int, code: str, message: str = "refused") -> None:
        self.on(
            action, lambda p: (status, {"Code": code, "Message": message, "RequestId": "REQ-ERR"})
        )

    def actions(self) -> list[str]:
        return [r.action for r in self.requests]

    def last(self, action: str | None = None) -> Received:
        found = [r for r in self.requests if action is None or r.action == action]
        assert found, f"no {action or ''} request received; got {self.actions()}"
        return found[-1]

    # the protocol

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        def violation(message: str) -> tuple[int, Any]:
            self.violations.append(message)
            return 400, {
                "Code": "FakeProtocolViolation",
                "Message": message,
                "RequestId": "REQ-BAD",
            }

        if method != "POST" or path != "/":
            return violation(f"{method} {path}: the client must POST /")
        ctype = headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return violation(f"Content-Type is {ctype!r}, not a form")
        try:
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)
            )
        except (UnicodeDecodeError, ValueError) as exc:
            return violation(f"the body is not a form: {exc}")
        params = dict(pairs)
        if len(params) != len(pairs):
            return violation(f"repeated parameters in {pairs}")
        action = params.get("Action", "")
        if params.get("Version") != VERSION:
            return violation(f"Version is {params.get('Version')!r}")
        if action not in ACTIONS:
            return violation(f"unknown Action {action!r}")
        # who is calling
        if self.keys:
            missing = SIGNING - params.keys()
            if missing:
                return violation(f"unsigned request: no {sorted(missing)}")
            if (
                params["Format"] != "JSON"
                or params["SignatureMethod"] != SIGNATURE_METHOD
                or params["SignatureVersion"] != SIGNATURE_VERSION
            ):
                return violation(f"wrong signing parameters in {params}")
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if abs((datetime.now(UTC) - stamp).total_seconds()) > 900:
                return violation(f"Timestamp {params['Timestamp']} is off")
            if params["SignatureNonce"] in self.nonces:
                return violation("SignatureNonce reused")
            self.nonces.add(params["SignatureNonce"])
            secret = self.keys.get(params["AccessKeyId"])
            if secret is None:
                return 404, {
                    "Code": "InvalidAccessKeyId.NotFound",
                    "Message": "unknown key",
                    "RequestId": "REQ-KEY",
                }
            if sign(secret, method, params) != params["Signature"]:
                return 400, {
                    "Code": "SignatureDoesNotMatch",
                    "Message": "the signature does not match",
                    "RequestId": "REQ-SIG",
                }
        elif SIGNING & params.keys():
            return violation(f"signing parameters sent to a server without keys: {params}")
        own = {k: v for k, v in params.items() if k not in SIGNING | {"Action", "Version"}}
        required, optional = ACTIONS[action]
        if required - own.keys():
            return violation(f"{action} lacks {sorted(required - own.keys())}")
        if own.keys() - required - optional:
            return violation(
                f"{action} has unknown parameters {sorted(own.keys() - required - optional)}"
            )
        for name, value in own.items():
            if value == "" and name not in BLANK_OK:
                return violation(f"{action}: {name} is sent empty")
            if (action, name) in INT_RANGES:
                low, high = INT_RANGES[action, name]
                if not value.isdigit() or not low <= int(value) <= high:
                    return violation(f"{action}: {name}={value!r} is not {low}-{high}")
            if (action, name) in JSON_OBJECTS and not isinstance(json.loads(value), dict):
                return violation(f"{action}: {name} is not a JSON object")
            if name in TIMES:
                try:
                    datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
                except ValueError:
                    return violation(f"{action}: {name}={value!r} is not RFC 3339 UTC")
        if action == "CreateFlow" and own["Type"] != "FDL":
            return violation("Type must be FDL")
        if action == "ListExecutions" and own.get("Status", "Running") not in STATUSES:
            return violation(f"unknown Status {own['Status']!r}")
        self.requests.append(Received(action, own, headers))
        answer = self.answers.get(action)
        result = answer(own) if answer else default_answer(action, own)
        status, doc = result if isinstance(result, tuple) else (200, result)
        if status == 200:
            doc = {**doc, "RequestId": f"REQ-{len(self.requests)}"}
        return status, doc


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, doc = server.handle(self.command, self.path, headers, body)
            raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "application/json" if not isinstance(doc, bytes) else "text/html"
            )
            self.send_header("Content-Length", str(len(raw)))
            try:
                self.end_headers()
                self.wfile.write(raw)
            except ConnectionError:  # the client gave up waiting (the timeout test): fine
                self.close_connection = True

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeServer) -> None:
        super().__init__(("127.0.0.1", 0), _handler(state))
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never print from a server thread: CliRunner may own sys.stderr at that moment.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            self.state.violations.append(f"the fake server failed: {exc!r}")


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer()
    httpd = _HTTPServer(state)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    assert not state.violations, state.violations


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    with Client(fake.url, KEY_ID, SECRET, timeout=5) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- every method sends its action and parameters, signed --------------------------------------

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


# --- signatures --------------------------------------------------------------------------------


def test_signature_verifies_with_blank_and_special_values(fake, client):
    client.create_flow("orders", "a: 'b c'\n# ~*+%20&=\n", "")
    client.start_execution("orders", {"text": "ünïcödé ☃ + & = ~ * %"})
    assert fake.actions() == ["CreateFlow", "StartExecution"]
    assert fake.requests[0].params["Description"] == ""
    assert json.loads(fake.requests[1].params["Input"]) == {"text": "ünïcödé ☃ + & = ~ * %"}


def test_every_request_has_a_fresh_nonce(fake, client):
    for _ in range(3):
        client.describe_flow("orders")
    assert len(fake.nonces) == 3


def test_wrong_secret_is_refused_by_the_server(fake):
    with Client(fake.url, KEY_ID, "not-the-secret") as c, pytest.raises(ClientError) as info:
        c.describe_flow("orders")
    assert (info.value.code, info.value.status, info.value.request_id) == (
        "SignatureDoesNotMatch",
        400,
        "REQ-SIG",
    )


def test_without_a_key_requests_are_unsigned(fake):
    fake.keys = {}
    with Client(fake.url) as c:
        c.describe_execution("orders", "order-7")
    assert fake.last().params == {"FlowName": "orders", "ExecutionName": "order-7"}


def test_half_a_key_is_refused_before_sending():
    with pytest.raises(ValueError, match="access_key_secret"):
        Client("http://127.0.0.1:1", access_key_id="ops")
    with pytest.raises(ValueError, match="access_key_id"):
        AsyncClient("http://127.0.0.1:1", access_key_secret="x")


@pytest.mark.parametrize("endpoint", ["", "ftp://example.com", "http://"])
def test_bad_endpoints_are_refused(endpoint):
    with pytest.raises(ValueError, match="endpoint"):
        Client(endpoint)


def test_endpoint_without_scheme_means_http(fake):
    fake.keys = {}
    with Client(fake.url.removeprefix("http://") + "/") as c:
        assert c.endpoint == fake.url
        c.describe_flow("orders")


def test_from_config(fake):
    config = Config(
        client=ClientConfig(
            endpoint=fake.url, access_key_id=KEY_ID, access_key_secret=SECRET, timeout_seconds=7
        )
    )
    with Client.from_config(config) as c:
        assert c.timeout == 7 and c.access_key_id == KEY_ID
        c.describe_flow("orders")
    with Client.from_config(config.client) as c:
        c.describe_flow("orders")


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "ExecutionNotExists"),
        (409, "TaskAlreadyCompleted"),
        (403, "AccessDenied"),
        (500, "InternalError"),
    ],
)
def test_error_answers_become_client_errors(fake, client, status, code):
    fake.fail("ReportTaskSucceeded", status, code, "the first report won")
    with pytest.raises(ClientError) as info:
        client.report_task_succeeded("tok", {})
    err = info.value
    assert (err.code, err.message, err.status, err.request_id) == (
        code,
        "the first report won",
        status,
        "REQ-ERR",
    )
    assert str(err) == f"{code}: the first report won"


def test_an_answer_that_is_not_the_api_is_invalid_response(fake, client):
    fake.on("DescribeFlow", lambda p: (502, b"<html>bad gateway</html>"))
    with pytest.raises(ClientError) as info:
        client.describe_flow("orders")
    assert info.value.code == "InvalidResponse" and info.value.status == 502
    assert "bad gateway" in info.value.message

    fake.on("DescribeExecution", lambda p: {**execution_doc(), "Input": "[1, 2]"})
    with pytest.raises(ClientError, match="not a JSON object"):
        client.describe_execution("orders", "order-7")


def test_connection_refused_is_connection_failed():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, KEY_ID, SECRET, timeout=2) as c, pytest.raises(ClientError) as info:
        c.describe_flow("orders")
    assert info.value.code == "ConnectionFailed" and info.value.status == 0
    assert url in info.value.message


def test_long_poll_gets_more_time_than_the_timeout(fake):
    def slow(p: dict[str, str]) -> dict[str, Any]:
        time.sleep(1.0)
        return execution_doc(status="Succeeded")

    fake.on("DescribeExecution", slow)
    with Client(fake.url, KEY_ID, SECRET, timeout=0.5) as c:
        assert c.describe_execution("orders", "order-7", wait_seconds=1).succeeded
        with pytest.raises(ClientError) as info:
            c.describe_execution("orders", "order-7")
    assert info.value.code == "RequestTimeout"


@pytest.mark.parametrize("wait", [-1, 61, 1.5])
def test_wait_seconds_out_of_range_is_refused_before_sending(fake, client, wait):
    with pytest.raises(ValueError, match="wait_seconds"):
        client.describe_execution("orders", "order-7", wait_seconds=wait)
    assert fake.requests == []


def test_naive_datetimes_are_refused(client):
    with pytest.raises(ValueError, match="timezone-aware"):
        client.list_executions("orders", started_after=datetime(2024, 1, 1))


def test_client_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(ClientError("X", "y", 409, "r")))
    assert (err.code, err.message, err.status, err.request_id) == ("X", "y", 409, "r")


def test_mock_transport_as_documented():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"RequestId": "1", "EventId": 5})

    with Client("http://relayflow.test", transport=httpx.MockTransport(answer)) as c:
        assert c.report_task_succeeded("token", {}) == 5


# --- the async client --------------------------------------------------------------------------


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


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cli(fake, tmp_path, monkeypatch):
    """Run `relayflow <args>` with a relayflow.toml that points at the fake server."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "RELAYFLOW_CONFIG",
        "RELAYFLOW_CLIENT__ENDPOINT",
        "RELAYFLOW_CLIENT__ACCESS_KEY_ID",
        "RELAYFLOW_CLIENT__ACCESS_KEY_SECRET",
        "RELAYFLOW_CLIENT__TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "client.toml"  # not ./relayflow.toml: --config must be what finds it
    config.write_text(
        f'[client]\nendpoint = "{fake.url}"\naccess_key_id = "{KEY_ID}"\n'
        f'access_key_secret = "{SECRET}"\ntimeout_seconds = 5\n'
    )

    @click.group()
    def main() -> None:
        pass

    register(main)
    runner = CliRunner()

    def run(*args: str, config_path: str | None = str(config), input: str | None = None):
        extra = ["--config", config_path] if config_path else []
        result = runner.invoke(main, [*args, *extra], input=input)
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


def test_register_adds_the_three_groups():
    @click.group()
    def main() -> None:
        pass

    register(main)
    assert {"flows", "executions", "tasks"} <= set(main.commands)
    assert main.commands["flows"] is flows and main.commands["executions"] is executions
    assert main.commands["tasks"] is tasks
    assert set(flows.commands) == {"create", "update", "describe", "list", "delete"}
    assert set(executions.commands) == {"start", "describe", "list", "history", "stop"}
    assert set(tasks.commands) == {"succeed", "fail"}


@pytest.mark.parametrize(
    "path",
    [
        ("flows", "create"),
        ("flows", "update"),
        ("flows", "describe"),
        ("flows", "list"),
        ("flows", "delete"),
        ("executions", "start"),
        ("executions", "describe"),
        ("executions", "list"),
        ("executions", "history"),
        ("executions", "stop"),
        ("tasks", "succeed"),
        ("tasks", "fail"),
    ],
)
def test_every_command_teaches_with_an_example(cli, path):
    result = cli(*path, "--help", config_path=None)
    assert result.exit_code == 0
    assert re.search(rf"^ +relayflow {' '.join(path)}\b", result.stdout, re.M)
    assert "--config" in result.stdout


def test_flows_create_update_describe_list_delete(cli, fake, tmp_path):
    definition = tmp_path / "orders.yaml"
    definition.write_text(DEFINITION)
    result = cli("flows", "create", "orders", "--definition", str(definition))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "created flow orders (id 5a0b5f6e-1c47-4a8e-9b1e-2f5a8e2f0c11)"
    assert fake.last().params == {
        "Name": "orders",
        "Definition": DEFINITION,
        "Description": "",
        "Type": "FDL",
    }

    result = cli("flows", "update", "orders", "--definition", "-", input="version: v1\n")
    assert result.exit_code == 0 and result.stdout.strip() == "updated flow orders"
    assert fake.last().params == {"Name": "orders", "Definition": "version: v1\n"}

    result = cli("flows", "describe", "orders")
    assert result.exit_code == 0
    assert "Name:        orders" in result.stdout and "Description: order intake" in result.stdout
    assert result.stdout.rstrip().endswith("name: hello")

    result = cli("flows", "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "MODIFIED", "DESCRIPTION"]
    assert lines[1].split() == ["orders", "FDL", "2024-01-02T03:04:06.007Z", "order", "intake"]
    assert lines[2].split() == ["refunds", "FDL", "2024-01-02T03:04:06.007Z", "-"]

    result = cli("flows", "delete", "orders")
    assert result.exit_code == 0 and result.stdout.strip() == "deleted flow orders"
    assert fake.actions() == ["CreateFlow", "UpdateFlow", "DescribeFlow", "ListFlows", "DeleteFlow"]


def test_unreadable_definition_is_exit_2_and_nothing_is_sent(cli, fake):
    result = cli("flows", "create", "orders", "--definition", "missing.yaml")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "relayflow: FileNotReadable: cannot read the definition missing.yaml: No such file or directory\n"
    )
    assert fake.requests == []


def test_flow_refused_by_the_server_is_exit_1(cli, fake, tmp_path):
    fake.fail("CreateFlow", 400, "InvalidDefinition", "steps[0].goto: no sibling step named 'x'")
    (tmp_path / "f.yaml").write_text(DEFINITION)
    result = cli("flows", "create", "orders", "--definition", str(tmp_path / "f.yaml"))
    assert result.exit_code == 1
    assert (
        result.stderr == "relayflow: InvalidDefinition: steps[0].goto: no sibling step named 'x'\n"
    )
    assert result.stdout == ""


def test_executions_start_prints_the_name(cli, fake):
    result = cli("executions", "start", "orders", "--input", '{"id": 7}', "--name", "order-7")
    assert result.exit_code == 0 and result.stdout == "order-7\n"
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "Input": '{"id":7}',
    }

    result = cli("executions", "start", "orders")
    assert result.stdout == "generated-1\n"
    assert fake.last().params == {"FlowName": "orders"}


def test_executions_start_input_file(cli, fake, tmp_path):
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    result = cli("executions", "start", "orders", "--input-file", "in.json")
    assert result.exit_code == 0
    assert json.loads(fake.last().params["Input"]) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "relayflow: InvalidJSON: --input is not valid JSON: "),
        ("[1, 2]", "relayflow: InvalidJSON: --input must be a JSON object, not list"),
    ],
)
def test_executions_start_bad_input_is_exit_2(cli, fake, text, message):
    result = cli("executions", "start", "orders", "--input", text)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    ("final", "code"), [("Succeeded", 0), ("Failed", 1), ("Stopped", 1), ("TimedOut", 1)]
)
def test_executions_start_wait_prints_the_end_and_exits_by_status(cli, fake, final, code):
    fake.sequence("DescribeExecution", execution_doc(status="Running"), execution_doc(status=final))
    result = cli(
        "executions", "start", "orders", "--input", '{"id": 7}', "--name", "order-7", "--wait"
    )
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["Name"] == "order-7" and doc["FlowName"] == "orders" and doc["Status"] == final
    assert {"Input", "StartedTime", "StoppedTime"} <= doc.keys()
    assert "FlowDefinition" not in doc
    if final == "Succeeded":
        assert json.loads(doc["Output"]) == {"id": 7, "ok": True}
    else:
        assert (doc["Error"], doc["Cause"]) == ("Booking.SoldOut", "no seats")
    assert fake.actions() == ["StartExecution", "DescribeExecution", "DescribeExecution"]
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "WaitTimeSeconds": "60",
    }


def test_executions_describe_json_and_wait(cli, fake):
    result = cli("executions", "describe", "orders", "order-7", "--wait", "30", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert list(doc) == [
        "Name",
        "FlowName",
        "Status",
        "Input",
        "Output",
        "StartedTime",
        "StoppedTime",
    ]
    assert doc["Status"] == "Succeeded" and doc["Input"] == '{"id": 7}'
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "WaitTimeSeconds": "30",
    }


def test_executions_describe_readable(cli, fake):
    fake.on("DescribeExecution", lambda p: execution_doc(status="Running"))
    result = cli("executions", "describe", "orders", "order-7")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "Name:    order-7",
        "Flow:    orders",
        "Status:  Running",
        "Started: 2024-01-02T03:04:05.006Z",
        "Stopped: -",
        'Input:   {"id":7}',
        "Output:  -",
    ]
    assert "WaitTimeSeconds" not in fake.last().params


def test_executions_describe_wait_over_60_is_a_usage_error(cli, fake):
    result = cli("executions", "describe", "orders", "order-7", "--wait", "61")
    assert result.exit_code == 2 and fake.requests == []


def test_executions_describe_missing_is_exit_1(cli, fake):
    fake.fail("DescribeExecution", 404, "ExecutionNotExists", "no execution order-9 of flow orders")
    result = cli("executions", "describe", "orders", "order-9", "--json")
    assert result.exit_code == 1
    assert result.stderr == "relayflow: ExecutionNotExists: no execution order-9 of flow orders\n"


def test_executions_list_table_and_status(cli, fake):
    fake.sequence(
        "ListExecutions",
        {"Executions": [execution_doc("order-1", "Running")], "NextToken": "order-1"},
        {"Executions": [execution_doc("order-2", "Succeeded")], "NextToken": ""},
    )
    result = cli("executions", "list", "orders", "--status", "running")
    assert result.exit_code == 0
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["NAME", "STATUS", "STARTED", "STOPPED"],
        ["order-1", "Running", "2024-01-02T03:04:05.006Z", "-"],
        ["order-2", "Succeeded", "2024-01-02T03:04:05.006Z", "2024-01-02T03:04:09.010Z"],
    ]
    assert [r.params for r in fake.requests] == [
        {"FlowName": "orders", "Status": "Running"},
        {"FlowName": "orders", "Status": "Running", "NextToken": "order-1"},
    ]


def test_executions_list_rejects_unknown_status(cli, fake):
    result = cli("executions", "list", "orders", "--status", "Sleeping")
    assert result.exit_code == 2 and fake.requests == []


def _two_history_pages(fake: FakeServer) -> None:
    def history(p: dict[str, str]) -> dict[str, Any]:
        if not p.get("NextToken"):
            return {
                "Events": [
                    event_doc(1, "ExecutionStarted"),
                    event_doc(2, "TaskSubmitted", "book", {"messageId": "x" * 100}),
                ],
                "NextToken": "2",
            }
        return {
            "Events": [event_doc(3, "TaskSucceeded", "book", {"output": {"ok": True}})],
            "NextToken": "",
        }

    fake.on("GetExecutionHistory", history)


def test_executions_history_json_follows_pages(cli, fake):
    _two_history_pages(fake)
    result = cli("executions", "history", "orders", "order-7", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert list(doc) == ["Events"]
    assert [e["EventId"] for e in doc["Events"]] == [1, 2, 3]
    assert set(doc["Events"][0]) == {
        "EventId",
        "ScheduleEventId",
        "StepName",
        "Type",
        "Time",
        "EventDetail",
    }
    assert json.loads(doc["Events"][2]["EventDetail"]) == {"output": {"ok": True}}
    assert [r.params.get("NextToken") for r in fake.requests] == [None, "2"]


def test_executions_history_table(cli, fake):
    _two_history_pages(fake)
    result = cli("executions", "history", "orders", "order-7")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "TYPE", "STEP", "DETAIL"]
    assert lines[1].split() == ["1", "2024-01-02T03:04:01.000Z", "ExecutionStarted", "-"]
    assert lines[2].split()[:4] == ["2", "2024-01-02T03:04:02.000Z", "TaskSubmitted", "book"]
    assert lines[2].endswith("…") and len(lines[2].split()[4]) == 60
    assert lines[3].split() == [
        "3",
        "2024-01-02T03:04:03.000Z",
        "TaskSucceeded",
        "book",
        '{"output":{"ok":true}}',
    ]


def test_executions_stop(cli, fake):
    result = cli(
        "executions",
        "stop",
        "orders",
        "order-7",
        "--error",
        "Cancelled",
        "--cause",
        "customer called",
    )
    assert result.exit_code == 0 and result.stdout == "order-7: Stopped\n"
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "Error": "Cancelled",
        "Cause": "customer called",
    }
    fake.fail("StopExecution", 409, "ExecutionNotRunning", "order-7 has ended")
    result = cli("executions", "stop", "orders", "order-7")
    assert (
        result.exit_code == 1
        and result.stderr == "relayflow: ExecutionNotRunning: order-7 has ended\n"
    )


def test_tasks_succeed_and_fail(cli, fake):
    result = cli("tasks", "succeed", "tok-1", "--output", '{"booked": true}')
    assert result.exit_code == 0 and result.stdout == "reported TaskSucceeded (event 12)\n"
    assert fake.last().params == {"TaskToken": "tok-1", "Output": '{"booked":true}'}

    result = cli("tasks", "fail", "tok-2", "--error", "Booking.SoldOut", "--cause", "no seats")
    assert result.exit_code == 0 and result.stdout == "reported TaskFailed (event 12)\n"
    assert fake.last().params == {
        "TaskToken": "tok-2",
        "Error": "Booking.SoldOut",
        "Cause": "no seats",
    }


def test_tasks_duplicate_report_is_exit_1(cli, fake):
    fake.fail(
        "ReportTaskSucceeded",
        409,
        "TaskAlreadyCompleted",
        "the task was completed by an earlier report",
    )
    result = cli("tasks", "succeed", "tok", "--output", "{}")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "relayflow: TaskAlreadyCompleted: the task was completed by an earlier report\n"
    )


def test_tasks_bad_output_is_exit_2(cli, fake):
    result = cli("tasks", "succeed", "tok", "--output", '"text"')
    assert result.exit_code == 2
    assert result.stderr == "relayflow: InvalidJSON: --output must be a JSON object, not str\n"
    result = cli("tasks", "fail", "tok", "--cause", "x")
    assert result.exit_code == 2  # --error is required
    assert fake.requests == []


def test_unreachable_server_is_one_line_exit_1(cli, tmp_path):
    config = tmp_path / "down.toml"
    config.write_text(f'[client]\nendpoint = "http://127.0.0.1:{free_port()}"\n')
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "relayflow: ConnectionFailed: cannot reach the server at http://127.0.0.1:"
    )
    assert result.stderr.count("\n") == 1


def test_bad_configuration_is_exit_2(cli, fake, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[client\n")
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"relayflow: InvalidConfig: {config}: not valid TOML")
    config.write_text('[client]\naccess_key_id = "only-the-id"\n')
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "relayflow: InvalidConfig: access_key_id is set but access_key_secret"
    )
    assert fake.requests == []


def test_wrong_secret_in_configuration_is_exit_1(cli, fake, tmp_path):
    config = tmp_path / "wrong.toml"
    config.write_text(
        f'[client]\nendpoint = "{fake.url}"\naccess_key_id = "{KEY_ID}"\naccess_key_secret = "wrong-secret"\n'
    )
    result = cli("flows", "describe", "orders", config_path=str(config))
    assert result.exit_code == 1
    assert result.stderr == "relayflow: SignatureDoesNotMatch: the signature does not match\n"


def test_environment_configures_the_client(cli, fake, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_CLIENT__ENDPOINT", fake.url)
    monkeypatch.setenv("RELAYFLOW_CLIENT__ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("RELAYFLOW_CLIENT__ACCESS_KEY_SECRET", SECRET)
    result = cli("executions", "start", "orders", config_path=None)
    assert result.exit_code == 0, result.output
    assert fake.actions() == ["StartExecution"]
