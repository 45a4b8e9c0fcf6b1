"""Without access keys, only local programs may drive the server, not web pages.

A browser lets any page send a "simple" request to 127.0.0.1 without asking the server first:
a form POST, a `fetch(..., {mode: "no-cors"})` with a text body, an image's GET. A page can
also rebind its own DNS name to 127.0.0.1, so that its requests carry its name as `Host`. A
key-less server must therefore refuse a `Host` that is not its own address, an `Origin` (or
`Sec-Fetch-Site`) of another site, a body that is not a form, and GET for actions that change
anything. Each refusal changes nothing; the official SDK and the project's own client still
work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkfnf.request.v20190315 import DescribeFlowRequest

from relayflow.client import Client
from tests.api_server import ApiServer, config_text, serving

FLOW = """version: v1
type: flow
steps:
  - type: pass
    name: nothing
"""


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serving(tmp_path_factory.mktemp("keyless"), config_text(plugin=False)) as server:
        yield server


@pytest.fixture
def flow(keyless: ApiServer) -> str:
    """A flow that the refused requests try to delete."""
    name = f"victim-{uuid.uuid4().hex[:8]}"
    keyless.ok({"Action": "CreateFlow", "Name": name, "Definition": FLOW, "Type": "FDL"})
    return name


def still_there(server: ApiServer, flow: str) -> None:
    answer = server.post({"Action": "DescribeFlow", "Name": flow})
    assert answer.status_code == 200, answer.text


def delete(server: ApiServer, flow: str, **headers: str) -> httpx.Response:
    return server.http.post("/", data={"Action": "DeleteFlow", "Name": flow}, headers=headers)


def refused(answer: httpx.Response, code: str, status: int) -> dict[str, Any]:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    doc: dict[str, Any] = answer.json()
    assert set(doc) == {"Code", "Message", "RequestId"}
    return doc


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "127.0.0.1:1"]
)
def test_a_foreign_host_is_refused(keyless, flow, host):
    """DNS rebinding: the page's own name resolves to 127.0.0.1 and travels as Host."""
    host = host.format(port=keyless.port)
    doc = refused(delete(keyless, flow, Host=host), "InvalidHost", 403)
    assert host in doc["Message"]
    still_there(keyless, flow)


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://localhost.evil"]
)
def test_a_foreign_origin_is_refused(keyless, flow, origin):
    doc = refused(delete(keyless, flow, Origin=origin), "CrossOriginRequest", 403)
    assert origin in doc["Message"]
    still_there(keyless, flow)


def test_a_cross_site_fetch_is_refused(keyless, flow):
    """Browsers say where a request comes from in Sec-Fetch-Site, even when Origin is absent."""
    refused(delete(keyless, flow, **{"Sec-Fetch-Site": "cross-site"}), "CrossOriginRequest", 403)
    still_there(keyless, flow)


def test_the_no_cors_fetch_of_the_report_is_refused(keyless, flow):
    """The request of the report: a text body, a foreign Origin and a rebound Host."""
    body = urlencode({"Action": "DeleteFlow", "Name": flow})
    answer = keyless.http.post(
        "/",
        content=body,
        headers={
            "Content-Type": "text/plain;charset=UTF-8",
            "Origin": f"http://rebound.example:{keyless.port}",
            "Host": f"rebound.example:{keyless.port}",
        },
    )
    assert answer.status_code == 403, answer.text
    still_there(keyless, flow)


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "multipart/form-data", None])
def test_a_body_that_is_not_a_form_is_refused(keyless, flow, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = urlencode({"Action": "DeleteFlow", "Name": flow})
    answer = keyless.http.post("/", content=body, headers=headers)
    doc = refused(answer, "UnsupportedMediaType", 415)
    assert "application/x-www-form-urlencoded" in doc["Message"]
    still_there(keyless, flow)


def test_get_may_only_read(keyless, flow):
    """An image or a link can send a GET from any page: it must not change anything."""
    answer = keyless.http.get("/", params={"Action": "DeleteFlow", "Name": flow})
    doc = refused(answer, "MethodNotAllowed", 405)
    assert "POST" in doc["Message"]
    still_there(keyless, flow)
    described = keyless.http.get("/", params={"Action": "DescribeFlow", "Name": flow})
    assert described.status_code == 200, described.text


@pytest.mark.parametrize(
    ("host", "origin", "content_type"),
    [
        ("127.0.0.1:{port}", None, "application/x-www-form-urlencoded"),
        ("localhost:{port}", "http://localhost:{port}", "application/x-www-form-urlencoded"),
        (
            "127.0.0.1:{port}",
            "http://127.0.0.1:{port}",
            "application/x-www-form-urlencoded; charset=UTF-8",
        ),
        ("LOCALHOST:{port}", "https://localhost:{port}", "Application/X-WWW-Form-Urlencoded"),
    ],
)
def test_local_requests_are_served(keyless, flow, host, origin, content_type):
    headers = {"Host": host.format(port=keyless.port), "Content-Type": content_type}
    if origin:
        headers["Origin"] = origin.format(port=keyless.port)
    headers["Sec-Fetch-Site"] = "same-origin"
    body = urlencode({"Action": "DescribeFlow", "Name": flow})
    answer = keyless.http.post("/", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    # A POST without a body, its parameters in the query string, needs no content type.
    answer = keyless.http.post("/", params={"Action": "DescribeFlow", "Name": flow})
    assert answer.status_code == 200, answer.text


def test_the_clients_are_served(keyless, flow):
    with Client(keyless.url) as client:
        assert client.describe_flow(flow).name == flow
        client.delete_flow(flow)
    request = DescribeFlowRequest.DescribeFlowRequest()
    request.set_Name("absent-flow")
    request.set_endpoint(keyless.endpoint)
    request.set_protocol_type("http")
    sdk = AcsClient("any-key", "any-secret", "cn-hangzhou", auto_retry=False)
    answer = sdk.do_action_with_exception
    with pytest.raises(Exception, match="FlowNotExists"):
        answer(request)
