"""HttpIntegration driven by the real engine against a real local HTTP server.

Every test builds `Engine(open_store("memory://"), integrations=[HttpIntegration(...)])` on its
own event loop and talks to the server of the `api` fixture (see http_testkit.py). Waits are
bounded; retries use one-second intervals, and no test takes more than a few seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from http_testkit import TOKEN_HEADER, LocalApi

from relayflow.engine import Engine, TaskRequest
from relayflow.plugins import PluginManager, hookimpl
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow.testing import event_details as events
from relayflow.testing import run_to_end as run
from relayflow_http import HttpIntegration, HttpSettings


@asynccontextmanager
async def running(
    settings: HttpSettings | None = None, plugins: PluginManager | None = None
) -> AsyncIterator[Engine]:
    """A started engine whose only integration is http; its client is closed afterwards."""
    http = HttpIntegration(settings)
    engine = Engine(open_store("memory://"), integrations=[http], poll_seconds=0.1, plugins=plugins)
    try:
        async with engine:
            yield engine
    finally:
        await http.aclose()


def one_call(params: str, extra: str = "", after: str = "") -> str:
    """A flow whose first step is an http:Request with these serviceParams (YAML).

    ``extra`` holds more attributes of that step (retry, catch), ``after`` the steps after it.
    """
    indented = "\n".join("    " + line for line in params.strip("\n").splitlines())
    return fdl(f"""
- type: task
  name: call
  action: http:Request
{extra}
  serviceParams:
{indented}
{after}
""")


# ---------------------------------------------------------------------------------------------
# Requests and their output


class Trace:
    """A plugin adding trace context to every task request, as a tracing plugin would."""

    @hookimpl
    def relayflow_prepare_task_request(self, request: TaskRequest) -> TaskRequest:
        return dataclasses.replace(
            request, headers={**request.headers, "traceparent": "00-abc-def-01"}
        )


@bounded
async def test_a_post_sends_the_mapped_input_as_json_and_the_local_is_parsed(
    api: LocalApi,
) -> None:
    flow = fdl(f"""
    - type: task
      name: call
      action: http:Request
      inputMappings:
        - target: orderId
          source: $input.orderId
        - target: note
          source: $input.note
      serviceParams:
        Method: post
        Url: {api.url}/echo?fixed=1
        Headers:
          X-Order: $.orderId
          X-Absent: $.nothing
        Query:
          id: $.orderId
          tags: [a, b]
          flag: true
          absent: $.nothing
        Body: $
      outputMappings:
        - target: status
          source: $local.StatusCode
        - target: contentType
          source: $local.Headers.content-type
        - target: got
          source: $local.Body
    """)
    plugins = PluginManager()
    plugins.register(Trace(), "trace")
    async with running(plugins=plugins) as eng:
        await eng.create_flow("post", flow)
        info = await run(eng, "post", {"orderId": 7, "note": "größer", "other": 1}, "run1")
    assert info.status == "Succeeded", (info.error, info.cause)
    out = info.output or {}
    assert (out["status"], out["contentType"]) == (200, "application/json")
    got = out["got"]
    assert got["method"] == "POST" and got["path"] == "/echo"
    assert got["query"] == {"fixed": ["1"], "id": ["7"], "tags": ["a", "b"], "flag": ["true"]}
    assert got["json"] == {"orderId": 7, "note": "größer"}
    headers = got["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-order"] == "7" and "x-absent" not in headers
    assert headers["traceparent"] == "00-abc-def-01"
    assert headers["user-agent"].startswith("relayflow-http/")
    assert TOKEN_HEADER.lower() not in headers  # requestResponse carries no token


@bounded
async def test_text_bodies_go_as_text_and_text_answers_stay_text(api: LocalApi) -> None:
    async with running() as eng:
        await eng.create_flow("text", one_call(f"Url: {api.url}/text"))
        await eng.create_flow(
            "send", one_call(f"Method: PUT\nUrl: {api.url}/echo\nBody: plain words")
        )
        text = await run(eng, "text", {}, "t")
        sent = await run(eng, "send", {}, "s")
    assert text.status == "Succeeded"
    local = text.output or {}
    assert local["StatusCode"] == 200 and local["Body"] == "hello, wörld\n"
    assert local["Headers"]["content-type"] == "text/plain; charset=utf-8"
    echoed = (sent.output or {})["Body"]
    assert echoed["body"] == "plain words" and echoed["method"] == "PUT"
    assert echoed["headers"]["content-type"] == "text/plain; charset=utf-8"


# ---------------------------------------------------------------------------------------------
# Failures: status, retry, timeout, connection, host, size


@bounded
async def test_a_retry_on_http_503_succeeds_after_two_failures(api: LocalApi) -> None:
    flow = one_call(
        f"Url: {api.url}/failing?key=retry&times=2&sig=query-secret",
        extra="""  retry:
    - errors: [HTTP.503]
      intervalSeconds: 1
      maxAttempts: 3
      multiplier: 1""",
    )
    async with running() as eng:
        await eng.create_flow("flaky", flow)
        info = await run(eng, "flaky", {}, "run1")
        history = await events(eng, "flaky", "run1")
    assert info.status == "Succeeded", (info.error, info.cause)
    assert (info.output or {})["Body"] == {"calls": 3}
    failed = [detail for kind, detail in history if kind == "TaskFailed"]
    assert [f["error"] for f in failed] == ["HTTP.503", "HTTP.503"]
    cause = failed[0]["cause"]
    assert cause.startswith(f"GET {api.url}/failing answered 503 Service Unavailable: ")
    assert '"error": "busy"' in cause and "query-secret" not in cause and "?" not in cause


@bounded
async def test_a_timeout_is_http_timeout_and_a_catch_takes_it(api: LocalApi) -> None:
    flow = one_call(
        f"Url: {api.url}/slow?seconds=5\nTimeoutSeconds: 0.3",
        extra="""  errorMappings:
    - target: error
      source: $local.error
    - target: cause
      source: $local.cause
  catch:
    - errors: [HTTP.Timeout]
      goto: late""",
        after="""- type: succeed
  name: done
- type: pass
  name: late
  outputMappings:
    - target: caught
      source: true""",
    )
    async with running() as eng:
        await eng.create_flow("slow", flow)
        info = await run(eng, "slow", {}, "run1")
    assert info.status == "Succeeded", (info.error, info.cause)
    out = info.output or {}
    assert (out["caught"], out["error"]) == (True, "HTTP.Timeout")
    assert out["cause"] == f"GET {api.url}/slow got no complete answer within 0.3 seconds"


@bounded
async def test_a_refused_connection_is_http_connection_error(refused_url: str) -> None:
    async with running() as eng:
        await eng.create_flow("down", one_call(f"Url: {refused_url}"))
        info = await run(eng, "down", {}, "run1")
    assert (info.status, info.error) == ("Failed", "HTTP.ConnectionError")
    assert (info.cause or "").startswith(f"GET {refused_url} failed: ")


@bounded
async def test_a_host_outside_allowed_hosts_is_refused_before_sending(api: LocalApi) -> None:
    flow = one_call(f"Url: {api.url}/echo?marker=refused")
    async with running(HttpSettings(allowed_hosts=["api.example.com", "*.127.0.0.1"])) as eng:
        await eng.create_flow("f", flow)
        refused = await run(eng, "f", {}, "refused")
    assert (refused.status, refused.error) == ("Failed", "HTTP.HostNotAllowed")
    assert refused.cause == (
        f"GET {api.url}/echo was not sent: 127.0.0.1 is not in allowed_hosts of [integrations.http]"
    )
    assert api.seen_with("refused") == []
    allowed = ["api.example.com", f"127.0.0.1:{api.server_port}"]
    async with running(HttpSettings(allowed_hosts=allowed)) as eng:
        await eng.create_flow("f", flow)
        ok = await run(eng, "f", {}, "allowed")
    assert ok.status == "Succeeded" and len(api.seen_with("refused")) == 1


@pytest.mark.parametrize("declare", ["0", "1"], ids=["chunked", "content-length"])
@bounded
async def test_an_answer_over_max_response_bytes_fails_and_is_not_read_to_the_end(
    api: LocalApi, declare: str
) -> None:
    total = 64 * 1024 * 1024
    flow = one_call(f"Url: {api.url}/huge?bytes={total}&declare={declare}&key=k{declare}")
    async with running(HttpSettings(max_response_bytes=100_000)) as eng:
        await eng.create_flow("huge", flow)
        info = await run(eng, "huge", {}, "run1")
    assert (info.status, info.error) == ("Failed", "HTTP.ResponseTooLarge")
    assert info.cause == (
        f"GET {api.url}/huge answered 200 with a body larger than 100000 bytes "
        "(max_response_bytes of [integrations.http])"
    )
    record = await asyncio.to_thread(api.wait_huge, f"k{declare}", 3)
    assert record is not None and record.cut_off and record.sent < total


@bounded
async def test_json_nested_thousands_deep_fails_the_step_and_the_engine_goes_on(
    api: LocalApi,
) -> None:
    catch = "  catch:\n    - errors: [HTTP.ResponseTooDeep]\n      goto: deep"
    after = "- type: fail\n  name: deep\n  error: Deep\n  cause: caught"
    async with running() as eng:
        await eng.create_flow("deep", one_call(f"Url: {api.url}/deep?depth=100000"))
        await eng.create_flow("caught", one_call(f"Url: {api.url}/deep?depth=5000", catch, after))
        await eng.create_flow("fine", one_call(f"Url: {api.url}/deep?depth=3"))
        deep = await run(eng, "deep", {}, "run1")
        caught = await run(eng, "caught", {}, "run1")
        fine = await run(eng, "fine", {}, "run1")
    assert (deep.status, deep.error) == ("Failed", "HTTP.ResponseTooDeep")
    assert deep.cause == (
        f"GET {api.url}/deep answered 200 with JSON nested more than 63 levels deep; the "
        "step's local, one level above it, may nest 64 (max_json_depth of [integrations.http])"
    )
    assert (caught.status, caught.error) == ("Failed", "Deep")
    assert fine.status == "Succeeded" and (fine.output or {})["Body"] == [[[]]]


# ---------------------------------------------------------------------------------------------
# Secret headers from the environment


SECRET = "Bearer sk-live-0123456789abcdef"


@bounded
async def test_a_secret_header_reaches_the_server_and_never_a_cause(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYFLOW_HTTP_TEST_AUTH", SECRET)
    settings = HttpSettings(
        header_env={
            "127.0.0.1": {"Authorization": "RELAYFLOW_HTTP_TEST_AUTH"},
            "api.example.com": {"X-Other": "RELAYFLOW_HTTP_TEST_UNSET"},
        }
    )
    ok_flow = one_call(f"Url: {api.url}/echo\nHeaders:\n  authorization: Bearer from-the-flow")
    denied_flow = one_call(f"Url: {api.url}/deny")
    async with running(settings) as eng:
        await eng.create_flow("ok", ok_flow)
        await eng.create_flow("denied", denied_flow)
        ok = await run(eng, "ok", {}, "ok")
        denied = await run(eng, "denied", {}, "denied")
        history = await events(eng, "denied", "denied")
    assert ok.status == "Succeeded"
    assert (ok.output or {})["Body"]["headers"]["authorization"] == SECRET  # config wins
    assert "x-other" not in (ok.output or {})["Body"]["headers"]
    assert (denied.status, denied.error) == ("Failed", "HTTP.401")
    assert api.seen_with("deny")[0].headers["authorization"] == SECRET
    assert denied.cause == (
        f"GET {api.url}/deny answered 401 Unauthorized: the credentials *** were rejected"
    )
    assert "sk-live" not in json.dumps(history)


@bounded
async def test_a_missing_secret_variable_fails_with_a_cause_naming_it(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYFLOW_HTTP_TEST_UNSET", raising=False)
    settings = HttpSettings(header_env={"127.0.0.1": {"X-Api-Key": "RELAYFLOW_HTTP_TEST_UNSET"}})
    async with running(settings) as eng:
        await eng.create_flow("f", one_call(f"Url: {api.url}/echo?marker=nosecret"))
        info = await run(eng, "f", {}, "run1")
    assert (info.status, info.error) == ("Failed", "HTTP.SecretMissing")
    assert info.cause == (
        "header X-Api-Key for 127.0.0.1 comes from the environment variable "
        "RELAYFLOW_HTTP_TEST_UNSET, which is not set or empty"
    )
    assert api.seen_with("nosecret") == []


# ---------------------------------------------------------------------------------------------
# waitForCallback


CALLBACK = """
- type: task
  name: approve
  action: http:Request
  pattern: waitForCallback
  timeoutSeconds: 4
  inputMappings:
    - target: order
      source: $input.order
    - target: taskToken
      source: $context.task.token
  serviceParams:
    Method: POST
    Url: {url}
    Body: $
"""


@bounded
async def test_wait_for_callback_round_trip_through_the_engine(api: LocalApi) -> None:
    loop = asyncio.get_running_loop()
    problems: list[str] = []

    async with running() as eng:

        async def report(token: str, body: Any) -> None:
            # Report once the engine has recorded TaskSubmitted, so the history is in order.
            for _ in range(100):
                kinds = [kind for kind, _ in await events(eng, "approve", "run1")]
                if "TaskSubmitted" in kinds:
                    break
                await asyncio.sleep(0.02)
            if body["taskToken"] != token:
                problems.append("the header and the body carry different tokens")
            await eng.report_task_succeeded(token, {"approved": body["order"]})

        def on_callback(token: str, body: Any) -> None:  # on the server's thread
            try:
                asyncio.run_coroutine_threadsafe(report(token, body), loop).result(3)
            except Exception as exc:
                problems.append(repr(exc))

        api.state.on_callback = on_callback
        await eng.create_flow("approve", fdl(CALLBACK.format(url=f"{api.url}/callback")))
        info = await run(eng, "approve", {"order": 42}, "run1")
        history = await events(eng, "approve", "run1")
    assert problems == []
    assert (info.status, info.output) == ("Succeeded", {"approved": 42})
    tasks = [(kind, detail) for kind, detail in history if kind.startswith("Task")]
    assert [kind for kind, _ in tasks] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
    ]
    assert tasks[2][1] == {"StatusCode": 202}


@bounded
async def test_wait_for_callback_fails_at_once_when_the_answer_is_not_2xx(api: LocalApi) -> None:
    async with running() as eng:
        await eng.create_flow("approve", fdl(CALLBACK.format(url=f"{api.url}/echo?status=500")))
        info = await run(eng, "approve", {"order": 1}, "run1")
    assert (info.status, info.error) == ("Failed", "HTTP.500")
    assert (info.cause or "").startswith(f"POST {api.url}/echo answered 500 ")
    assert api.seen_with("status")[0].headers[TOKEN_HEADER.lower()]


# ---------------------------------------------------------------------------------------------
# From relayflow.toml, through `relayflow run`


def test_relayflow_run_uses_the_installed_plugin_and_its_table(
    api: LocalApi, tmp_path: Path
) -> None:
    (tmp_path / "flow.yaml").write_text(one_call(f"Url: {api.url}/echo?marker=cli"))
    (tmp_path / "relayflow.toml").write_text(
        '[engine]\nstore = "memory://"\n\n'
        f'[integrations.http]\nallowed_hosts = ["127.0.0.1:{api.server_port}"]\n\n'
        '[integrations.http.header_env."127.0.0.1"]\nX-Api-Key = "RELAYFLOW_HTTP_CLI_KEY"\n'
    )
    relayflow = Path(sys.executable).parent / "relayflow"
    done = subprocess.run(
        [str(relayflow), "run", "flow.yaml", "--config", "relayflow.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "RELAYFLOW_HTTP_CLI_KEY": "cli-key-value"},
    )
    assert done.returncode == 0, done.stderr
    local = json.loads(done.stdout)
    assert local["StatusCode"] == 200
    assert api.seen_with("cli")[0].headers["x-api-key"] == "cli-key-value"
