"""HttpIntegration on its own: registration, configuration, claims, serviceParams and headers.

Requests go to the real local server of the `api` fixture (see http_testkit.py); `invoke` is
called directly with a `TaskRequest`, without an engine. Every async test has a time limit.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from http_testkit import TOKEN_HEADER, LocalApi, integration, request
from pydantic import ValidationError

import relayflow_http
from relayflow.config import ConfigError, load_config
from relayflow.engine import Failed, Submitted, Succeeded
from relayflow.engine.coverage import integration_problems
from relayflow.fdl import load_flow
from relayflow.plugins import PluginManager
from relayflow.testing import bounded, fdl
from relayflow_http import HttpIntegration, HttpSettings
from relayflow_http.secret_headers import SecretHeaders, redact
from relayflow_http.settings import host_rule

# ---------------------------------------------------------------------------------------------
# Registration and configuration


def test_entry_point_is_registered_in_the_relayflow_group() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="relayflow")}
    assert names.get("http") == "relayflow_http"
    assert entry_points(group="relayflow")["http"].load() is relayflow_http


def test_the_hook_registers_http_with_its_settings_model() -> None:
    manager = PluginManager()
    manager.register(relayflow_http, "http-test")
    spec = manager.integration_specs()["http"]
    assert spec.config_model is HttpSettings
    built = spec.factory(HttpSettings())
    assert isinstance(built, HttpIntegration)
    assert built.name == "http" and built.config_model is HttpSettings
    assert built.patterns == {"requestResponse", "waitForCallback"}


def test_settings_come_from_relayflow_toml(tmp_path: Path) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(
        "[integrations.http]\n"
        "timeout_seconds = 2.5\n"
        'allowed_hosts = ["API.example.com", "*.example.org:8443", "[::1]"]\n'
        "max_response_bytes = 4096\n\n"
        '[integrations.http.header_env."api.example.com"]\n'
        'Authorization = "EXAMPLE_AUTH"\n'
    )
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_http, "http-test")
    manager.check_config(config)
    (http,) = [i for i in manager.integrations(config) if isinstance(i, HttpIntegration)]
    assert http.settings == HttpSettings(
        timeout_seconds=2.5,
        allowed_hosts=["api.example.com", "*.example.org:8443", "[::1]"],
        max_response_bytes=4096,
        header_env={"api.example.com": {"Authorization": "EXAMPLE_AUTH"}},
    )


def test_no_table_gives_the_defaults() -> None:
    settings = HttpSettings()
    assert (settings.timeout_seconds, settings.max_response_bytes) == (30.0, 1024 * 1024)
    assert (settings.allowed_hosts, settings.header_env) == ([], {})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[integrations.http]\ntimeout_second = 3\n",
            "unknown key 'integrations.http.timeout_second'",
        ),
        (
            "[integrations.http]\ntimeout_seconds = 0\n",
            "integrations.http.timeout_seconds: input should be greater than 0, got 0",
        ),
        (
            "[integrations.http]\nmax_response_bytes = -1\n",
            "integrations.http.max_response_bytes: input should be greater than 0",
        ),
        (
            '[integrations.http]\nallowed_hosts = "api.example.com"\n',
            "integrations.http.allowed_hosts: input should be a valid list",
        ),
        (
            '[integrations.http]\nallowed_hosts = ["https://api.example.com/v1"]\n',
            'integrations.http.allowed_hosts.0: a host is written like "api.example.com"',
        ),
        (
            '[integrations.http.header_env."api.example.com"]\nAuthorization = "Bearer abc"\n',
            "the value is the name of an environment variable, like EXAMPLE_API_TOKEN, "
            "never the secret itself",
        ),
        (
            '[integrations.http.header_env."api.example.com"]\n"Bad Header" = "X"\n',
            "a header name is letters, digits and -, like X-Api-Key",
        ),
    ],
)
def test_a_bad_table_is_one_line_naming_the_file_and_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(toml)
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_http, "http-test")
    with pytest.raises(ConfigError) as info:
        manager.integrations(config)
    text = str(info.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_host_patterns() -> None:
    assert host_rule("api.example.com").matches("api.example.com", 443)
    assert not host_rule("api.example.com").matches("other.example.com", 443)
    assert host_rule("api.example.com:8443").matches("api.example.com", 8443)
    assert not host_rule("api.example.com:8443").matches("api.example.com", 443)
    wild = host_rule("*.example.com")
    assert wild.matches("a.example.com", 80) and wild.matches("a.b.example.com", 80)
    assert not wild.matches("example.com", 80) and not wild.matches("badexample.com", 80)
    assert host_rule("[::1]:8080").matches("::1", 8080)
    for bad in ("http://x.com", "x.com/path", "x.com:99999", "*.[::1]", "", "a b"):
        with pytest.raises(ValidationError):
            HttpSettings(allowed_hosts=[bad])


# ---------------------------------------------------------------------------------------------
# Claims and patterns


def test_claims_the_request_action_only() -> None:
    http = HttpIntegration()
    assert http.claims("http:Request")
    assert not http.claims("http:Get") and not http.claims("acs:fc:::services/s/functions/f")


def test_validate_strict_reports_the_sync_pattern() -> None:
    text = fdl("""
    - type: task
      name: a
      action: http:Request
      pattern: waitForCallback
    - type: task
      name: b
      action: http:Request
      pattern: sync
    """)
    problems = integration_problems(load_flow(text, "f"), [HttpIntegration()], text, "f.yaml")
    assert [p.message for p in problems] == [
        "integration http does not support pattern sync; it supports requestResponse, "
        "waitForCallback"
    ]


# ---------------------------------------------------------------------------------------------
# serviceParams


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        (None, "serviceParams.Url is required: the http or https URL to call"),
        ({"Method": "GET"}, "serviceParams.Url is required: the http or https URL to call"),
        ({"Url": 5}, "serviceParams.Url must be a string, not a number"),
        (
            {"Url": "ftp://example.com/x"},
            "serviceParams.Url must be an absolute http:// or https:// URL with a host",
        ),
        (
            {"Url": "/relative"},
            "serviceParams.Url must be an absolute http:// or https:// URL with a host",
        ),
        (
            {"Url": "http://x.com", "Method": "FETCH"},
            "serviceParams.Method must be one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, "
            "got 'FETCH'",
        ),
        (
            {"Url": "http://x.com", "Headers": ["a"]},
            "serviceParams.Headers must be an object of strings, not an array",
        ),
        (
            {"Url": "http://x.com", "Headers": {"X-A": {"b": 1}}},
            "serviceParams.Headers.X-A must be a string, not an object",
        ),
        (
            {"Url": "http://x.com", "Headers": {"X-A": "a\r\nX-Evil: 1"}},
            "serviceParams.Headers.X-A holds a line break, a control character or a character "
            "that is not ASCII",
        ),
        (
            {"Url": "http://x.com", "Headers": {"X-A": "café"}},
            "serviceParams.Headers.X-A holds a line break, a control character or a character "
            "that is not ASCII",
        ),
        (
            {"Url": "http://x.com", "Headers": {"Bad Name": "1"}},
            "serviceParams.Headers has a key 'Bad Name' that is no header name",
        ),
        (
            {"Url": "http://x.com", "Query": "a=1"},
            "serviceParams.Query must be an object, not a string",
        ),
        (
            {"Url": "http://x.com", "Query": {"a": {"b": 1}}},
            "serviceParams.Query.a must be a string, a number, a boolean or a list of them",
        ),
        (
            {"Url": "http://x.com", "TimeoutSeconds": 0},
            "serviceParams.TimeoutSeconds must be a number of seconds above 0, got 0",
        ),
        (
            {"Url": "http://x.com", "TimeoutSeconds": "5"},
            "serviceParams.TimeoutSeconds must be a number of seconds above 0, got '5'",
        ),
        (
            {"Url": "http://x.com", "Method": "GET", "Header": {}},
            "serviceParams.Header is not a parameter of http:Request; "
            "use Method, Url, Headers, Query, Body, TimeoutSeconds",
        ),
    ],
)
@bounded
async def test_bad_service_params_fail_with_a_sentence_naming_them(
    params: dict[str, Any] | None, cause: str
) -> None:
    async with integration() as http:
        outcome = await http.invoke(request(params))
    assert outcome == Failed("HTTP.InvalidParameter", cause)


@bounded
async def test_a_bad_header_from_a_plugin_fails_before_sending() -> None:
    async with integration() as http:
        outcome = await http.invoke(
            request({"Url": "http://x.com"}, headers={"traceparent": "a\nb"})
        )
    assert outcome == Failed(
        "HTTP.InvalidParameter",
        "header traceparent, added by a plugin, holds a line break, a control character or a "
        "character that is not ASCII",
    )


@bounded
async def test_headers_come_in_order_plugins_step_secrets_token(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYFLOW_HTTP_TEST_KEY", "  key-from-env\n")
    settings = HttpSettings(header_env={"127.0.0.1": {"X-Api-Key": "RELAYFLOW_HTTP_TEST_KEY"}})
    params = {
        "Url": f"{api.url}/echo",
        "Headers": {
            "X-From": "step",
            "x-api-key": "step-cannot-set-it",
            TOKEN_HEADER: "forged",
            "Content-Type": "application/vnd.test+json",
        },
        "Body": {"a": 1},
    }
    plugin_headers = {"X-From": "plugin", "X-Plugin": "yes"}
    async with integration(settings) as http:
        outcome = await http.invoke(
            request(params, pattern="waitForCallback", headers=plugin_headers)
        )
        assert outcome == Submitted({"StatusCode": 200})
        sent = api.seen_with("echo")[-1].headers
        assert (sent["x-from"], sent["x-plugin"], sent["x-api-key"]) == (
            "step",
            "yes",
            "key-from-env",
        )
        assert sent[TOKEN_HEADER.lower()] == "token-3"
        assert sent["content-type"] == "application/vnd.test+json"
        other = await http.invoke(request({"Url": f"{api.url}/echo", "Body": [1, 2]}))
    assert isinstance(other, Succeeded)
    assert other.output["Body"]["json"] == [1, 2]
    assert other.output["Body"]["headers"]["content-type"] == "application/json"


@bounded
async def test_a_json_answer_with_a_suffix_type_is_parsed_and_bad_json_stays_text(
    api: LocalApi,
) -> None:
    async with integration() as http:
        head = await http.invoke(request({"Url": f"{api.url}/echo", "Method": "HEAD"}))
        missing = await http.invoke(request({"Url": f"{api.url}/nowhere"}))
    assert isinstance(head, Succeeded) and head.output["Body"] == ""
    assert head.output["StatusCode"] == 200
    assert missing == Failed(
        "HTTP.404",
        f'GET {api.url}/nowhere answered 404 Not Found: {{"error": "no endpoint /nowhere"}}',
    )


@bounded
async def test_a_large_error_answer_is_quoted_from_its_start(api: LocalApi) -> None:
    url = f"{api.url}/huge?bytes=5000000&declare=1&status=500&key=error"
    async with integration() as http:
        outcome = await http.invoke(request({"Url": url}))
    assert outcome == Failed(
        "HTTP.500", f"GET {api.url}/huge answered 500 Internal Server Error: {'x' * 200}..."
    )


@bounded
async def test_the_step_timeout_caps_the_request_timeout(api: LocalApi) -> None:
    settings = HttpSettings(timeout_seconds=60)
    async with integration(settings) as http:
        params = {"Url": f"{api.url}/slow?seconds=5", "TimeoutSeconds": 30}
        # timeoutSeconds is whole seconds: 1 is the least the engine can pass.
        outcome = await http.invoke(request(params, timeout_seconds=1))
    assert outcome == Failed(
        "HTTP.Timeout", f"GET {api.url}/slow got no complete answer within 1 seconds"
    )


@bounded
async def test_the_query_and_fragment_stay_out_of_causes(refused_url: str) -> None:
    # User info is refused before sending: see test_http_security.py.
    url = refused_url + "?token=abc#frag"
    async with integration() as http:
        outcome = await http.invoke(request({"Url": url, "Method": "DELETE"}))
    assert isinstance(outcome, Failed) and outcome.error == "HTTP.ConnectionError"
    assert outcome.cause.startswith(f"DELETE {refused_url} failed: ")
    for secret in ("token", "abc", "frag"):
        assert secret not in outcome.cause


@bounded
async def test_a_redirect_is_not_followed(api: LocalApi) -> None:
    # The echo server answers any status it is asked for; a 302 without Location is enough.
    async with integration() as http:
        outcome = await http.invoke(request({"Url": f"{api.url}/echo?status=302"}))
    assert isinstance(outcome, Failed) and outcome.error == "HTTP.302"
    assert outcome.cause.startswith(
        f"GET {api.url}/echo answered 302 Found (redirects are not followed): "
    )


# ---------------------------------------------------------------------------------------------
# Secret headers


def test_secret_headers_pick_the_most_specific_pattern() -> None:
    table = {
        "api.example.com:8443": {"Authorization": "PORT"},
        "*.example.com": {"Authorization": "WILD", "X-Team": "TEAM"},
        "api.example.com": {"Authorization": "HOST"},
    }
    env = {"PORT": "p", "WILD": "w", "TEAM": "t", "HOST": "h"}
    secrets = SecretHeaders(table, env)
    assert secrets.for_host("api.example.com", 8443) == {"Authorization": "p", "X-Team": "t"}
    assert secrets.for_host("api.example.com", 443) == {"Authorization": "h", "X-Team": "t"}
    assert secrets.for_host("www.example.com", 443) == {"Authorization": "w", "X-Team": "t"}
    assert secrets.for_host("example.net", 443) == {}


def test_a_secret_with_a_line_break_is_refused_without_quoting_it() -> None:
    secrets = SecretHeaders({"x.com": {"X-Key": "KEY"}}, {"KEY": "abc\r\nX-Evil: yes"})
    with pytest.raises(relayflow_http.errors.CallFailed) as info:
        secrets.for_host("x.com", 443)
    assert info.value.error == "HTTP.SecretMissing"
    assert "abc" not in info.value.cause and "KEY" in info.value.cause


def test_redact_hides_the_value_and_its_long_words() -> None:
    text = "got 'Bearer sk-live-123456' then sk-live-123456 and Bearer alone"
    assert redact(text, ["Bearer sk-live-123456"]) == "got '***' then *** and Bearer alone"
