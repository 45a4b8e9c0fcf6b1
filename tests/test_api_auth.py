"""Who may call the API, against a real server: every refusal has its code and changes nothing.

Requests are built by hand (httpx and `relayflow.api.signature`), so that they can be forged,
tampered with, replayed or sent too late. After each refusal the test checks, with a describe,
that nothing changed: the execution it aimed at, its history, the flow's executions and the
list of flows are what they were.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkfnf.request.v20190315 import StartExecutionRequest

from relayflow.api import Authenticator
from relayflow.api.signature import sign, signed_params
from relayflow.config import AccessKey
from relayflow.errors import EngineError
from tests.api_server import (
    EXE,
    KEYS,
    MAX_BODY_BYTES,
    TOKEN_FLOW,
    WINDOW_SECONDS,
    ApiServer,
    config_text,
    server_env,
    serving,
)

MAX_NONCE_LENGTH = 128  # the default of server.max_nonce_length

FLOW = TOKEN_FLOW


@pytest.fixture(scope="module")
def target(api_server: ApiServer) -> SimpleNamespace:
    """A flow with one running execution, `victim`, waiting for its task's report."""
    flow = f"auth-{uuid.uuid4().hex[:8]}"
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": FLOW, "Type": "FDL"})
    api_server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "victim"})
    (message,) = api_server.wait_messages(flow, "victim")
    deadline = time.monotonic() + 3
    while api_server.history(flow, "victim")[-1]["Type"] != "TaskSubmitted":
        assert time.monotonic() < deadline, "the queue's answer was never recorded"
        time.sleep(0.01)
    return SimpleNamespace(flow=flow, token=message["token"])


def snapshot(server: ApiServer, target: SimpleNamespace) -> dict[str, Any]:
    """Everything a refused request might have changed."""
    executions = server.ok({"Action": "ListExecutions", "FlowName": target.flow, "Limit": "99"})
    flows = server.ok({"Action": "ListFlows", "Limit": "999"})
    return {
        "victim": server.describe(target.flow, "victim"),
        "history": server.history(target.flow, "victim"),
        "executions": executions,
        "flows": [f["Name"] for f in flows["Flows"]],
    }


@pytest.fixture
def unchanged(api_server: ApiServer, target: SimpleNamespace):
    """Call it at the end of a test: asserts that the state is what it was at the start."""
    before = snapshot(api_server, target)
    assert before["victim"]["Status"] == "Running"

    def check() -> None:
        assert snapshot(api_server, target) == before

    return check


def refused(answer: httpx.Response, code: str, status: int, rpc: bool = True) -> dict[str, Any]:
    """Check a refusal: status, code, a message and a RequestId (a UUID for RPC answers)."""
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    assert answer.headers["content-type"] == "application/json"
    doc: dict[str, Any] = answer.json()
    assert set(doc) == {"Code", "Message", "RequestId"}
    assert doc["Message"]
    if rpc:
        uuid.UUID(doc["RequestId"])
        assert len(doc["RequestId"]) == 36
    else:
        assert doc["RequestId"]
    return doc


def start_params(target: SimpleNamespace, name: str, **input: Any) -> dict[str, str]:
    return {
        "Action": "StartExecution",
        "FlowName": target.flow,
        "ExecutionName": name,
        "Input": json.dumps(input),
    }


def not_started(server: ApiServer, target: SimpleNamespace, name: str) -> None:
    assert server.describe(target.flow, name)["Code"] == "ExecutionNotExists"


# -- routes -----------------------------------------------------------------------------------


def test_health_and_ready(api_server):
    for path in ("/health", "/ready"):
        answer = api_server.http.get(path)
        assert (answer.status_code, answer.json()) == (200, {"Status": "ok"})
        assert answer.headers["content-type"] == "application/json"
    refused(api_server.http.get("/nowhere"), "NotFound", 404, rpc=False)
    refused(api_server.http.put("/", content=b""), "MethodNotAllowed", 405, rpc=False)


def test_signed_get_and_query_string_are_accepted(api_server, target, unchanged):
    describe = {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"}
    as_get = api_server.http.get("/", params=api_server.signed(describe, "reader", method="GET"))
    assert as_get.status_code == 200, as_get.text
    assert as_get.json()["Status"] == "Running"
    in_query = api_server.http.post("/", params=api_server.signed(describe, "reader"))
    assert in_query.status_code == 200, in_query.text
    # Signed for POST, sent as GET: the method is part of what is signed.
    wrong_method = api_server.http.get("/", params=api_server.signed(describe, "reader"))
    refused(wrong_method, "SignatureDoesNotMatch", 400)
    unchanged()


# -- signatures -------------------------------------------------------------------------------


def test_forged_signature_is_refused(api_server, target, unchanged):
    key_id, _secret = KEYS["admin"]
    forged = signed_params(
        key_id,
        "not-the-secret",
        "POST",
        {"Version": "2019-03-15", **start_params(target, "forged")},
    )
    refused(api_server.post(forged), "SignatureDoesNotMatch", 400)
    not_started(api_server, target, "forged")

    # The official SDK with a wrong secret gets the same answer, as a ServerException.
    client = AcsClient(key_id, "not-the-secret", "cn-hangzhou", auto_retry=False)
    request = StartExecutionRequest.StartExecutionRequest()
    request.set_FlowName(target.flow)
    request.set_ExecutionName("forged-sdk")
    request.set_endpoint(api_server.endpoint)
    request.set_protocol_type("http")
    with pytest.raises(ServerException) as caught:
        client.do_action_with_exception(request)
    assert (caught.value.get_error_code(), caught.value.get_http_status()) == (
        "SignatureDoesNotMatch",
        400,
    )
    not_started(api_server, target, "forged-sdk")
    unchanged()


@pytest.mark.parametrize(
    "change",
    [
        {"Input": json.dumps({"amount": 1000})},
        {"ExecutionName": "tampered-other"},
        {"Action": "StopExecution"},
        {"CallbackFnFTaskToken": "added-after-signing"},
        {"Timestamp": "2030-01-01T00:00:00Z"},
    ],
    ids=["input", "name", "action", "added", "timestamp"],
)
def test_tampered_request_is_refused(api_server, target, unchanged, change):
    params = api_server.signed(start_params(target, "tampered", amount=1))
    tampered = {**params, **change}
    answer = api_server.post(tampered)
    if "Timestamp" in change:  # far in the future: refused before the signature is checked
        refused(answer, "InvalidTimeStamp.Expired", 400)
    else:
        refused(answer, "SignatureDoesNotMatch", 400)
    not_started(api_server, target, "tampered")
    not_started(api_server, target, "tampered-other")
    unchanged()


def test_replayed_request_is_refused(api_server, target, unchanged):
    name = f"auth-replay-{uuid.uuid4().hex[:8]}"
    create = api_server.signed(
        {"Action": "CreateFlow", "Name": name, "Definition": FLOW, "Type": "FDL"}
    )
    first = api_server.post(create)
    assert first.status_code == 200, first.text
    api_server.ok({"Action": "DeleteFlow", "Name": name})
    before = snapshot(api_server, target)
    refused(api_server.post(create), "SignatureNonceUsed", 400)
    assert api_server.ok({"Action": "ListFlows", "Limit": "999"})["Flows"] is not None
    gone = api_server.rpc({"Action": "DescribeFlow", "Name": name})
    refused(gone, "FlowNotExists", 404)
    assert snapshot(api_server, target) == before

    # The same nonce in a new, correctly signed request: still a replay.
    again = api_server.signed(start_params(target, "replayed"), nonce=create["SignatureNonce"])
    refused(api_server.post(again), "SignatureNonceUsed", 400)
    not_started(api_server, target, "replayed")
    unchanged()


@pytest.mark.parametrize("offset", [-(WINDOW_SECONDS + 60), WINDOW_SECONDS + 60])
def test_timestamp_out_of_the_window_is_refused(api_server, target, unchanged, offset):
    moment = datetime.now(UTC) + timedelta(seconds=offset)
    late = api_server.signed(start_params(target, "expired"), now=moment)
    doc = refused(api_server.post(late), "InvalidTimeStamp.Expired", 400)
    assert str(WINDOW_SECONDS) in doc["Message"]
    not_started(api_server, target, "expired")
    unchanged()


def test_timestamp_within_the_window_and_bad_format(api_server, target, unchanged):
    describe = {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"}
    skewed = api_server.signed(describe, now=datetime.now(UTC) - timedelta(seconds=60))
    assert api_server.post(skewed).status_code == 200

    key_id, secret = KEYS["admin"]
    params = {
        "Version": "2019-03-15",
        **start_params(target, "badtime"),
        "Format": "JSON",
        "AccessKeyId": key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": "yesterday",
    }
    params["Signature"] = sign(secret, "POST", params)
    refused(api_server.post(params), "InvalidTimeStamp.Format", 400)
    not_started(api_server, target, "badtime")
    unchanged()


def test_unknown_access_key_is_refused(api_server, target, unchanged):
    stranger = signed_params(
        "nobody", "whatever-secret", "POST", {"Version": "2019-03-15", **start_params(target, "x")}
    )
    refused(api_server.post(stranger), "InvalidAccessKeyId.NotFound", 404)
    not_started(api_server, target, "x")
    unchanged()


@pytest.mark.parametrize(
    ("drop", "change", "code"),
    [
        ("Signature", {}, "MissingParameter"),
        ("SignatureNonce", {}, "MissingParameter"),
        ("Timestamp", {}, "MissingParameter"),
        ("AccessKeyId", {}, "MissingAccessKeyId"),
        (None, {"SignatureMethod": "HMAC-SHA256"}, "InvalidSignatureMethod"),
        (None, {"SignatureVersion": "2.0"}, "InvalidSignatureVersion"),
    ],
)
def test_incomplete_signature_is_refused(api_server, target, unchanged, drop, change, code):
    params = api_server.signed(start_params(target, "unsigned"))
    if drop:
        del params[drop]
    params.update(change)
    refused(api_server.post(params), code, 400)
    not_started(api_server, target, "unsigned")
    unchanged()


def test_unsigned_request_is_refused(api_server, target, unchanged):
    refused(
        api_server.post({"Version": "2019-03-15", **start_params(target, "plain")}),
        "MissingAccessKeyId",
        400,
    )
    not_started(api_server, target, "plain")
    unchanged()


# -- roles ------------------------------------------------------------------------------------


def test_worker_may_only_report(api_server, target, unchanged):
    doc = refused(api_server.rpc(start_params(target, "by-worker"), "worker"), "AccessDenied", 403)
    assert "worker" in doc["Message"]
    not_started(api_server, target, "by-worker")
    describe = {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"}
    refused(api_server.rpc(describe, "worker"), "AccessDenied", 403)
    stop = {
        "Action": "StopExecution",
        "FlowName": target.flow,
        "ExecutionName": "victim",
        "Error": "E",
        "Cause": "C",
    }
    refused(api_server.rpc(stop, "worker"), "AccessDenied", 403)
    # Reporting is allowed: a bad token gets the engine's answer, not AccessDenied.
    bad = {"Action": "ReportTaskFailed", "TaskToken": "not-a-token", "Error": "E"}
    refused(api_server.rpc(bad, "worker"), "TaskTokenMalformed", 400)
    unchanged()


def test_reader_may_only_read(api_server, target, unchanged):
    report = {"Action": "ReportTaskSucceeded", "TaskToken": target.token, "Output": "{}"}
    refused(api_server.rpc(report, "reader"), "AccessDenied", 403)
    failed = {"Action": "ReportTaskFailed", "TaskToken": target.token, "Error": "E"}
    refused(api_server.rpc(failed, "reader"), "AccessDenied", 403)
    stop = {
        "Action": "StopExecution",
        "FlowName": target.flow,
        "ExecutionName": "victim",
        "Error": "E",
        "Cause": "C",
    }
    refused(api_server.rpc(stop, "reader"), "AccessDenied", 403)
    refused(api_server.rpc(start_params(target, "by-reader"), "reader"), "AccessDenied", 403)
    create = {"Action": "CreateFlow", "Name": "auth-by-reader", "Definition": FLOW}
    refused(api_server.rpc(create, "reader"), "AccessDenied", 403)
    refused(
        api_server.rpc({"Action": "DeleteFlow", "Name": target.flow}, "reader"), "AccessDenied", 403
    )
    not_started(api_server, target, "by-reader")

    reads = [
        {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"},
        {"Action": "DescribeFlow", "Name": target.flow},
        {"Action": "ListFlows"},
        {"Action": "ListExecutions", "FlowName": target.flow},
        {"Action": "GetExecutionHistory", "FlowName": target.flow, "ExecutionName": "victim"},
    ]
    for params in reads:
        answer = api_server.rpc(params, "reader")
        assert answer.status_code == 200, (params, answer.text)
    described = api_server.rpc(reads[0], "reader").json()
    assert (described["Name"], described["Status"]) == ("victim", "Running")
    unchanged()


# -- the protocol -----------------------------------------------------------------------------


def test_unsupported_version_is_refused(api_server, target, unchanged):
    params = api_server.signed({**start_params(target, "old"), "Version": "2015-01-01"})
    doc = refused(api_server.post(params), "APIVersionNotSupported", 400)
    assert "2019-03-15" in doc["Message"]
    not_started(api_server, target, "old")
    unchanged()


def test_unknown_or_missing_action_is_refused(api_server, target, unchanged):
    unknown = {"Action": "CreateScheduel", "FlowName": target.flow, "ScheduleName": "s"}
    doc = refused(api_server.rpc(unknown), "ActionNotSupported", 400)
    assert "StartExecution" in doc["Message"]
    refused(
        api_server.rpc({"FlowName": target.flow, "ExecutionName": "victim"}),
        "MissingParameter",
        400,
    )
    unchanged()


def test_missing_parameter_is_refused(api_server, target, unchanged):
    no_flow = {"Action": "StartExecution", "ExecutionName": "nameless-flow"}
    doc = refused(api_server.rpc(no_flow), "MissingParameter", 400)
    assert "FlowName" in doc["Message"]
    no_output = {"Action": "ReportTaskSucceeded", "TaskToken": target.token}
    doc = refused(api_server.rpc(no_output, "worker"), "MissingParameter", 400)
    assert "Output" in doc["Message"]
    no_error = {"Action": "ReportTaskFailed", "TaskToken": target.token, "Error": ""}
    refused(api_server.rpc(no_error, "worker"), "MissingParameter", 400)
    unchanged()


def test_body_too_large_is_refused(api_server, target, unchanged):
    params = api_server.signed(start_params(target, "huge", blob="x" * MAX_BODY_BYTES))
    assert len(urlencode(params)) > MAX_BODY_BYTES
    doc = refused(api_server.post(params), "EntityTooLarge", 413)
    assert str(MAX_BODY_BYTES) in doc["Message"]
    not_started(api_server, target, "huge")
    assert api_server.http.get("/health").status_code == 200
    unchanged()


def test_answers_are_not_held_back_by_nagle(api_server, target):
    """A small request is answered in about a millisecond, not after a delayed ACK (~40 ms).

    The server must set TCP_NODELAY on its connections (asyncio does so only for sockets made
    with proto IPPROTO_TCP); otherwise the response's second write waits for the client's
    delayed ACK, and every call takes 40 ms or more.
    """
    describe = {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"}
    api_server.rpc(describe, "reader")  # the connection is open and warm
    times = []
    for _ in range(15):
        params = api_server.signed(describe, "reader")
        began = time.perf_counter()
        answer = api_server.post(params)
        times.append(time.perf_counter() - began)
        assert answer.status_code == 200
    median = sorted(times)[len(times) // 2]
    assert median < 0.02, f"median round trip {median * 1000:.1f} ms"


# -- the listening address --------------------------------------------------------------------


def test_open_host_without_access_keys_refuses_to_start(tmp_path):
    (tmp_path / "relayflow.toml").write_text(
        config_text(host="0.0.0.0", keys=None, plugin=False), encoding="utf-8"
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [EXE, "server", "--config", "relayflow.toml"],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=out,
            env=server_env(),
        )
    try:  # it must exit; should it serve instead, stop it at once and fail
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            if "serving the API" in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.02)
    finally:
        running = process.poll() is None
        if running:
            process.kill()
        stdout = process.communicate()[0]
    stderr = log.read_text(encoding="utf-8")
    assert not running, f"relayflow server started on 0.0.0.0 without access keys:\n{stderr}"
    assert process.returncode == 2, stderr
    assert (
        "relayflow: InvalidConfig: relayflow.toml: server.host is 0.0.0.0, but without [[server.access_keys]] "
        "the API would accept anyone; add access keys, or listen on 127.0.0.1"
    ) in stderr
    assert "serving the API" not in stderr
    assert stdout == b""


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"Action=DescribeFlow&Name=%FF", b"Action=DescribeFlow&Name=\xff", b"Action=%C3%28"],
    ids=["percent-encoded", "raw", "truncated-sequence"],
)
def test_parameters_that_are_not_utf8_are_refused(api_server, body):
    """Percent-encoded or raw, bytes that are not UTF-8 get the same answer."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    doc = refused(api_server.http.post("/", content=body, headers=form), "InvalidParameter", 400)
    assert "UTF-8" in doc["Message"]
    if body.isascii():  # (httpx would percent-encode a raw byte in a URL as UTF-8)
        in_query = api_server.http.post(f"/?{body.decode()}")
        refused(in_query, "InvalidParameter", 400)


# -- nonces -----------------------------------------------------------------------------------


def test_a_long_nonce_is_refused(api_server, target, unchanged):
    describe = {"Action": "DescribeExecution", "FlowName": target.flow, "ExecutionName": "victim"}
    longest = api_server.signed(describe, "reader", nonce="n" * MAX_NONCE_LENGTH)
    assert api_server.post(longest).status_code == 200
    too_long = api_server.signed(
        start_params(target, "long-nonce"), nonce="n" * (MAX_NONCE_LENGTH + 1)
    )
    doc = refused(api_server.post(too_long), "InvalidParameter", 400)
    assert f"{MAX_NONCE_LENGTH} characters" in doc["Message"]
    assert "server.max_nonce_length" in doc["Message"]
    not_started(api_server, target, "long-nonce")
    unchanged()


NONCE_BUDGET = 25


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory):
    """A server of its own, whose keys may each have only a few nonces in the window."""
    text = config_text(keys=KEYS, server={"max_nonces_per_key": NONCE_BUDGET}, plugin=False)
    with serving(tmp_path_factory.mktemp("budgeted"), text) as server:
        yield server


def test_nonces_cannot_be_flushed_by_another_key(budgeted):
    """A reader sending many requests cannot make a captured admin request replayable.

    The server never forgets a nonce while its request could still be accepted; a key that
    has used its budget of nonces is throttled instead, and only that key.
    """
    name = f"captured-{uuid.uuid4().hex[:8]}"
    create = budgeted.signed({"Action": "CreateFlow", "Name": name, "Definition": FLOW})
    assert budgeted.post(create).status_code == 200
    budgeted.ok({"Action": "DeleteFlow", "Name": name})

    listing = {"Action": "ListFlows"}
    for _ in range(NONCE_BUDGET):
        answer = budgeted.rpc(listing, "reader")
        assert answer.status_code == 200, answer.text
    doc = refused(budgeted.rpc(listing, "reader"), "Throttling.SignatureNonce", 429)
    assert "test-reader" in doc["Message"]
    assert f"{NONCE_BUDGET}" in doc["Message"]
    assert "server.max_nonces_per_key" in doc["Message"]

    refused(budgeted.post(create), "SignatureNonceUsed", 400)
    gone = budgeted.rpc({"Action": "DescribeFlow", "Name": name})
    refused(gone, "FlowNotExists", 404)


def test_a_nonce_is_kept_while_its_timestamp_is_in_the_window():
    """A request stamped ahead of the server's clock stays replayable longer than one window:
    its nonce must be kept until its own Timestamp leaves the window."""
    window = 100
    key_id, secret = KEYS["admin"]
    auth = Authenticator([AccessKey(id=key_id, secret=secret, role="admin")], window)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    ahead = signed_params(
        key_id,
        secret,
        "POST",
        {"Version": "2019-03-15", "Action": "ListFlows"},
        now=start + timedelta(seconds=window - 1),
    )
    assert auth.check("POST", ahead, "ListFlows", now=start.timestamp()) is not None
    for later in (window + 10, 2 * window - 2):
        with pytest.raises(EngineError) as caught:
            auth.check("POST", ahead, "ListFlows", now=start.timestamp() + later)
        assert caught.value.code == "SignatureNonceUsed"


def test_the_nonce_budget_frees_up_as_nonces_expire():
    window = 100
    key_id, secret = KEYS["reader"]
    auth = Authenticator([AccessKey(id=key_id, secret=secret, role="reader")], window, 3)
    start = datetime(2030, 1, 1, tzinfo=UTC)

    def request(moment: datetime) -> dict[str, str]:
        return signed_params(
            key_id, secret, "POST", {"Version": "2019-03-15", "Action": "ListFlows"}, now=moment
        )

    for _ in range(3):
        auth.check("POST", request(start), "ListFlows", now=start.timestamp())
    with pytest.raises(EngineError) as caught:
        auth.check("POST", request(start), "ListFlows", now=start.timestamp())
    assert (caught.value.code, caught.value.status) == ("Throttling.SignatureNonce", 429)
    later = start + timedelta(seconds=window + 60)
    auth.check("POST", request(later), "ListFlows", now=later.timestamp())
