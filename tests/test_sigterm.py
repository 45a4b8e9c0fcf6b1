"""A real `relayflow server` told to stop (SIGTERM) with a 20-second long poll pending.

The poll must be answered at once with the execution as it stands, and the process must exit
cleanly well before the poll's 20 seconds are up (the bound asserted is 15 s: a bound far from
the work, not a timing). Before this, the server waited the poll out.

Both stores: SQLite, and PostgreSQL (a fresh database per test), where the server also
listens for notifications and hands its leases back when it stops.

The long poll goes over a raw socket, and the signal is sent only once the server has read the
whole request from its socket (its receive queue in /proc/net/tcp is empty): from then on the
outcome does not depend on how fast either side is.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.api_server import QUEUE_PLUGIN, TOKEN_FLOW, config_text, start_server
from tests.services import fresh_database

EXIT_BOUND = 15.0  # seconds: the poll waits 20; an exit within this did not wait it out
SETTLE_BOUND = 10.0  # seconds for the server to read a request it was sent


def _tcp_rx_queue(local_port: int, remote_port: int) -> int | None:
    """Bytes the socket 127.0.0.1:local_port <-> :remote_port has received and not read."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == (
            remote_port
        ):
            return int(queues.split(":")[1], 16)
    return None


def _wait_read(server_port: int, client: socket.socket) -> None:
    """Wait until the server has read everything ``client`` sent it."""
    client_port = client.getsockname()[1]
    deadline = time.monotonic() + SETTLE_BOUND
    while _tcp_rx_queue(server_port, client_port) != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not read the request within {SETTLE_BOUND} s")
        time.sleep(0.01)


def _read_answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of one HTTP/1.1 answer (the server sends Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), json.loads(body)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The server's store: a SQLite file in its folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite:///relayflow.db"
        return
    server: str = request.getfixturevalue("postgres_url")
    with fresh_database(server, "rf_sigterm_" + uuid.uuid4().hex[:12]) as url:
        yield url


@pytest.fixture()
def server_keys() -> dict[str, float]:
    """More `[server]` keys for the test's server (a test parametrizes it to change them)."""
    return {}


@pytest.fixture()
def server(tmp_path: Path, store_url: str, server_keys: dict[str, float]):
    config = config_text(server=server_keys).replace("sqlite:///relayflow.db", store_url)
    (tmp_path / "relayflow.toml").write_text(config, encoding="utf-8")
    (tmp_path / "queue_plugin.py").write_text(QUEUE_PLUGIN, encoding="utf-8")
    process, port = start_server(tmp_path)
    try:
        yield tmp_path, process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_answers_a_pending_long_poll_and_exits_promptly(server):
    folder, process, port = server
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as http:
        for params in (
            {"Action": "CreateFlow", "Name": "f", "Definition": TOKEN_FLOW, "Type": "FDL"},
            {"Action": "StartExecution", "FlowName": "f", "ExecutionName": "e"},
        ):
            answer = http.post("/", data=params)
            assert answer.status_code == 200, answer.text
        assert http.get("/ready").status_code == 200
    body = urlencode(
        {
            "Action": "DescribeExecution",
            "FlowName": "f",
            "ExecutionName": "e",
            "WaitTimeSeconds": "20",
        }
    ).encode()
    request = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=EXIT_BOUND + 10) as poll:
        poll.sendall(request)
        _wait_read(port, poll)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status, doc = _read_answer(poll)
    assert (status, doc["Status"]) == (200, "Running"), doc
    try:
        code = process.wait(timeout=EXIT_BOUND)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server still ran {EXIT_BOUND} s after SIGTERM") from None
    assert time.monotonic() - signalled < EXIT_BOUND
    log = (folder / "server.log").read_text(encoding="utf-8", errors="replace")
    assert code == 0, log
    assert "stopping" in log and "stopped" in log, log
    assert "Traceback" not in log and " ERROR " not in log, log


def test_ready_is_never_200_once_the_server_is_stopping(server):
    folder, process, port = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert http.get("/ready").status_code == 200
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_BOUND
        # From the log line on, the signal was handled: /ready fails, or nothing listens.
        while "stopping" not in (folder / "server.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the server did not log that it is stopping"
            time.sleep(0.01)
        try:
            answer = http.get("/ready")
        except httpx.TransportError:
            pass  # it no longer listens: a load balancer counts that as not ready too
        else:
            assert answer.status_code == 503, answer.text
            assert answer.json()["Status"] == "stopping"
    assert process.wait(timeout=EXIT_BOUND) == 0


@pytest.mark.parametrize("server_keys", [{"drain_seconds": 600}])
def test_a_draining_server_serves_with_ready_failing_until_a_second_signal(server):
    folder, process, port = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        created = http.post(
            "/", data={"Action": "CreateFlow", "Name": "f", "Definition": TOKEN_FLOW}
        )
        assert created.status_code == 200, created.text
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_BOUND
        while "drain_seconds" not in (folder / "server.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the server did not log that it drains"
            time.sleep(0.01)
        # Draining: /ready fails, the API still answers, long polls do not wait.
        ready = http.get("/ready")
        assert (ready.status_code, ready.json()["Status"]) == (503, "stopping")
        started = http.post(
            "/", data={"Action": "StartExecution", "FlowName": "f", "ExecutionName": "late"}
        )
        assert started.status_code == 200, started.text
        polled = http.post(
            "/",
            data={
                "Action": "DescribeExecution",
                "FlowName": "f",
                "ExecutionName": "late",
                "WaitTimeSeconds": "20",
            },
        )
        assert (polled.status_code, polled.json()["Status"]) == (200, "Running")
    process.send_signal(signal.SIGTERM)  # the second signal ends the 600 s drain
    assert process.wait(timeout=EXIT_BOUND) == 0
