"""Fixtures for the client's tests: a strict fake API server and a client signed for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relayflow.client import Client
from tests.client.fake_server import KEY_ID, SECRET, FakeServer, serve_fake


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A strict fake of the API server; the test fails if the client broke the protocol."""
    with serve_fake() as server:
        yield server


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    """A `Client` with the fake server's key, a 5 s timeout."""
    with Client(fake.url, KEY_ID, SECRET, timeout=5) as c:
        yield c
