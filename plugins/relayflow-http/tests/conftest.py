"""Fixtures: the local HTTP server, and a URL nothing answers on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from http_testkit import LocalApi


@pytest.fixture
def api() -> Iterator[LocalApi]:
    """A fresh server on a free loopback port, stopped after the test."""
    server = LocalApi().start()
    yield server
    server.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/nothing"


@pytest.fixture
def other_api() -> Iterator[LocalApi]:
    """A second server, standing for another host a request must not reach."""
    server = LocalApi().start()
    yield server
    server.stop()
