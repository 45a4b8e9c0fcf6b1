"""Hostile requests and definitions against a real `relayflow server` (hypothesis).

Every action of the API gets random and boundary parameters (see `tests.fuzz_strategies`),
signed with a real key, and every answer must hold these properties:

- no 5xx: refusals are 4xx JSON with `Code`, `Message` and `RequestId`, and no answer shows a
  traceback, the repr of an exception, an access key's secret or "relayflow internal error";
- parameters that are not UTF-8 are refused as such;
- a bounded time (a hang detector, not a speed test) and `/health` answers right after;
- a refused request changes nothing: the flows, the flow under test, its executions, the
  running and finished executions with their histories, and whatever the request named are
  as they were.

At the end of the module the server's memory has not grown past a bound and its log shows no
traceback and no error.

The number of examples comes from RELAYFLOW_FUZZ_EXAMPLES (`make fuzz` runs many more).
Examples are derandomized so that a failure in CI shows again on the next run; with
RELAYFLOW_FUZZ_RANDOM=1 each run draws new ones (and keeps failures in .hypothesis).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from tests.api_server import KEYS, ApiServer
from tests.fuzz_strategies import (
    FuzzRequest,
    Raw,
    condition_flow,
    definitions,
    expression_flows,
    json_texts,
    requests,
    resolve,
    task_flow,
    wait_seconds,
)

EXAMPLES = int(os.environ.get("RELAYFLOW_FUZZ_EXAMPLES", "100"))
RANDOM = os.environ.get("RELAYFLOW_FUZZ_RANDOM") == "1"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=settings.default.database if RANDOM else None,
    # Examples are large on purpose, and each one is a few requests to a real server.
    suppress_health_check=list(HealthCheck),
)

# A callback task, then a step that nests what the task returned one level deeper: a report
# within the depth limit makes data past it (the engine must fail the step, nothing else).
FLOW = task_flow(
    extra="    outputMappings:\n      - target: result\n        source: $local\n"
    "  - type: pass\n    name: wrap\n    inputMappings:\n      - target: all\n"
    "        source: $input\n    outputMappings:\n      - target: again\n"
    "        source: $input\n"
)
# A hang detector: every answer comes far sooner on any machine (a long poll adds its wait).
ANSWER_WITHIN = 10.0
SETTLE_WITHIN = 10.0  # bounded waits for the server's own background work
RSS_GROWTH_BOUND = 256 * 1024 * 1024
STARTS_PER_FLOW = 40  # the flow under test is replaced past this many executions
FORM_TYPE = b"application/x-www-form-urlencoded"
SECRETS = [secret for _key_id, secret in KEYS.values()]

# What a Python exception looks like when it leaks into an answer.
LEAKS = re.compile(
    r"Traceback \(most recent call last\)"
    r'|File "[^"]*", line \d+'
    r"|<[\w.]+ object at 0x[0-9a-f]+>"
    r"|\b[A-Z]\w*(?:Error|Exception)\("
    r"|relayflow internal error"
)
# A Python exception's type and message, as the engine writes an integration's failure.
PYTHON_ERROR = re.compile(r"[A-Z]\w*(?:Error|Exception): ")


# -- the objects under test -------------------------------------------------------------------


@dataclass
class World:
    """The flow under test, its running and finished executions, and their task tokens."""

    server: ApiServer
    flow: str = ""
    running: str = ""
    finished: str = ""
    token: str = ""
    done_token: str = ""
    starts: int = 0
    names: Iterator[int] = field(default_factory=itertools.count)
    created: list[str] = field(default_factory=list)  # flows the definitions test made

    def __repr__(self) -> str:  # short, for hypothesis's report of a failing example
        return f"World(flow={self.flow!r}, running={self.running!r}, finished={self.finished!r})"

    def fresh(self) -> str:
        """A valid name that no flow or execution has."""
        return f"fz{uuid.uuid4().hex[:6]}{next(self.names)}"

    def live(self) -> dict[str, str]:
        """The values that `Ref`s stand for, with one fresh name for this example."""
        return {
            "flow": self.flow,
            "running": self.running,
            "finished": self.finished,
            "fresh": self.fresh(),
            "token": self.token,
            "done_token": self.done_token,
        }

    # -- setting up and restoring ------------------------------------------------------------

    def build(self) -> None:
        """A new flow under test with a finished and a running execution (the old one goes)."""
        old = self.flow
        self.flow = f"fuzz-{self.fresh()}"
        self.server.ok({"Action": "CreateFlow", "Name": self.flow, "Definition": FLOW})
        self.finished, self.done_token = self._start("done")
        doc = self.server.ok(
            {"Action": "ReportTaskSucceeded", "TaskToken": self.done_token, "Output": "{}"},
            "worker",
        )
        assert doc["EventId"] > 0
        self._wait(lambda: self.server.describe(self.flow, self.finished)["Status"] != "Running")
        self.running, self.token = self._start("run")
        self.starts = 2
        if old:
            self.server.rpc({"Action": "DeleteFlow", "Name": old})

    def _start(self, prefix: str) -> tuple[str, str]:
        name = f"{prefix}{next(self.names)}"
        self.server.ok({"Action": "StartExecution", "FlowName": self.flow, "ExecutionName": name})
        (message,) = self.server.wait_messages(self.flow, name, timeout=SETTLE_WITHIN)
        self._wait(lambda: self.server.history(self.flow, name)[-1]["Type"] == "TaskSubmitted")
        return name, message["token"]

    @staticmethod
    def _wait(done: Any) -> None:
        deadline = time.monotonic() + SETTLE_WITHIN
        while not done():
            assert time.monotonic() < deadline, "the server did not settle"
            time.sleep(0.01)

    def restore(self, sent: Sent, keep: bool) -> None:
        """Put back what an accepted request changed."""
        action = sent.params.get("Action")
        if action == "CreateFlow" and not keep:
            # Gone at once: a later example could name it while its executions still run.
            self.server.ok({"Action": "DeleteFlow", "Name": sent.params["Name"]})
        elif action == "CreateFlow":
            self.created.append(str(sent.params["Name"]))
        if action == "StartExecution":
            self.starts += 1
            if sent.params.get("CallbackFnFTaskToken"):
                # A child execution may report to a task of the flow under test at any time.
                self.build()
                return
        flow = self.server.rpc({"Action": "DescribeFlow", "Name": self.flow}).json()
        if flow.get("Code") == "FlowNotExists" or self.starts > STARTS_PER_FLOW:
            self.build()
            return
        if flow["Definition"] != FLOW:
            self.server.ok({"Action": "UpdateFlow", "Name": self.flow, "Definition": FLOW})
        if self.server.describe(self.flow, self.running).get("Status") != "Running":
            self.running, self.token = self._start("run")
            self.starts += 1

    # -- what a refused request must leave as it was -----------------------------------------

    def snapshot(self, named: Mapping[str, str | bytes]) -> dict[str, Any]:
        """The state a request could have changed: ours, and the objects it named."""
        state: dict[str, Any] = {
            "flows": self.server.ok({"Action": "ListFlows", "Limit": "999"}),
            "flow": self.server.rpc({"Action": "DescribeFlow", "Name": self.flow}).json(),
            "executions": self.server.ok(
                {"Action": "ListExecutions", "FlowName": self.flow, "Limit": "99"}
            ),
        }
        state["flow"].pop("RequestId")
        for name in (self.running, self.finished):
            state[name] = (self.server.describe(self.flow, name), self.history(self.flow, name))
        for flow, execution in named_executions(named):
            if flow != self.flow or execution not in (self.running, self.finished):
                state[f"{flow}/{execution}"] = self.server.describe(flow, execution)
        return state

    def history(self, flow: str, execution: str) -> list[dict[str, Any]] | str:
        doc = self.server.rpc(
            {
                "Action": "GetExecutionHistory",
                "FlowName": flow,
                "ExecutionName": execution,
                "Limit": "999",
            }
        ).json()
        return doc.get("Events") or doc["Code"]


def named_executions(params: Mapping[str, str | bytes]) -> set[tuple[str, str]]:
    """The (flow, execution) pairs a request names, through its names or its tokens."""
    pairs = set()
    flow, execution = params.get("FlowName"), params.get("ExecutionName")
    if isinstance(flow, str) and isinstance(execution, str):
        pairs.add((flow, execution))
    for key in ("TaskToken", "CallbackFnFTaskToken"):
        token = params.get(key)
        try:
            fields = base64.b64decode(token or "", validate=True).decode().split("#")
        except ValueError:
            continue
        if len(fields) >= 3:
            pairs.add((fields[1], fields[2]))
    return {(f, e) for f, e in pairs if f and e and len(f) + len(e) < 400}


# -- sending ----------------------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer as it came off the socket."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass
class Sent:
    """A request as sent: its parameters (text, or bytes that are not UTF-8) and its answer."""

    params: dict[str, str | bytes]
    answer: Answer
    seconds: float

    @property
    def utf8(self) -> bool:
        return all(isinstance(v, str) for v in self.params.values())


def exchange(port: int, head: bytes, body: bytes, timeout: float) -> Answer:
    """One request on a connection of its own; the answer read until the server closes.

    A raw socket, because a client library refuses what a hostile client sends (a 100 KB
    query string, for one). The server may answer and close before it has read everything
    (431, 413): what it said is read all the same.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = data.partition(b"\r\n")
    raw_headers, _, content = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), f"not an HTTP answer: {data[:300]!r}"
    headers = {}
    for line in raw_headers.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        assert len(content) == length, f"an answer cut short: {data[:300]!r}"
    return Answer(int(status_line.split()[1]), headers, content)


def _encode(value: str | bytes) -> str:
    return quote(value.encode() if isinstance(value, str) else value, safe="~")


def _utf8(value: str | bytes) -> str | bytes:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


def send(world: World, request: FuzzRequest, live: Mapping[str, str]) -> Sent:
    """Sign ``request`` as its role says, send it as its transport says, time the answer."""
    params = {k: _utf8(resolve(v, live)) for k, v in request.params.items()}
    if request.action is not None and "Action" not in params:
        params["Action"] = request.action
    method = "GET" if request.transport == "get" else "POST"
    text = {k: v for k, v in params.items() if isinstance(v, str)}
    wire: dict[str, str | bytes] = dict(params)
    if request.role in KEYS:
        wire.update(world.server.signed(text, request.role, method=method))
    elif request.role == "tampered":
        wire.update(world.server.signed(text, "admin", method=method))
        wire["SignatureNonce"] = str(wire["SignatureNonce"]) + "0"  # signed, then changed
    wire.update({k: v for k, v in params.items() if isinstance(v, bytes)})
    pairs = [f"{_encode(k)}={_encode(v)}".encode() for k, v in wire.items()]
    if request.transport in ("form", "text"):
        query, form = [], pairs
    elif request.transport == "split":  # every other parameter in the query string
        query, form = pairs[::2], pairs[1::2]
    else:
        query, form = pairs, []
    target = b"/?" + b"&".join(query) if query else b"/"
    body = b"&".join(form)
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (
        method.encode(),
        target,
        world.server.endpoint.encode(),
    )
    if body:
        kind = b"text/plain" if request.transport == "text" else FORM_TYPE
        head += b"Content-Type: %s\r\n" % kind
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    started = time.monotonic()
    answer = exchange(world.server.port, head, body, ANSWER_WITHIN + 70)
    return Sent(params, answer, time.monotonic() - started)


# -- the properties ---------------------------------------------------------------------------


def check_answer(sent: Sent, request: FuzzRequest) -> None:
    """Properties of every answer."""
    answer, shown = (
        sent.answer,
        f"{request!r}\n-> {sent.answer.status_code} {sent.answer.text[:2000]}",
    )
    assert answer.status_code < 500, f"a server error:\n{shown}"
    assert answer.headers.get("content-type") == "application/json", shown
    doc = answer.json()
    assert isinstance(doc, dict) and isinstance(doc.get("RequestId"), str), shown
    assert doc["RequestId"], shown
    if answer.status_code != 200:
        assert isinstance(doc.get("Code"), str) and doc["Code"], shown
        assert isinstance(doc.get("Message"), str) and doc["Message"], shown
        assert not LEAKS.search(answer.text), f"an internal error shows in the answer:\n{shown}"
    assert "relayflow internal error" not in answer.text, shown
    for text in embedded_json(doc):
        try:
            json.loads(text, parse_constant=_not_json)
        except ValueError as exc:
            raise AssertionError(
                f"the answer holds JSON that is not JSON ({exc}):\n{shown}"
            ) from None
    for secret in SECRETS:
        assert secret not in answer.text, f"a key's secret in the answer:\n{shown}"
    if not sent.utf8:
        assert (answer.status_code, doc.get("Code")) in {
            (400, "InvalidParameter"),
            (413, "EntityTooLarge"),
            (415, "UnsupportedMediaType"),
            (431, "RequestHeaderFieldsTooLarge"),
        }, f"parameters that are not UTF-8 were not refused as such:\n{shown}"
    waited = 0
    if request.action == "DescribeExecution":
        wait = sent.params.get("WaitTimeSeconds")
        waited = max(0, wait_seconds(wait)) if isinstance(wait, str) else 0
    bound = ANSWER_WITHIN + waited
    assert sent.seconds < bound, f"no answer within {bound} s:\n{shown}"


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def embedded_json(doc: Any) -> Iterator[str]:
    """The JSON documents an answer carries as text: Input, Output, EventDetail."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("Input", "Output", "EventDetail") and isinstance(value, str) and value:
                yield value
            else:
                yield from embedded_json(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from embedded_json(item)


def check_health(world: World) -> None:
    health = world.server.http.get("/health")
    assert (health.status_code, health.json()) == (200, {"Status": "ok"}), health.text


def exercise(world: World, request: FuzzRequest, keep: bool = False) -> Sent:
    """Send one request and check every property; restore what an accepted one changed.

    A flow it creates is deleted at once, unless ``keep``: then the last test looks at it.
    """
    live = world.live()
    named = {k: _utf8(resolve(v, live)) for k, v in request.params.items()}
    before = world.snapshot(named)
    sent = send(world, request, live)
    if currently_in_test_context():  # which answers the examples reached, for statistics
        event(f"{request.action} -> {sent.answer.status_code} {sent.answer.json().get('Code', '')}")
    check_answer(sent, request)
    check_health(world)
    if sent.answer.status_code == 200:
        world.restore(sent, keep)
    else:
        after = world.snapshot(named)
        assert after == before, (
            f"a refused request changed the state:\n{request!r}\n-> {sent.answer.text[:2000]}\n"
            f"changed: {sorted(k for k in before if before[k] != after.get(k))}"
        )
    return sent


# -- fixtures ---------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Start:
    """Where the server was when the module began: its memory and the length of its log."""

    rss: int
    log_offset: int


@pytest.fixture(scope="module")
def start(api_server: ApiServer) -> Start:
    return Start(rss_bytes(api_server.process.pid), len(api_server.log()))


@pytest.fixture(scope="module")
def world(api_server: ApiServer, start: Start) -> Iterator[World]:
    built = World(api_server)
    built.build()
    yield built
    for name in [built.flow, *built.created]:
        api_server.rpc({"Action": "DeleteFlow", "Name": name})


# -- the tests --------------------------------------------------------------------------------


@FUZZ
@given(request=requests())
def test_any_action_with_hostile_parameters(world: World, request: FuzzRequest) -> None:
    exercise(world, request)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(
    request=requests(["StartExecution", "StopExecution", "ReportTaskSucceeded", "ReportTaskFailed"])
)
def test_writes_to_executions_with_hostile_parameters(world: World, request: FuzzRequest) -> None:
    exercise(world, request)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(definition=definitions(), data=json_texts(4000), output=json_texts(4000))
def test_hostile_definitions(world: World, definition: str | Raw, data: str, output: str) -> None:
    """A hostile definition is refused, or makes a flow whose execution runs or fails cleanly."""
    run_definition(world, definition, data, output)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(definition=expression_flows(), data=st.sampled_from(["{}", '{"a": 1}', '{"a": [[1]]}']))
def test_hostile_conditions_and_paths(world: World, definition: str, data: str) -> None:
    """Conditions and paths that nest deeply or repeat: refused, or run cleanly."""
    run_definition(world, definition, data, "{}")


@pytest.mark.parametrize(
    ("definition", "data", "output"),
    [
        (task_flow(), '{"a": NaN}', "{}"),
        (task_flow(), "{}", '{"a": Infinity}'),
        (task_flow(), '{"a": 1e400}', "{}"),
        (task_flow("      value: !!binary aGVsbG8=\n"), "{}", "{}"),
        (condition_flow("(" * 300 + "$.a == 1" + ")" * 300), "{}", "{}"),
        (condition_flow("!" * 1000 + "$.a"), "{}", "{}"),
        # Accepted by CreateFlow, whose thread has stack to spare; StartExecution loads it again
        # deeper in the stack, and fails.
        (condition_flow("(" * 196 + "$.a == 1" + ")" * 196), "{}", "{}"),
    ],
    ids=[
        "nan-input",
        "infinite-output",
        "overflowing-input",
        "binary-constant",
        "deeply-parenthesized-condition",
        "many-negations-condition",
        "condition-created-but-not-started",
    ],
)
def test_what_the_fuzzing_found(world: World, definition: str, data: str, output: str) -> None:
    """Examples the fuzzing found: values JSON cannot hold, conditions that nest deeply."""
    run_definition(world, definition, data, output)


def run_definition(world: World, definition: str | Raw, data: str, output: str) -> None:
    """Create a flow, start it with ``data``, report ``output`` for its first task.

    Every answer is checked; the execution may run or fail, but cleanly: what it is given,
    what its steps make and what its tasks are given is JSON, and it does not fail with a
    Python exception (which the queue's worker raises on data it cannot send).
    """
    create = FuzzRequest("CreateFlow", {"Name": world.fresh(), "Definition": definition})
    if exercise(world, create, keep=True).answer.status_code != 200:
        return
    name = str(create.params["Name"])
    assert isinstance(definition, str)  # bytes that are not UTF-8 were refused
    start = FuzzRequest("StartExecution", {"FlowName": name, "ExecutionName": "e", "Input": data})
    if exercise(world, start).answer.status_code == 200:
        token = None
        if "waitForCallback" in definition:
            token = task_token(world.server, name, "e")
        if token is not None:  # the worker's part: a hostile report
            report = {"TaskToken": token, "Output": output}
            exercise(world, FuzzRequest("ReportTaskSucceeded", report, "worker"))
        exercise(world, FuzzRequest("DescribeExecution", {"FlowName": name, "ExecutionName": "e"}))
        history = {"FlowName": name, "ExecutionName": "e", "Limit": "999"}
        events = exercise(world, FuzzRequest("GetExecutionHistory", history)).answer.json()
        for entry in events["Events"]:
            cause = json.loads(entry["EventDetail"] or "{}").get("cause", "")
            assert not PYTHON_ERROR.match(cause), (
                f"an execution of a hostile definition failed with a Python exception:\n"
                f"{entry}\ndefinition:\n{definition[:2000]}"
            )
    update = FuzzRequest("UpdateFlow", {"Name": name, "Definition": definition})
    exercise(world, update)


def task_token(server: ApiServer, flow: str, execution: str) -> str | None:
    """The token of the execution's first task once the queue has it; None if it never will.

    A bounded wait: the task is sent after StartExecution has answered, or never (the
    execution may end, or fail, before any task is sent).
    """
    deadline = time.monotonic() + SETTLE_WITHIN
    while time.monotonic() < deadline:
        messages = server.messages(flow, execution)
        if messages:
            return str(messages[0]["token"])
        if server.describe(flow, execution).get("Status") != "Running":
            return None
        time.sleep(0.01)
    return None


@given(bad=st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"]))
@settings(FUZZ, max_examples=4)
def test_bytes_that_are_not_utf8_are_refused_wherever_they_are(world: World, bad: bytes) -> None:
    for key in ("Name", "Definition", "Action", "Signature"):
        request = FuzzRequest("CreateFlow", {key: Raw(b"x" + bad)})
        answer = exercise(world, request).answer
        assert (answer.status_code, answer.json()["Code"]) == (400, "InvalidParameter")


def test_the_server_is_well_after_the_fuzzing(
    api_server: ApiServer, world: World, start: Start
) -> None:
    """Memory within a bound, no traceback or error in the log, the server still answers."""
    for name in world.created:
        doc = api_server.rpc({"Action": "ListExecutions", "FlowName": name, "Limit": "99"}).json()
        for execution in doc.get("Executions", []):
            info = api_server.describe(name, execution["Name"])
            assert "internal error" not in json.dumps(info), info
    grown = rss_bytes(api_server.process.pid) - start.rss
    assert grown < RSS_GROWTH_BOUND, f"the server's memory grew by {grown / 2**20:.0f} MiB"
    log = api_server.log()[start.log_offset :]
    bad = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    assert not bad, "the server logged errors during the fuzzing:\n" + log[-5000:]
    check_health(world)
    assert api_server.http.get("/ready").status_code == 200
