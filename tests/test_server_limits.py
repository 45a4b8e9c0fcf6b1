"""The server's limits on connections, against real servers over raw sockets.

A request head (request line and headers) larger than `server.max_header_bytes` is answered
431 without being read whole; a head or body that does not arrive within
`server.header_timeout_seconds` / `server.body_timeout_seconds` is answered 408 and its
connection closed; a connection past `server.max_connections` is answered 503 and closed. The
time an action takes (a long poll) is not the client's, and is never cut short.

Two servers of their own: one without access keys and with small limits and short deadlines,
one with long deadlines and room for only a few connections.
"""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.api_server import TOKEN_FLOW, ApiServer, config_text, serving

MAX_HEADER_BYTES = 4096
HEADER_TIMEOUT = 1
BODY_TIMEOUT = 1
MAX_CONNECTIONS = 4
CLOSED_WITHIN = 15.0  # bounded waits: far beyond the deadlines, never a timed assertion

FLOW = TOKEN_FLOW


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A key-less server with a small head limit and one-second deadlines."""
    limits = {
        "max_header_bytes": MAX_HEADER_BYTES,
        "header_timeout_seconds": HEADER_TIMEOUT,
        "body_timeout_seconds": BODY_TIMEOUT,
    }
    with serving(tmp_path_factory.mktemp("strict"), config_text(server=limits)) as server:
        yield server


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A key-less server with room for a few connections and the default deadlines."""
    text = config_text(server={"max_connections": MAX_CONNECTIONS}, plugin=False)
    with serving(tmp_path_factory.mktemp("crowded"), text) as server:
        yield server


class Conn:
    """A raw connection to a server, read through a buffer (answers may arrive together)."""

    def __init__(self, server: ApiServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLOSED_WITHIN)
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_one(self) -> tuple[int, dict[str, Any]]:
        """One answer framed by Content-Length, on a connection that stays open."""
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), f"not an answer: {status_line!r}"
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = self.reader.read(length)
        assert len(body) == length, "the server closed the connection within an answer"
        return int(status_line.split()[1]), json.loads(body)

    def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection (bounded)."""
        data = b""
        try:
            while chunk := self.reader.read1(65536):
                data += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(
                f"the server kept the connection open; got {data[:200]!r}"
            ) from None
        return data


def head(method: str, path: str, server: ApiServer, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {server.endpoint}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(data: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of one answer that ends the connection."""
    top, _, body = data.partition(b"\r\n\r\n")
    assert top.startswith(b"HTTP/1.1 "), data[:200]
    assert b"connection: close" in top.lower(), top
    return int(top.split()[1]), json.loads(body)


def health(server: ApiServer) -> None:
    assert server.http.get("/health").status_code == 200


# -- the head -------------------------------------------------------------------------------


def test_malformed_requests_are_answered_400_without_a_log_line_each(strict):
    for _ in range(20):
        with Conn(strict) as conn:
            conn.send(b"NOT HTTP AT ALL\r\n\r\n")
            assert conn.read_until_closed().startswith(b"HTTP/1.1 400")
    health(strict)
    assert "Invalid HTTP request" not in strict.log()


def test_a_head_within_the_limit_is_served(strict):
    with Conn(strict) as conn:
        padding = "X-Padding: " + "p" * (MAX_HEADER_BYTES - 200)
        conn.send(head("GET", "/health", strict, padding))
        assert conn.read_one() == (200, {"Status": "ok"})


def test_a_head_over_the_limit_is_answered_431(strict):
    with Conn(strict) as conn:
        conn.send(head("GET", "/health", strict, "X-Big: " + "b" * 2 * MAX_HEADER_BYTES))
        status, doc = answer(conn.read_until_closed())
    assert (status, doc["Code"]) == (431, "RequestHeaderFieldsTooLarge")
    assert f"{MAX_HEADER_BYTES} bytes" in doc["Message"]
    assert "server.max_header_bytes" in doc["Message"]
    uuid.UUID(doc["RequestId"])
    health(strict)


def test_only_heads_count_not_bodies_nor_other_requests(strict):
    """Bodies and pipelined requests arriving with a head do not count towards its limit."""
    body = urlencode({"Action": "ListFlows", "Padding": "p" * 3 * MAX_HEADER_BYTES}).encode()
    many = head("GET", "/health", strict) * (3 * MAX_HEADER_BYTES // 60)
    with Conn(strict) as conn:
        conn.send(form_head(strict, len(body)) + body + many)
        status, doc = conn.read_one()
        assert (status, doc["NextToken"]) == (200, ""), doc
        for _ in range(3 * MAX_HEADER_BYTES // 60):
            assert conn.read_one() == (200, {"Status": "ok"})


def test_a_long_url_counts_as_head(strict):
    params = urlencode({"Action": "ListFlows", "Padding": "u" * 2 * MAX_HEADER_BYTES})
    with Conn(strict) as conn:
        conn.send(head("GET", f"/?{params}", strict))
        status, doc = answer(conn.read_until_closed())
    assert (status, doc["Code"]) == (431, "RequestHeaderFieldsTooLarge")


def test_an_endless_head_is_cut_off(strict):
    """A header that never ends: answered 431 as soon as it passes the limit, then closed.

    (The server drops what still comes for a moment, so that the client can read the answer,
    and then closes; nothing of it is parsed or kept.)
    """
    chunk = b"x" * (1 << 20)
    deadline = time.monotonic() + CLOSED_WITHIN
    received = b""
    with Conn(strict) as conn:
        conn.send(b"GET /health HTTP/1.1\r\nX-Endless: ")
        try:
            while time.monotonic() < deadline:
                conn.send(chunk)
                if select.select([conn.sock], [], [], 0)[0]:
                    received += conn.sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            raise AssertionError("the server kept reading an endless request head")
    assert received.startswith(b"HTTP/1.1 431 "), received[:100]
    health(strict)


def test_a_head_sent_a_byte_at_a_time_is_cut_off(strict):
    """Slowloris: each byte comes in time for the keep-alive timer, but the head never ends."""
    with Conn(strict) as conn:
        conn.send(b"GET /health HTTP/1.1\r\nHost: " + strict.endpoint.encode() + b"\r\n")
        deadline = time.monotonic() + CLOSED_WITHIN
        while not select.select([conn.sock], [], [], 0.2)[0]:
            assert time.monotonic() < deadline, "the server waits for the head forever"
            try:
                conn.sock.send(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        status, doc = answer(conn.read_until_closed())
    assert (status, doc["Code"]) == (408, "RequestTimeout")
    assert f"{HEADER_TIMEOUT} seconds" in doc["Message"]
    assert "server.header_timeout_seconds" in doc["Message"]
    health(strict)


def test_a_silent_connection_is_closed(strict):
    with Conn(strict) as conn:
        assert conn.read_until_closed() == b""


def test_a_keep_alive_connection_outlives_the_head_deadline(strict):
    """The deadline is per request head, not per connection."""
    with Conn(strict) as conn:
        began = time.monotonic()
        while time.monotonic() - began < 3 * HEADER_TIMEOUT:
            conn.send(head("GET", "/health", strict))
            assert conn.read_one() == (200, {"Status": "ok"})
            time.sleep(HEADER_TIMEOUT / 3)


# -- the body -------------------------------------------------------------------------------


def form_head(server: ApiServer, length: int) -> bytes:
    return head(
        "POST",
        "/",
        server,
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {length}",
    )


def flow_exists(server: ApiServer, name: str) -> bool:
    return server.post({"Action": "DescribeFlow", "Name": name}).status_code == 200


def test_a_body_that_stops_coming_is_cut_off_and_not_run(strict):
    name = f"slow-{uuid.uuid4().hex[:8]}"
    part = urlencode({"Action": "CreateFlow", "Name": name, "Definition": FLOW}).encode()
    with Conn(strict) as conn:
        conn.send(form_head(strict, len(part) + 100) + part)
        status, doc = answer(conn.read_until_closed())
    assert (status, doc["Code"]) == (408, "RequestTimeout")
    assert f"{BODY_TIMEOUT} seconds" in doc["Message"]
    assert "server.body_timeout_seconds" in doc["Message"]
    assert not flow_exists(strict, name)


def test_a_body_cut_by_the_client_is_not_run(strict):
    """A client that goes away within the body: what arrived is not taken for a request."""
    name = f"cut-{uuid.uuid4().hex[:8]}"
    part = urlencode({"Action": "CreateFlow", "Name": name, "Definition": FLOW}).encode()
    with Conn(strict) as conn:
        conn.send(form_head(strict, len(part) + 100) + part)
    deadline = time.monotonic() + 1.0  # had it been run, the flow would exist by then
    while time.monotonic() < deadline:
        assert not flow_exists(strict, name)
        time.sleep(0.05)


def test_a_long_poll_is_not_cut_by_the_deadlines(strict):
    """The time an action takes is the server's: WaitTimeSeconds beyond both deadlines."""
    flow = f"poll-{uuid.uuid4().hex[:8]}"
    assert strict.ok({"Action": "CreateFlow", "Name": flow, "Definition": FLOW, "Type": "FDL"})
    strict.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "e"})
    wait = HEADER_TIMEOUT + BODY_TIMEOUT + 1
    body = urlencode(
        {
            "Action": "DescribeExecution",
            "FlowName": flow,
            "ExecutionName": "e",
            "WaitTimeSeconds": str(wait),
        }
    ).encode()
    with Conn(strict) as conn:
        conn.send(form_head(strict, len(body)) + body)
        status, doc = conn.read_one()
    assert (status, doc["Status"]) == (200, "Running"), doc


# -- connections ----------------------------------------------------------------------------


def test_connections_past_the_cap_are_refused_until_one_closes(crowded):
    held = [Conn(crowded) for _ in range(MAX_CONNECTIONS)]
    try:
        for conn in held:  # each is served: the server has taken all of them
            conn.send(head("GET", "/health", crowded))
            assert conn.read_one() == (200, {"Status": "ok"})
        with Conn(crowded) as extra:
            status, doc = answer(extra.read_until_closed())
        assert (status, doc["Code"]) == (503, "ServiceUnavailable")
        assert f"{MAX_CONNECTIONS} open connections" in doc["Message"]
        assert "server.max_connections" in doc["Message"]
        held.pop().close()
        deadline = time.monotonic() + CLOSED_WITHIN
        while True:  # the server sees the close soon, and takes a new connection again
            with Conn(crowded) as again:
                try:
                    again.send(head("GET", "/health", crowded))
                    status = again.read_one()[0]
                except (AssertionError, BrokenPipeError, ConnectionResetError):
                    status = 0  # refused: the server has not seen the close yet
            if status == 200:
                break
            assert time.monotonic() < deadline, "a closed connection still counts"
            time.sleep(0.05)
    finally:
        for conn in held:
            conn.close()
