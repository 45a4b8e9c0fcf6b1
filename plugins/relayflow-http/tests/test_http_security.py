"""Where configured secrets may go, what reaches the logs, and how deep an answer may nest.

A flow author chooses the URL and the headers; the operator chooses which secret header goes to
which host. These tests try to make a secret travel elsewhere (another virtual host, URL
credentials, reserved or duplicated headers, redirects, cookies), check that no log line holds a
secret or a query string, and that JSON nested too deep fails the task with a sentence. Requests
go to the real local servers of the `api` and `other_api` fixtures (see http_testkit.py).
"""

from __future__ import annotations

import logging

import pytest
from http_testkit import SESSION_COOKIE, LocalApi, integration, request
from pydantic import ValidationError

from relayflow.engine import Failed, Succeeded
from relayflow.testing import bounded
from relayflow_http import HttpSettings
from relayflow_http.secret_headers import SecretHeaders

SECRET = "Bearer sk-test-0123456789abcdef"
SECRET_ENV = "RELAYFLOW_HTTP_TEST_AUTHORIZATION"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret Authorization value, set in the environment variable header_env names."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET


def with_secret(api: LocalApi, **settings: object) -> HttpSettings:
    """Settings sending the secret Authorization to ``api`` only (its host and port)."""
    pattern = f"127.0.0.1:{api.server_port}"
    return HttpSettings.model_validate(
        {"header_env": {pattern: {"Authorization": SECRET_ENV}}, **settings}
    )


# ---------------------------------------------------------------------------------------------
# Headers a flow may not set


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
@bounded
async def test_a_host_header_from_the_step_is_refused_before_sending(
    api: LocalApi, secret: str, name: str
) -> None:
    params = {"Url": f"{api.url}/echo?vhost=1", "Headers": {name: "other.example"}}
    async with integration(with_secret(api)) as http:
        outcome = await http.invoke(request(params))
    assert outcome == Failed(
        "HTTP.InvalidParameter",
        f"serviceParams.Headers.{name} cannot be set by a flow: the host comes from Url, "
        "which also chooses the secret headers",
    )
    assert api.seen_with("vhost") == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "Proxy-Authorization",
            "a proxy and its credentials come from the environment (HTTP_PROXY, HTTPS_PROXY)",
        ),
        (
            "proxy-connection",
            "a proxy and its credentials come from the environment (HTTP_PROXY, HTTPS_PROXY)",
        ),
        ("Content-Length", "httpx frames the request and manages the connection"),
        ("Transfer-Encoding", "httpx frames the request and manages the connection"),
        ("Connection", "httpx frames the request and manages the connection"),
        ("Keep-Alive", "httpx frames the request and manages the connection"),
        ("TE", "httpx frames the request and manages the connection"),
        ("Trailer", "httpx frames the request and manages the connection"),
        ("Upgrade", "httpx frames the request and manages the connection"),
    ],
)
@bounded
async def test_proxy_and_framing_headers_from_the_step_are_refused(
    api: LocalApi, name: str, reason: str
) -> None:
    params = {
        "Url": f"{api.url}/echo?reserved=1",
        "Method": "POST",
        "Body": "x",
        "Headers": {name: "0"},
    }
    async with integration() as http:
        outcome = await http.invoke(request(params))
    assert outcome == Failed(
        "HTTP.InvalidParameter", f"serviceParams.Headers.{name} cannot be set by a flow: {reason}"
    )
    assert api.seen_with("reserved") == []


@bounded
async def test_a_host_header_from_a_plugin_is_refused_too(api: LocalApi) -> None:
    async with integration() as http:
        outcome = await http.invoke(
            request({"Url": f"{api.url}/echo?plugin=1"}, headers={"host": "other.example"})
        )
    assert outcome == Failed(
        "HTTP.InvalidParameter",
        "header host, added by a plugin, cannot be set: the host comes from Url, which also "
        "chooses the secret headers",
    )
    assert api.seen_with("plugin") == []


@bounded
async def test_header_names_differing_only_in_case_are_refused(api: LocalApi) -> None:
    params = {"Url": f"{api.url}/echo?twice=1", "Headers": {"X-Trace": "a", "x-trace": "b"}}
    async with integration() as http:
        outcome = await http.invoke(request(params))
    assert outcome == Failed(
        "HTTP.InvalidParameter",
        "serviceParams.Headers names one header twice, as X-Trace and x-trace "
        "(header names ignore case)",
    )
    assert api.seen_with("twice") == []


@pytest.mark.parametrize("spelling", ["Authorization", "authorization", "AUTHORIZATION"])
@bounded
async def test_the_secret_replaces_the_step_header_whatever_its_case(
    api: LocalApi, secret: str, spelling: str
) -> None:
    params = {"Url": f"{api.url}/echo?case=1", "Headers": {spelling: "Bearer from-the-flow"}}
    async with integration(with_secret(api)) as http:
        outcome = await http.invoke(request(params))
    assert isinstance(outcome, Succeeded)
    (seen,) = api.seen_with("case")
    sent = [value for name, value in seen.raw_headers if name.lower() == "authorization"]
    assert sent == [secret]


# ---------------------------------------------------------------------------------------------
# URLs


@pytest.mark.parametrize("userinfo", ["user:pa55word@", "user@", ":pa55word@"])
@bounded
async def test_user_info_in_the_url_is_refused_before_sending(
    api: LocalApi, secret: str, userinfo: str
) -> None:
    url = api.url.replace("http://", f"http://{userinfo}") + "/echo?userinfo=1"
    async with integration(with_secret(api)) as http:
        outcome = await http.invoke(request({"Url": url}))
    assert outcome == Failed(
        "HTTP.InvalidParameter",
        "serviceParams.Url must not hold a user name or password (user:password@host); "
        "credentials belong in header_env of [integrations.http]",
    )
    assert api.seen_with("userinfo") == []


@bounded
async def test_a_backslash_before_an_at_sign_is_user_info_too(
    api: LocalApi, other_api: LocalApi, secret: str
) -> None:
    # Browsers read `http://a\@b/` as host a; httpx as user info `a\` on host b. Refused.
    url = f"http://127.0.0.1:{api.server_port}\\@127.0.0.1:{other_api.server_port}/echo?bs=1"
    async with integration(with_secret(api)) as http:
        outcome = await http.invoke(request({"Url": url}))
    assert isinstance(outcome, Failed) and outcome.error == "HTTP.InvalidParameter"
    assert api.seen_with("bs") == [] and other_api.seen_with("bs") == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@bounded
async def test_a_redirect_to_another_host_is_not_followed(
    api: LocalApi, other_api: LocalApi, secret: str, status: int
) -> None:
    target = f"{other_api.url}/echo?landed=1"
    params = {"Url": f"{api.url}/redirect", "Query": {"to": target, "status": status}}
    async with integration(with_secret(api)) as http:
        outcome = await http.invoke(request(params))
    assert isinstance(outcome, Failed) and outcome.error == f"HTTP.{status}"
    assert "redirects are not followed" in outcome.cause
    assert other_api.seen_with("landed") == []
    assert api.seen_with("redirect")[0].headers["authorization"] == secret


@bounded
async def test_cookies_an_answer_sets_are_not_sent_with_later_requests(api: LocalApi) -> None:
    async with integration() as http:
        first = await http.invoke(request({"Url": f"{api.url}/cookie"}))
        second = await http.invoke(request({"Url": f"{api.url}/echo?after=1"}))
    assert isinstance(first, Succeeded) and isinstance(second, Succeeded)
    assert SESSION_COOKIE in first.output["Headers"]["set-cookie"]
    assert "cookie" not in api.seen_with("after")[0].headers


# ---------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize("name", ["Host", "Content-Length", "Proxy-Authorization"])
def test_header_env_refuses_headers_a_flow_may_not_set_either(name: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} cannot be configured: "):
        HttpSettings(header_env={"api.example.com": {name: "SOME_VARIABLE"}})


def test_header_env_refuses_one_header_twice_for_a_host() -> None:
    with pytest.raises(
        ValidationError,
        match="names one header twice, as Authorization and authorization "
        r"\(header names ignore case\)",
    ):
        HttpSettings(header_env={"api.example.com": {"Authorization": "A", "authorization": "B"}})


def test_the_most_specific_secret_wins_whatever_the_case_of_its_name() -> None:
    table = {
        "*.example.com": {"authorization": "WILD"},
        "api.example.com": {"AUTHORIZATION": "HOST"},
    }
    secrets = SecretHeaders(table, {"WILD": "w", "HOST": "h"})
    assert secrets.for_host("api.example.com", 443) == {"AUTHORIZATION": "h"}
    assert secrets.for_host("www.example.com", 443) == {"authorization": "w"}


# ---------------------------------------------------------------------------------------------
# Logs


@bounded
async def test_no_log_line_holds_a_secret_a_password_or_a_query(
    api: LocalApi, secret: str, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    query = "?token=query-secret-77"
    async with integration(with_secret(api)) as http:
        ok = await http.invoke(request({"Url": f"{api.url}/echo{query}"}))
        denied = await http.invoke(request({"Url": f"{api.url}/deny{query}"}))
        refused = await http.invoke(request({"Url": refused_url + query}))
        userinfo = await http.invoke(
            request({"Url": api.url.replace("http://", "http://user:pa55word@") + "/echo"})
        )
    assert isinstance(ok, Succeeded)
    assert isinstance(denied, Failed) and denied.error == "HTTP.401"
    assert isinstance(refused, Failed) and refused.error == "HTTP.ConnectionError"
    assert isinstance(userinfo, Failed) and userinfo.error == "HTTP.InvalidParameter"
    lines = [record.getMessage() for record in caplog.records] + [caplog.text]
    for line in lines:
        for leak in ("sk-test-0123456789abcdef", "query-secret-77", "token=", "pa55word"):
            assert leak not in line, (leak, line)
    # The plugin's own lines say what was called, as scheme://host/path.
    messages = [r.getMessage() for r in caplog.records if r.name == "relayflow_http"]
    assert f"GET {api.url}/echo answered 200" in messages
    assert f"GET {api.url}/deny answered 401" in messages


# ---------------------------------------------------------------------------------------------
# JSON depth


@pytest.mark.parametrize("depth", [64, 5000, 100_000])
@bounded
async def test_json_nested_too_deep_fails_the_task_naming_the_limit(
    api: LocalApi, depth: int
) -> None:
    async with integration() as http:
        outcome = await http.invoke(request({"Url": f"{api.url}/deep?depth={depth}"}))
    assert outcome == Failed(
        "HTTP.ResponseTooDeep",
        f"GET {api.url}/deep answered 200 with JSON nested more than 63 levels deep; the "
        "step's local, one level above it, may nest 64 (max_json_depth of [integrations.http])",
    )


@bounded
async def test_json_at_the_depth_limit_is_the_local_and_the_limit_is_configurable(
    api: LocalApi,
) -> None:
    async with integration() as http:
        deepest = await http.invoke(request({"Url": f"{api.url}/deep?depth=63"}))
    assert isinstance(deepest, Succeeded)
    body = deepest.output["Body"]
    for _ in range(62):
        (body,) = body
    assert body == []
    async with integration(HttpSettings(max_json_depth=4)) as http:
        fits = await http.invoke(request({"Url": f"{api.url}/deep?depth=3&strings=1"}))
        too_deep = await http.invoke(request({"Url": f"{api.url}/deep?depth=4"}))
    # Brackets and an escaped quote inside a string add no depth.
    assert isinstance(fits, Succeeded)
    assert fits.output["Body"] == [[['[{"' + "[" * 500]]]
    assert too_deep == Failed(
        "HTTP.ResponseTooDeep",
        f"GET {api.url}/deep answered 200 with JSON nested more than 3 levels deep; the "
        "step's local, one level above it, may nest 4 (max_json_depth of [integrations.http])",
    )


def test_max_json_depth_defaults_to_64_and_leaves_room_for_the_local() -> None:
    assert HttpSettings().max_json_depth == 64
    for bad in (0, 1, 10_001):
        with pytest.raises(ValidationError):
            HttpSettings(max_json_depth=bad)
