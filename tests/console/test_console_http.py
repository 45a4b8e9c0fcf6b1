"""The console's backend over HTTP, against a real `relayflow server` (no browser).

Sign-in by key and by token (minted by the real `relayflow console token`), roles checked
server side, CSRF and origin checks, cookies that are forged, tampered with, expired, or whose
key was removed, the static files and their traversal refusals, the JSON action bodies, the
sign-in throttle, and a server without access keys.

The servers are given a known `[engine] token_secret`, so a test can sign cookies with the
server's own key (`Engine.derived_key`) and show that only the expiry or the role refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relayflow.api.auth import READ_ACTIONS
from relayflow.cli.console import MAX_MINUTES
from relayflow.console.session import (
    COOKIE,
    MAX_TOKEN_MINUTES,
    SIGN_IN_FAILURES_PER_KEY,
    Session,
    Throttle,
    mint_token,
    session_cookie,
)
from tests.api_server import (
    EXE,
    KEYS,
    TOKEN_FLOW,
    ApiServer,
    config_text,
    server_env,
    serving,
    start_server,
    stop_server,
)

TOKEN_SECRET = "console-test-token-secret-0123456789"
THROTTLED = ("test-throttled", "throttled-secret-0123456789")
FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"


def _config(
    keys: dict[str, tuple[str, str]] | None = None, extra: str = "", *, plugin: bool = False
) -> str:
    text = config_text(keys=keys, plugin=plugin)
    text = text.replace(
        'store = "sqlite:///relayflow.db"\n',
        f'store = "sqlite:///relayflow.db"\ntoken_secret = "{TOKEN_SECRET}"\n',
    )
    return text + extra


def _session_key() -> bytes:
    """The server's `console-session` key, as `Engine.derived_key` derives it."""
    secret = TOKEN_SECRET.encode()
    return hmac.new(secret, b"relayflow:console-session", hashlib.sha256).digest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    extra = (
        f'\n[[server.access_keys]]\nid = "{THROTTLED[0]}"\nsecret = "{THROTTLED[1]}"\n'
        'role = "reader"\n'
    )
    config = _config(KEYS, extra, plugin=True)  # the test queue: tasks that wait for a token
    with serving(tmp_path_factory.mktemp("console"), config) as running:
        running.ok({"Action": "CreateFlow", "Name": "console-flow", "Definition": FLOW})
        running.ok({"Action": "CreateFlow", "Name": "console-tokens", "Definition": TOKEN_FLOW})
        yield running


class Browser:
    """What a browser on the console's page sends: its cookie, Origin and CSRF header."""

    def __init__(self, server: ApiServer) -> None:
        self.origin = f"http://127.0.0.1:{server.port}"
        self.http = httpx.Client(base_url=server.url, timeout=10)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def sign_in(self, body: dict[str, str]) -> httpx.Response:
        answer = self.http.post("/console/session", json=body, headers={"Origin": self.origin})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer

    def post(self, path: str, body: Any = None, **headers: str) -> httpx.Response:
        sent = {"Origin": self.origin, "X-Relayflow-CSRF": self.csrf, **headers}
        sent = {name: value for name, value in sent.items() if value}
        return self.http.post(path, json={} if body is None else body, headers=sent)

    def act(self, action: str, body: Any = None) -> httpx.Response:
        return self.post(f"/console/api/{action}", body)


@pytest.fixture
def browser(server: ApiServer) -> Iterator[Browser]:
    made = Browser(server)
    yield made
    made.close()


def _signed_in(server: ApiServer, role: str) -> Browser:
    made = Browser(server)
    key_id, secret = KEYS[role]
    answer = made.sign_in({"accessKeyId": key_id, "accessKeySecret": secret})
    assert answer.status_code == 200, answer.text
    return made


def _refused(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    doc = answer.json()
    assert doc["Code"] == code, doc
    message: str = doc["Message"]
    assert message and "Traceback" not in message
    return message


def test_every_answer_carries_the_security_headers(server: ApiServer) -> None:
    for path in ("/console/", "/console/session", "/console/nowhere"):
        answer = server.http.get(path)
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
    assert server.http.get("/console/session").headers["cache-control"] == "no-store"
    _refused(server.http.get("/console/nowhere"), 404, "NotFound")


def test_the_page_and_its_files_are_served_with_types_and_etags(server: ApiServer) -> None:
    moved = server.http.get("/console")
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"
    page = server.http.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<html" in page.text
    again = server.http.get("/console/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    script = server.http.get("/console/static/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert (
        server.http.head("/console/static/console.css")
        .headers["content-type"]
        .startswith("text/css")
    )
    _refused(server.http.post("/console/static/console.js"), 405, "MethodNotAllowed")


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../app.py",
        "/console/static/../static/index.html",
        "/console/static/%2e%2e/app.py",
        "/console/static/..%2fapp.py",
        "/console/static/..%2Fsession.py",
        "/console/static/views%2f..%2f..%2fapp.py",
        "/console/static/..%5capp.py",
        "/console/static/index.html%00.js",
        "/console/static/.hidden.js",
        "/console/static//etc/passwd",
        "/console/static/__init__.py",
    ],
)
def test_nothing_outside_static_is_served(server: ApiServer, path: str) -> None:
    # http.client sends the path exactly as written: no client-side normalising.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == 404, (path, answer.status, body[:200])
    doc = json.loads(body)
    assert doc["Code"] == "NotFound" and "/console/" in doc["Message"]


@pytest.mark.parametrize("role", ["reader", "worker", "admin"])
def test_each_role_may_call_only_its_actions(server: ApiServer, role: str) -> None:
    browser = _signed_in(server, role)
    try:
        me = browser.http.get("/console/session").json()
        assert me["signedIn"] and me["role"] == role and me["keyId"] == KEYS[role][0]
        assert not me["keyless"] and me["expires"] > time.time()
        assert f"console sign-in: access key {KEYS[role][0]} ({role})" in server.log()
        listing = browser.act("ListFlows", {"Limit": 10})
        start = browser.act("StartExecution", {"FlowName": "console-flow", "Input": {"n": [1]}})
        report = browser.act("ReportTaskFailed", {"TaskToken": "not-a-token", "Error": "E"})
        graph = browser.http.get("/console/graph", params={"flow": "console-flow"})
        if role == "worker":
            _refused(listing, 403, "AccessDenied")
            _refused(graph, 403, "AccessDenied")
        else:
            assert listing.status_code == 200, listing.text
            assert "console-flow" in {flow["Name"] for flow in listing.json()["Flows"]}
            assert graph.status_code == 200, graph.text
            assert [node["name"] for node in graph.json()["nodes"] if node["name"]] == ["only"]
        if role == "admin":
            assert start.status_code == 200, start.text
            # An object given as Input reaches the engine as the API's JSON text.
            assert json.loads(start.json()["Input"]) == {"n": [1]}
        else:
            message = _refused(start, 403, "AccessDenied")
            assert role in message and "StartExecution" in message
        if role == "reader":
            _refused(report, 403, "AccessDenied")
        else:
            # Allowed: the engine itself says the token is wrong.
            assert report.status_code not in (401, 403), report.text
    finally:
        browser.close()


def test_an_executions_graph_is_the_definition_it_runs(server: ApiServer) -> None:
    server.ok({"Action": "CreateFlow", "Name": "console-evolving", "Definition": FLOW})
    server.ok({"Action": "StartExecution", "FlowName": "console-evolving", "ExecutionName": "e1"})
    server.ok(
        {
            "Action": "UpdateFlow",
            "Name": "console-evolving",
            "Definition": FLOW.replace("name: only", "name: second"),
        }
    )
    reader = _signed_in(server, "reader")
    try:

        def steps(**query: str) -> list[str]:
            answer = reader.http.get("/console/graph", params={"flow": "console-evolving", **query})
            assert answer.status_code == 200, answer.text
            return [node["name"] for node in answer.json()["nodes"] if node["name"]]

        assert steps() == ["second"]
        assert steps(execution="e1") == ["only"]
        assert reader.http.get("/console/graph?flow=console-evolving").json()["problems"] == []
        _refused(
            reader.http.get(
                "/console/graph", params={"flow": "console-evolving", "execution": "x"}
            ),
            404,
            "ExecutionNotExists",
        )
    finally:
        reader.close()


def test_the_graph_says_which_task_no_installed_integration_serves(server: ApiServer) -> None:
    unserved = TOKEN_FLOW.replace("/queues/jobs/", "/queues/elsewhere/")
    created = server.rpc(
        {"Action": "CreateFlow", "Name": "console-unserved", "Definition": unserved}
    )
    assert created.status_code == 200, created.text
    reader = _signed_in(server, "reader")
    try:
        answer = reader.http.get("/console/graph", params={"flow": "console-unserved"})
        assert answer.status_code == 200, answer.text
        (problem,) = answer.json()["problems"]
        assert problem["line"] == 6 and problem["path"].endswith("resourceArn"), problem
        assert "/queues/elsewhere/" in problem["message"]
    finally:
        reader.close()


def test_a_reader_is_refused_every_action_that_changes_state(server: ApiServer) -> None:
    from relayflow.api.actions import ACTIONS

    browser = _signed_in(server, "reader")
    try:
        for action in sorted(set(ACTIONS) - READ_ACTIONS):
            _refused(browser.act(action, {"FlowName": "console-flow"}), 403, "AccessDenied")
    finally:
        browser.close()


def test_the_execution_view_shows_task_tokens_only_to_roles_that_may_report(
    server: ApiServer,
) -> None:
    server.ok({"Action": "StartExecution", "FlowName": "console-tokens", "ExecutionName": "t-1"})
    token = server.wait_messages("console-tokens", "t-1")[0]["token"]
    query = {"flow": "console-tokens", "execution": "t-1"}
    admin, reader = _signed_in(server, "admin"), _signed_in(server, "reader")
    try:
        deadline = time.monotonic() + 10
        while True:  # the view may be read before the engine has recorded the task's start
            shown = admin.http.get("/console/view", params=query)
            assert shown.status_code == 200, shown.text
            if token in shown.text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert token in shown.text, shown.text[:2000]
        hidden = reader.http.get("/console/view", params=query)
        assert hidden.status_code == 200, hidden.text
        assert hidden.json()["execution"] == "t-1"
        assert token not in hidden.text and "taskToken" not in hidden.text
        _refused(
            reader.http.get("/console/view", params={"flow": "console-tokens"}),
            400,
            "MissingParameter",
        )
        missing = reader.http.get(
            "/console/view", params={"flow": "console-tokens", "execution": "nope"}
        )
        _refused(missing, 404, "ExecutionNotExists")
    finally:
        admin.close()
        reader.close()
        server.ok({"Action": "StopExecution", "FlowName": "console-tokens", "ExecutionName": "t-1"})


def test_without_a_session_nothing_but_the_page_answers(browser: Browser) -> None:
    assert browser.http.get("/console/session").json()["signedIn"] is False
    _refused(browser.act("ListFlows"), 401, "NotSignedIn")
    _refused(browser.http.get("/console/graph?flow=console-flow"), 401, "NotSignedIn")
    _refused(browser.http.get("/console/view?flow=f&execution=e"), 401, "NotSignedIn")


def test_sign_in_refusals(browser: Browser) -> None:
    key_id = KEYS["reader"][0]
    _refused(
        browser.sign_in({"accessKeyId": key_id, "accessKeySecret": "wrong-secret-000"}),
        401,
        "SignInFailed",
    )
    _refused(
        browser.sign_in({"accessKeyId": "nobody", "accessKeySecret": "wrong-secret-000"}),
        401,
        "SignInFailed",
    )
    _refused(browser.sign_in({"accessKeyId": key_id}), 400, "InvalidParameter")
    refused = browser.http.post(
        "/console/session",
        json={"accessKeyId": key_id, "accessKeySecret": KEYS["reader"][1]},
        headers={"Origin": "https://evil.example"},
    )
    _refused(refused, 403, "CrossOriginRequest")
    assert "set-cookie" not in refused.headers


def _cookie_doc(cookie: str) -> dict[str, Any]:
    body = cookie.split(".")[0]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return doc


def _with_cookie(server: ApiServer, value: str) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, cookies={COOKIE: value}) as client:
        doc: dict[str, Any] = client.get("/console/session").json()
        return doc


def test_forged_tampered_and_expired_cookies_are_refused(server: ApiServer) -> None:
    browser = _signed_in(server, "reader")
    try:
        cookie = browser.http.cookies[COOKIE]
    finally:
        browser.close()
    assert _with_cookie(server, cookie)["signedIn"] is True
    doc = _cookie_doc(cookie)
    # Tampered: the role raised to admin, the signature kept.
    raised = dict(doc, r="admin")
    body = base64.urlsafe_b64encode(json.dumps(raised).encode()).rstrip(b"=").decode()
    assert _with_cookie(server, f"{body}.{cookie.split('.')[1]}")["signedIn"] is False
    # Forged: signed with a key that is not the server's.
    forged = session_cookie(
        b"k" * 32, Session(doc["k"], "reader", doc["e"], doc["s"]), KEYS["reader"][1]
    )
    assert _with_cookie(server, forged)["signedIn"] is False
    # The server's own key: a future expiry is good, a past one is not; a role the key does
    # not have is not, even signed.
    key, secret = _session_key(), KEYS["reader"][1]
    good = session_cookie(key, Session(doc["k"], "reader", int(time.time()) + 60, "s1"), secret)
    assert _with_cookie(server, good)["signedIn"] is True
    past = session_cookie(key, Session(doc["k"], "reader", int(time.time()) - 1, "s1"), secret)
    assert _with_cookie(server, past)["signedIn"] is False
    other_role = session_cookie(key, Session(doc["k"], "admin", doc["e"], "s1"), secret)
    assert _with_cookie(server, other_role)["signedIn"] is False
    for junk in ("", ".", "x.y", "a" * 5000, cookie + "x", "%00.%00"):
        assert _with_cookie(server, junk)["signedIn"] is False, junk


def test_posts_need_the_csrf_value_and_the_console_origin(server: ApiServer) -> None:
    admin = _signed_in(server, "admin")
    other = _signed_in(server, "admin")
    try:
        body = {"FlowName": "console-flow"}
        path = "/console/api/StartExecution"
        _refused(admin.post(path, body, **{"X-Relayflow-CSRF": ""}), 403, "CSRFTokenMissing")
        _refused(admin.post(path, body, **{"X-Relayflow-CSRF": "x" * 43}), 403, "CSRFTokenInvalid")
        # Another session's value is not this session's.
        assert other.csrf != admin.csrf
        _refused(
            admin.post(path, body, **{"X-Relayflow-CSRF": other.csrf}), 403, "CSRFTokenInvalid"
        )
        _refused(admin.post(path, body, Origin="https://evil.example"), 403, "CrossOriginRequest")
        _refused(admin.post(path, body, Origin="null"), 403, "CrossOriginRequest")
        _refused(
            admin.post(path, body, **{"Sec-Fetch-Site": "cross-site"}), 403, "CrossOriginRequest"
        )
        # Neither Origin nor Sec-Fetch-Site: not from a page of the console.
        bare = admin.http.post(path, json=body, headers={"X-Relayflow-CSRF": admin.csrf})
        _refused(bare, 403, "CrossOriginRequest")
        listed = admin.act("ListExecutions", {"FlowName": "console-flow", "Limit": 100})
        before = len(listed.json()["Executions"])
        # Sec-Fetch-Site alone (same-origin) is enough; then the start goes through.
        sent = admin.http.post(
            path,
            json=body,
            headers={"X-Relayflow-CSRF": admin.csrf, "Sec-Fetch-Site": "same-origin"},
        )
        assert sent.status_code == 200, sent.text
        listed = admin.act("ListExecutions", {"FlowName": "console-flow", "Limit": 100})
        assert len(listed.json()["Executions"]) == before + 1  # only the accepted one ran
        # Signing out needs the CSRF value too, and then the cookie no longer works.
        _refused(
            admin.post("/console/session/end", **{"X-Relayflow-CSRF": "x"}),
            403,
            "CSRFTokenInvalid",
        )
        ended = admin.post("/console/session/end")
        assert ended.status_code == 200 and ended.json()["signedIn"] is False
        _refused(admin.act("ListFlows"), 401, "NotSignedIn")
    finally:
        admin.close()
        other.close()


def test_action_bodies_are_checked(server: ApiServer) -> None:
    admin = _signed_in(server, "admin")
    try:
        path = "/console/api/ListExecutions"
        headers = {"Origin": admin.origin, "X-Relayflow-CSRF": admin.csrf}
        text = admin.http.post(
            path, content=b"FlowName=x", headers={**headers, "Content-Type": "text/plain"}
        )
        _refused(text, 415, "UnsupportedMediaType")
        broken = admin.http.post(
            path, content=b"{", headers={**headers, "Content-Type": "application/json"}
        )
        _refused(broken, 400, "InvalidJSON")
        _refused(admin.act("ListExecutions", [1, 2]), 400, "InvalidJSON")
        _refused(admin.act("ListExecutions", {"a b": 1}), 400, "InvalidParameter")
        # Past the server's max_body_bytes (the console's default of 1 MiB until the server
        # hands it the configured one, which is smaller here).
        huge = {"FlowName": "console-flow", "Input": "x" * max(server_max_body(), 1 << 20)}
        _refused(admin.act("StartExecution", huge), 413, "EntityTooLarge")
        _refused(admin.act("NoSuchAction"), 400, "ActionNotSupported")
        _refused(admin.act("List.Flows"), 400, "ActionNotSupported")
        # Numbers and booleans become the API's text; a wrong one gets the API's sentence.
        ok = admin.act("ListExecutions", {"FlowName": "console-flow", "Limit": 1})
        assert ok.status_code == 200 and len(ok.json()["Executions"]) <= 1
        _refused(
            admin.act("ListExecutions", {"FlowName": "console-flow", "Limit": True}),
            400,
            "InvalidArgument",
        )
        _refused(admin.act("DescribeFlow", {"Name": "no-such-flow"}), 404, "FlowNotExists")
    finally:
        admin.close()


def server_max_body() -> int:
    """The test servers' `max_body_bytes` (tests/api_server.py)."""
    from tests.api_server import MAX_BODY_BYTES

    return MAX_BODY_BYTES


def _cli_token(folder: Path, server: ApiServer, role: str, *args: str) -> dict[str, Any]:
    key_id, secret = KEYS[role]
    (folder / "client.toml").write_text(
        f'[client]\nendpoint = "{server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [EXE, "console", "token", "--config", "client.toml", "--json", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_a_console_token_from_the_cli_signs_in_once(
    server: ApiServer, browser: Browser, tmp_path: Path
) -> None:
    assert MAX_MINUTES == MAX_TOKEN_MINUTES
    printed = _cli_token(tmp_path, server, "worker", "--minutes", "2")
    assert printed["Url"] == f"{server.url}/console/"
    assert printed["AccessKeyId"] == KEYS["worker"][0]
    answer = browser.sign_in({"token": printed["Token"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "worker"
    assert browser.http.get("/console/session").json()["keyId"] == KEYS["worker"][0]
    _refused(browser.sign_in({"token": printed["Token"]}), 401, "TokenUsed")
    # Forged: the same claims under another secret; tampered: one character of the MAC.
    key_id = KEYS["admin"][0]
    _refused(
        browser.sign_in({"token": mint_token(key_id, "not-the-secret", 5)}), 401, "InvalidToken"
    )
    token = mint_token(key_id, KEYS["admin"][1], 5)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    _refused(browser.sign_in({"token": flipped}), 401, "InvalidToken")
    _refused(browser.sign_in({"token": "garbage"}), 401, "InvalidToken")
    old = mint_token(key_id, KEYS["admin"][1], 1, now=time.time() - 120)
    message = _refused(browser.sign_in({"token": old}), 401, "TokenExpired")
    assert "relayflow console token" in message


def test_a_cli_without_a_key_says_how_to_open_the_console(tmp_path: Path) -> None:
    (tmp_path / "client.toml").write_text('[client]\nendpoint = "http://127.0.0.1:9"\n')
    done = subprocess.run(
        [EXE, "console", "token", "--config", "client.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("relayflow: InvalidConfig: ")
    assert "http://127.0.0.1:9/console/" in done.stderr


def test_repeated_failures_throttle_the_key(server: ApiServer, browser: Browser) -> None:
    key_id, secret = THROTTLED
    for _ in range(SIGN_IN_FAILURES_PER_KEY):
        _refused(
            browser.sign_in({"accessKeyId": key_id, "accessKeySecret": "wrong-secret-0"}),
            401,
            "SignInFailed",
        )
    # Now even the right secret waits; other keys are not affected.
    message = _refused(
        browser.sign_in({"accessKeyId": key_id, "accessKeySecret": secret}),
        429,
        "Throttling.SignIn",
    )
    assert key_id in message
    _signed_in(server, "reader").close()


def test_a_removed_key_signs_out_its_sessions_and_keyless_needs_no_sign_in(
    tmp_path: Path,
) -> None:
    folder = tmp_path
    (folder / "relayflow.toml").write_text(
        _config({"admin": KEYS["admin"], "reader": KEYS["reader"]}), encoding="utf-8"
    )
    process, port = start_server(folder)
    try:
        running = ApiServer(folder, port, process)
        reader, admin = _signed_in(running, "reader"), _signed_in(running, "admin")
        cookies = {
            "reader": reader.http.cookies[COOKIE],
            "admin": admin.http.cookies[COOKIE],
        }
        reader.close()
        admin.close()
        running.http.close()
    finally:
        assert stop_server(process) == 0
    # The reader's key is removed: its cookie stops working; the admin's survives the restart.
    (folder / "relayflow.toml").write_text(_config({"admin": KEYS["admin"]}), encoding="utf-8")
    process, port = start_server(folder)
    try:
        running = ApiServer(folder, port, process)
        assert _with_cookie(running, cookies["reader"])["signedIn"] is False
        assert _with_cookie(running, cookies["admin"])["role"] == "admin"
        running.http.close()
    finally:
        assert stop_server(process) == 0
    # No keys at all: loopback only, everyone admin, yet the CSRF value and origin still count.
    (folder / "relayflow.toml").write_text(_config(), encoding="utf-8")
    process, port = start_server(folder)
    try:
        running = ApiServer(folder, port, process)
        page = Browser(running)
        me = page.http.get("/console/session").json()
        assert me["signedIn"] and me["keyless"] and me["role"] == "admin" and me["csrf"]
        page.csrf = me["csrf"]
        assert page.act("ListFlows").status_code == 200
        _refused(
            page.post("/console/api/ListFlows", **{"X-Relayflow-CSRF": ""}), 403, "CSRFTokenMissing"
        )
        _refused(
            page.post("/console/api/ListFlows", Origin="http://evil.example"),
            403,
            "CrossOriginRequest",
        )
        rebound = page.http.get("/console/session", headers={"Host": f"evil.example:{port}"})
        _refused(rebound, 403, "InvalidHost")
        page.close()
        running.http.close()
    finally:
        assert stop_server(process) == 0
    # Turned off: the console's paths are not found, the API still answers.
    off = _config().replace("[server]\n", "[server]\nconsole = false\n")
    (folder / "relayflow.toml").write_text(off, encoding="utf-8")
    process, port = start_server(folder)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for path in ("/console/", "/console/session", "/console/static/console.js"):
                assert http.get(path).status_code == 404, path
            assert http.get("/health").status_code == 200
    finally:
        assert stop_server(process) == 0


def test_the_throttle_counts_failures_within_its_window() -> None:
    throttle = Throttle(per_key=2, per_address=3, window=60)
    throttle.failed("k", "10.0.0.1", now=0)
    throttle.failed("k", "10.0.0.1", now=10)
    assert throttle.blocked("k", "10.0.0.2", now=20) is not None  # the key, from anywhere
    assert throttle.blocked("other", "10.0.0.2", now=20) is None
    assert throttle.blocked("k", "10.0.0.2", now=60) is None  # the first failure has aged out
    throttle.failed(None, "10.0.0.1", now=61)  # an unknown key id counts only for the address
    throttle.failed(None, "10.0.0.1", now=62)
    reason = throttle.blocked("other", "10.0.0.1", now=63)
    assert reason is not None and "address" in reason
    assert throttle.blocked("other", "10.0.0.3", now=63) is None


def test_session_module_limits_are_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    assert f"{SIGN_IN_FAILURES_PER_KEY} failed sign-ins" in docs
    assert f"{MAX_TOKEN_MINUTES} minutes" in docs


def _block_after(text: str, marker: str, info: str) -> str:
    """The first ```info block after ``marker`` in a docs page."""
    start = text.index(marker)
    opening = text.index(f"```{info}\n", start) + len(f"```{info}\n")
    return text[opening : text.index("```", opening)]


def test_the_docs_examples_hold(server: ApiServer, tmp_path: Path) -> None:
    import re
    import tomllib

    from relayflow.config import ServerConfig

    docs = Path(__file__).parents[2] / "docs"
    configuration = (docs / "configuration.md").read_text(encoding="utf-8")
    table = tomllib.loads(_block_after(configuration, "The web console at", "toml"))["server"]
    settings = ServerConfig(**table)
    assert settings.console is True and settings.console_session_minutes == 60
    security = (docs / "security.md").read_text(encoding="utf-8")
    example = _block_after(security, "**Console tokens.**", "console").splitlines()
    assert example[0] == "$ relayflow console token --minutes 5"
    # What the command prints has the documented shape: the token alone on stdout (so that
    # $(relayflow console token) is the token), then the sentence on stderr.
    key_id, secret = KEYS["admin"]
    (tmp_path / "relayflow.toml").write_text(
        f'[client]\nendpoint = "{server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [EXE, *example[0].split()[2:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n", done.stdout)
    shape = re.escape(example[2])
    for sample, pattern in (
        ("http://127.0.0.1:8765", r"http://127\.0\.0\.1:\d+"),
        ("2026-12-02T11:31:29Z", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
        ("admin-key", re.escape(key_id)),
    ):
        shape = shape.replace(re.escape(sample), pattern)
    assert re.fullmatch(shape, done.stderr.strip()), (shape, done.stderr)
    signed = Browser(server)
    try:
        assert signed.sign_in({"token": done.stdout.strip()}).json()["role"] == "admin"
    finally:
        signed.close()


def test_replicas_on_postgresql_share_sessions_and_each_token_signs_in_once(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import contextlib
    import threading

    from tests.services import fresh_database

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database(postgres_url, "rf_test_console_replicas"))
        # No token_secret: the replicas derive their keys from the secret the store keeps.
        config = config_text(keys=KEYS, plugin=False).replace("sqlite:///relayflow.db", url)
        a, b = (
            stack.enter_context(serving(tmp_path_factory.mktemp(f"console-{name}"), config))
            for name in ("a", "b")
        )
        on_a = _signed_in(a, "reader")
        stack.callback(on_a.close)
        cookie = on_a.http.cookies[COOKIE]
        assert _with_cookie(b, cookie)["role"] == "reader"  # signed by A, good on B
        # The same token sent to both replicas at once signs in exactly once.
        token = mint_token(KEYS["admin"][0], KEYS["admin"][1], 5)
        pages = [Browser(a), Browser(b)]
        for page in pages:
            stack.callback(page.close)
        barrier = threading.Barrier(2)
        results: list[tuple[int, str]] = []

        def send(page: Browser) -> None:
            barrier.wait(10)
            answer = page.sign_in({"token": token})
            results.append((answer.status_code, answer.json().get("Code", "ok")))

        threads = [threading.Thread(target=send, args=(page,)) for page in pages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [(200, "ok"), (401, "TokenUsed")], results


def test_over_https_the_cookie_is_secure_and_only_https_pages_may_post(tmp_path: Path) -> None:
    from tests.tls_certs import make_certs, server_tls_lines, start_https_server

    certs = make_certs(tmp_path)
    key_id, secret = KEYS["admin"]
    (tmp_path / "relayflow.toml").write_text(
        '[engine]\nstore = "sqlite:///relayflow.db"\n\n[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'{server_tls_lines(certs)}\n[[server.access_keys]]\nid = "{key_id}"\n'
        f'secret = "{secret}"\nrole = "admin"\n',
        encoding="utf-8",
    )
    process, port = start_https_server(tmp_path)
    try:
        url = f"https://127.0.0.1:{port}"
        body = {"accessKeyId": key_id, "accessKeySecret": secret}
        with httpx.Client(
            base_url=url, verify=ssl.create_default_context(cafile=str(certs.ca_file)), timeout=10
        ) as http:
            plain = http.post(
                "/console/session", json=body, headers={"Origin": f"http://127.0.0.1:{port}"}
            )
            _refused(plain, 403, "CrossOriginRequest")
            signed = http.post("/console/session", json=body, headers={"Origin": url})
            assert signed.status_code == 200, signed.text
            cookie = signed.headers["set-cookie"]
            assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Path=/console" in cookie
    finally:
        assert stop_server(process) == 0
