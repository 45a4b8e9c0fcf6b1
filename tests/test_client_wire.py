"""The synchronous client's own connections (relayflow.client._wire) against a real socket server.

The API tests in tests/client/ cover what is sent and how answers are read; these cover the
connection handling underneath: reuse, a server that closes idle connections, threads sharing
one client, an endpoint with a path.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import pytest

from relayflow.client import Client, ClientError
from relayflow.client._wire import WirePool
from relayflow.engine.tokens import mint_token


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        params = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.server.seen.append((self.path, params, self.client_address[1]))
        self.server.routes.append(self.headers.get("X-Relayflow-Route"))
        body = json.dumps({"RequestId": "r", "EventId": len(self.server.seen)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_after_answer:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.server.drop_idle:
            self.close_connection = True  # close without saying so, as an idle timeout does

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str], int]] = []
        self.routes: list[str | None] = []
        self.close_after_answer = False
        self.drop_idle = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def connections(srv: _Server) -> set[int]:
    return {conn for _, _, conn in srv.seen}


def test_calls_share_one_kept_alive_connection(server: _Server) -> None:
    with Client(server.url) as client:
        answers = [client.report_task_succeeded(f"t{n}", {"n": n}) for n in range(5)]
    assert answers == [1, 2, 3, 4, 5]
    assert len(connections(server)) == 1
    assert [params["TaskToken"] for _, params, _ in server.seen] == [f"t{n}" for n in range(5)]
    assert server.seen[0][1]["Action"] == "ReportTaskSucceeded"
    assert json.loads(server.seen[0][1]["Output"]) == {"n": 0}


@pytest.mark.parametrize("how", ["close_after_answer", "drop_idle"])
def test_a_connection_the_server_closed_is_not_reused(server: _Server, how: str) -> None:
    setattr(server, how, True)
    with Client(server.url) as client:
        for n in range(4):
            assert client.report_task_succeeded(f"t{n}", {}) == n + 1
            time.sleep(0.05)  # idle: the server's close arrives before the next call
    assert len(server.seen) == 4  # each request reached the server once
    assert len(connections(server)) == 4


def test_calls_on_one_execution_carry_its_route(server: _Server) -> None:
    token = mint_token(b"k" * 32, "orders", "order-7", "uid", 3)
    with Client(server.url) as client:
        client.report_task_succeeded(token, {})
        client.report_task_failed(token, "E", "")
        client.report_task_succeeded("not-a-token", {})
        client.start_execution("orders", name="order-8")
        client.start_execution("orders")
        client.stop_execution("orders", "order-8")
        client.report_task_succeeded(mint_token(b"k", "orders", "a\r\nX-Evil: 1", "u", 1), {})
    assert server.routes == [
        "orders/order-7",
        "orders/order-7",
        None,
        "orders/order-8",
        None,
        "orders/order-8",
        None,
    ]


def test_threads_share_a_client(server: _Server) -> None:
    with Client(server.url) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: client.report_task_succeeded(f"t{n}", {}), range(200)))
    assert sorted(answers) == list(range(1, 201))
    assert sorted(params["TaskToken"] for _, params, _ in server.seen) == sorted(
        f"t{n}" for n in range(200)
    )
    assert len(connections(server)) <= 8


def test_an_endpoint_with_a_path_posts_there(server: _Server) -> None:
    with Client(server.url + "/relayflow/") as client:
        client.report_task_failed("t", "E", "c")
    assert server.seen[0][0] == "/relayflow/"


def test_a_closed_pool_closes_connections_handed_back_later(server: _Server) -> None:
    pool = WirePool(server.url, {}, 5)
    assert pool.post_form({"Action": "X"}, 5)[0] == 200
    pool.close()
    assert pool.post_form({"Action": "X"}, 5)[0] == 200  # still answers, keeps nothing
    assert pool._idle == []


def test_an_answer_that_is_not_http_is_a_connection_failure() -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"this is not HTTP\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    with (
        Client(f"http://127.0.0.1:{port}", timeout=5) as client,
        pytest.raises(ClientError) as info,
    ):
        client.list_flows()
    thread.join(5)
    listener.close()
    assert info.value.code == "ConnectionFailed"
    assert f"127.0.0.1:{port}" in info.value.message


def _one_answer(answer: bytes) -> tuple[str, threading.Thread]:
    """A socket server that reads one request and sends ``answer`` as it is, then closes."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(answer)
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


@pytest.mark.parametrize(
    ("answer", "body", "kept"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;ext=1\r\n{"Req\r\n0d\r\nuestId": "r"}\r\n0\r\nTrailer: x\r\n\r\n',
            {"RequestId": "r"},
            1,  # HTTP/1.1 without Connection: close may be reused
        ),
        (b'HTTP/1.0 200 OK\r\n\r\n{"RequestId": "eof"}', {"RequestId": "eof"}, 0),
        (
            b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 18\r\n\r\n{"RequestId": "c"}',
            {"RequestId": "c"},
            0,
        ),
    ],
    ids=["chunked", "until-close", "content-length"],
)
def test_answers_are_read_whatever_their_framing(
    answer: bytes, body: dict[str, str], kept: int
) -> None:
    url, thread = _one_answer(answer)
    pool = WirePool(url, {}, 5)
    status, content = pool.post_form({"Action": "X"}, 5)
    thread.join(5)
    assert status == 200 and json.loads(content) == body
    assert len(pool._idle) == kept  # what the answer's headers allow


def test_a_connection_closed_within_the_body_is_a_connection_failure() -> None:
    url, thread = _one_answer(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"Req')
    with Client(url, timeout=5) as client, pytest.raises(ClientError) as info:
        client.list_flows()
    thread.join(5)
    assert info.value.code == "ConnectionFailed"
    assert "within the body" in info.value.message


def test_https_endpoints_use_the_wire_pool_with_tls() -> None:
    with Client("https://relayflow.example") as client:
        assert client._wire is not None and client._http is None
