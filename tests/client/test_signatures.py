"""Request signatures, keys, endpoints and configuration of the client."""

from __future__ import annotations

import json

import pytest

from relayflow.client import AsyncClient, Client, ClientError
from relayflow.config import ClientConfig, Config
from tests.client.fake_server import KEY_ID, SECRET


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
