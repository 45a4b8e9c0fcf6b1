"""A strict fake of the API server for the client's and the remote commands' tests.

The fake speaks the wire protocol only: `POST /` with a form body, `Action` and
`Version=2019-03-15`, the action's parameters (no unknown ones, required ones present, values
well-formed), and a signature it recomputes with `relayflow.api.signature.sign`. Anything else
is a protocol violation, which fails the test at teardown.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from relayflow.api.signature import SIGNATURE_METHOD, SIGNATURE_VERSION, sign

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


@contextmanager
def serve_fake() -> Iterator[FakeServer]:
    """Run a `FakeServer` on a free loopback port; fail at the end if it saw a violation."""
    state = FakeServer()
    httpd = _HTTPServer(state)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not state.violations, state.violations


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
