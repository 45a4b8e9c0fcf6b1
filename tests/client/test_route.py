"""The route header: calls that change one execution name it, for the balancer to hash on.

The wire client's header is checked in tests/test_client_wire.py; haproxy hashing on it, in
tests/test_deploy_example.py.
"""

from __future__ import annotations

import asyncio
import base64
import re

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.client import AsyncClient, Client
from relayflow.client._route import ROUTE_HEADER, route_of, token_route
from relayflow.engine.tokens import mint_token

EXECUTION = {"Name": "run", "FlowName": "orders", "Status": "Running", "Input": "{}"}
SAFE_ROUTE = re.compile(r"[!-~]+/[!-~]+")


def test_a_token_routes_to_its_execution() -> None:
    token = mint_token(b"secret", "orders", "order-7", "uid", 12)
    assert token_route(token) == "orders/order-7"


def test_what_is_not_a_token_has_no_route() -> None:
    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    assert token_route(None) is None
    assert token_route("") is None
    assert token_route("not base64!") is None
    assert token_route(encoded("v2#orders#run#1#mac")) is None
    assert token_route(encoded("v1#orders#run#1")) is None
    assert token_route(encoded("v1##run#1#mac")) is None
    assert token_route(base64.b64encode(b"\xff\xfe").decode()) is None
    assert token_route(encoded("v1#orders#" + "r" * 5000 + "#1#mac")) is None


def test_names_that_could_break_a_header_get_no_route() -> None:
    assert route_of("orders", "a\r\nX-Evil: 1") is None
    assert route_of("orders", "with space") is None
    assert route_of("orders", "naïve") is None
    assert route_of("orders", "r" * 257) is None
    assert route_of("orders", None) is None
    assert route_of("orders", "r" * 256) == "orders/" + "r" * 256


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(base64.b64encode)))
@settings(max_examples=300, deadline=None)
def test_any_token_text_gives_a_safe_route_or_none(raw: str | bytes) -> None:
    token = raw.decode() if isinstance(raw, bytes) else raw
    route = token_route(token)
    assert route is None or SAFE_ROUTE.fullmatch(route)


@given(flow=st.text(min_size=1, max_size=40), name=st.text(min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_a_minted_token_routes_as_its_names_do(flow: str, name: str) -> None:
    if "#" in flow or "#" in name:
        return  # not names the engine accepts: the layout splits on '#'
    assert token_route(mint_token(b"k", flow, name, "uid", 1)) == route_of(flow, name)


class Recorder:
    def __init__(self) -> None:
        self.routes: list[str | None] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.routes.append(request.headers.get(ROUTE_HEADER))
        return httpx.Response(200, json={"RequestId": "r", "EventId": 1, **EXECUTION})


def test_the_httpx_clients_send_the_route_too() -> None:
    token = mint_token(b"k", "orders", "run", "uid", 1)
    recorder = Recorder()
    with Client("http://relayflow.test", transport=httpx.MockTransport(recorder.answer)) as c:
        c.report_task_succeeded(token, {})
        c.describe_execution("orders", "run")

    async def calls() -> None:
        transport = httpx.MockTransport(recorder.answer)
        async with AsyncClient("http://relayflow.test", transport=transport) as client:
            await client.start_execution("orders", {}, name="run")
            await client.report_task_failed(token, "E", "")
            await client.start_execution("orders", {})

    asyncio.run(calls())
    assert recorder.routes == ["orders/run", None, "orders/run", "orders/run", None]
