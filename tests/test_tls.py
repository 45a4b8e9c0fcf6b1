"""HTTPS end to end: a real `relayflow server` with a certificate this module's CA signed.

One server for the module (admin and worker keys, the mns plugin on the embedded SQLite
transport). Checked: it serves HTTPS only; both clients, the remote CLI and `relayflow worker`
work with the CA (`ca_file`, `--ca-file`, `$RELAYFLOW_CLIENT__CA_FILE`) and fail without it
with `InvalidCertificate`, whose sentence names the certificate problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relayflow.client import AsyncClient, Client, ClientError
from relayflow.worker import WorkerError, check_credentials, report
from tests.api_server import EXE, server_env, stop_server
from tests.tls_certs import TlsFiles, make_certs, server_tls_lines, start_https_server

ADMIN = ("tls-admin", "tls-admin-secret-0123")
WORKER = ("tls-worker", "tls-worker-secret-0123")
TIMEOUT = 60.0
QUEUE_FLOW = """version: v1
type: flow
steps:
  - type: task
    name: job
    resourceArn: acs:mns:::/queues/tls-jobs/messages
    pattern: waitForCallback
    inputMappings:
      - target: n
        source: $input.n
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
"""
JOBS = "def handle(body):\n    return {'twice': body['n'] * 2}\n"


@dataclass
class HttpsServer:
    folder: Path
    port: int
    certs: TlsFiles
    transport: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def admin(self, **options: object) -> Client:
        return Client(self.url, *ADMIN, timeout=10, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    folder = tmp_path_factory.mktemp("https-server")
    certs = make_certs(folder)
    transport = f"relayflow-sqlite:///{folder}/queues.db"
    keys = "".join(
        f'\n[[server.access_keys]]\nid = "{key_id}"\nsecret = "{secret}"\nrole = "{role}"\n'
        for role, (key_id, secret) in (("admin", ADMIN), ("worker", WORKER))
    )
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = 0\nheader_timeout_seconds = 2\n'
        f"max_header_bytes = 4096\n{server_tls_lines(certs)}{keys}\n"
        f'[integrations.mns]\ntransport = "{transport}"\n',
        encoding="utf-8",
    )
    process, port = start_https_server(folder)
    try:
        yield HttpsServer(folder, port, certs, transport)
    finally:
        assert stop_server(process) == 0, (folder / "server.log").read_text()


def test_the_api_is_served_over_https_to_a_client_that_trusts_the_ca(https: HttpsServer) -> None:
    with https.admin(ca_file=https.certs.ca_file) as client:
        client.create_flow("tls-flow", QUEUE_FLOW)
        assert client.describe_flow("tls-flow").name == "tls-flow"
        for _ in range(3):  # one kept-alive TLS connection serves them all
            assert [f.name for f in client.list_flows().items] == ["tls-flow"]

    async def call() -> str:
        async with AsyncClient(https.url, *ADMIN, ca_file=str(https.certs.ca_file)) as client:
            return (await client.describe_flow("tls-flow")).name

    assert asyncio.run(call()) == "tls-flow"


def test_a_client_without_the_ca_is_refused_naming_the_certificate(https: HttpsServer) -> None:
    with https.admin() as client, pytest.raises(ClientError) as caught:
        client.list_flows()
    assert caught.value.code == "InvalidCertificate"
    assert "unable to get local issuer certificate" in caught.value.message
    assert "ca_file" in caught.value.message

    async def call() -> None:
        async with AsyncClient(https.url, *ADMIN) as client:
            await client.list_flows()

    with pytest.raises(ClientError) as caught:
        asyncio.run(call())
    assert caught.value.code == "InvalidCertificate"


def test_another_ca_is_not_trusted(https: HttpsServer, tmp_path: Path) -> None:
    other = make_certs(tmp_path)
    with https.admin(ca_file=other.ca_file) as client, pytest.raises(ClientError) as caught:
        client.list_flows()
    assert caught.value.code == "InvalidCertificate"


def test_plain_http_to_the_https_port_says_to_use_https(https: HttpsServer) -> None:
    plain = Client(f"http://127.0.0.1:{https.port}", *ADMIN, timeout=10)
    with plain, pytest.raises(ClientError) as caught:
        plain.list_flows()
    assert caught.value.code == "ConnectionFailed"
    assert "the endpoint must start with https://" in caught.value.message


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    # A TLS listener whose certificate names only relayflow.test, reached as 127.0.0.1.
    certs = make_certs(tmp_path, ("relayflow.test",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(ssl.SSLError):  # the client ends the handshake
            context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        client = Client(f"https://127.0.0.1:{port}", timeout=10, ca_file=certs.ca_file)
        with client, pytest.raises(ClientError) as caught:
            client.list_flows()
    finally:
        thread.join(10)
        listener.close()
    assert caught.value.code == "InvalidCertificate"
    assert "mismatch" in caught.value.message and "127.0.0.1" in caught.value.message


def run_cli(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**server_env(), **(env or {})},
    )


def test_remote_commands_take_the_ca_from_the_option_the_table_or_the_environment(
    https: HttpsServer, tmp_path: Path
) -> None:
    client_table = (
        f'[client]\nendpoint = "{https.url}"\naccess_key_id = "{ADMIN[0]}"\n'
        f'access_key_secret = "{ADMIN[1]}"\n'
    )
    plain = tmp_path / "plain.toml"
    plain.write_text(client_table, encoding="utf-8")
    with_ca = tmp_path / "with-ca.toml"
    with_ca.write_text(client_table + f'ca_file = "{https.certs.ca_file}"\n', encoding="utf-8")

    refused = run_cli(tmp_path, "flows", "list", "--config", str(plain))
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("relayflow: InvalidCertificate: the server at https://")

    for done in (
        run_cli(tmp_path, "flows", "list", "--config", str(with_ca)),
        run_cli(
            tmp_path, "flows", "list", "--config", str(plain), "--ca-file", str(https.certs.ca_file)
        ),
        run_cli(
            tmp_path,
            "flows",
            "list",
            "--config",
            str(plain),
            env={"RELAYFLOW_CLIENT__CA_FILE": str(https.certs.ca_file)},
        ),
    ):
        assert done.returncode == 0, done.stderr

    missing = run_cli(tmp_path, "flows", "list", "--config", str(plain), "--ca-file", "nope.pem")
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.strip() == (
        "relayflow: InvalidConfig: ca_file 'nope.pem' does not exist; give the PEM file of the "
        "server's CA"
    )


def test_a_client_reports_tasks_over_https(https: HttpsServer) -> None:
    """The generic worker half (`relayflow.worker`) with a `Client` over HTTPS as its reporter."""
    with https.admin(ca_file=https.certs.ca_file) as admin:
        admin.create_flow("tls-report", QUEUE_FLOW.replace("tls-jobs", "tls-report"))
        admin.start_execution("tls-report", {"n": 1}, name="run")
        with Client(https.url, *WORKER, timeout=10, ca_file=https.certs.ca_file) as worker:
            assert check_credentials(worker) == ""
            token = _wait_for_token(https, "tls-report")
            outcome = report(worker, token, {"done": True}, None)
        assert outcome.ack and outcome.stop is None, outcome
        done = admin.wait_for_execution("tls-report", "run", timeout=TIMEOUT)
    assert done.status == "Succeeded" and done.output == {"done": True}

    with Client(https.url, *WORKER, timeout=10) as untrusting, pytest.raises(WorkerError) as caught:
        check_credentials(untrusting)
    assert caught.value.code == "InvalidCertificate"


def _wait_for_token(https: HttpsServer, queue: str) -> str:
    from kombu import Connection

    import relayflow_mns.sqlite_transport  # noqa: F401  (registers relayflow-sqlite://)

    with Connection(https.transport) as connection:
        messages = connection.SimpleQueue(queue)
        try:
            message = messages.get(timeout=TIMEOUT)
            message.ack()
        finally:
            messages.close()
    body = message.decode() if not isinstance(message.payload, dict) else message.payload
    token = body["taskToken"] if isinstance(body, dict) else None
    assert isinstance(token, str), body
    return token


def test_relayflow_worker_reports_over_https(https: HttpsServer, tmp_path: Path) -> None:
    (tmp_path / "tls_jobs.py").write_text(JOBS, encoding="utf-8")
    config = tmp_path / "worker.toml"
    config.write_text(
        f'[integrations.mns]\ntransport = "{https.transport}"\n'
        "transport_options = { visibility_timeout = 5 }\n\n"
        f'[client]\nendpoint = "{https.url}"\naccess_key_id = "{WORKER[0]}"\n'
        f'access_key_secret = "{WORKER[1]}"\ntimeout_seconds = 5\n',
        encoding="utf-8",
    )
    command = ["worker", "tls-jobs", "--handler", "tls_jobs:handle", "--config", str(config)]
    refused = run_cli(tmp_path, *command)
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line and not line[:4].isdigit()]
    assert len(lines) == 1 and lines[0].startswith("relayflow: InvalidCertificate: "), lines

    with https.admin(ca_file=https.certs.ca_file) as admin:
        admin.start_execution("tls-flow", {"n": 21}, name="by-worker")
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            [EXE, *command, "--ca-file", str(https.certs.ca_file)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=server_env(),
        )
        log.close()
        try:
            done = admin.wait_for_execution("tls-flow", "by-worker", timeout=TIMEOUT)
        finally:
            worker.terminate()
            assert worker.wait(TIMEOUT) == 0, (tmp_path / "worker.log").read_text()
    assert done.status == "Succeeded", (done.status, done.error, done.cause)
    assert done.output == {"twice": 42}
    assert f"reporting to {https.url}" in (tmp_path / "worker.log").read_text()


def test_no_setting_turns_verification_off() -> None:
    # The client takes no verify=False: an insecure switch would have to be explicit, and
    # there is none.
    with pytest.raises(TypeError):
        Client("https://127.0.0.1:1", verify=False)  # type: ignore[call-arg]
    assert "RELAYFLOW_CLIENT__VERIFY" not in os.environ


SDK_WORKER = Path(__file__).resolve().parents[1] / "contrib" / "examples" / "sdk_worker.py"


def test_the_sdk_worker_example_reports_over_https_with_its_ca_file(
    https: HttpsServer, tmp_path: Path
) -> None:
    """contrib/examples/sdk_worker.py: the official SDK (old) reporting over HTTPS."""
    flow = QUEUE_FLOW.replace("tls-jobs", "tls-sdk").replace(
        "      - target: n\n        source: $input.n\n",
        "      - target: job\n        source: extract\n",
    )
    env = {
        **server_env(),
        "RELAYFLOW_ACCESS_KEY_ID": WORKER[0],
        "RELAYFLOW_ACCESS_KEY_SECRET": WORKER[1],
    }
    command = [
        sys.executable,
        str(SDK_WORKER),
        "--transport",
        https.transport,
        "--queue",
        "tls-sdk",
        "--endpoint",
        https.url,
        "--count",
        "1",
    ]
    with https.admin(ca_file=https.certs.ca_file) as admin:
        admin.create_flow("tls-sdk", flow)
        admin.start_execution("tls-sdk", {}, name="run")
        done = subprocess.run(
            [*command, "--ca-file", str(https.certs.ca_file)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        info = admin.wait_for_execution("tls-sdk", "run", timeout=TIMEOUT)
    assert info.status == "Succeeded", (info.status, info.error, info.cause)
    assert info.output == {"rows": [{"id": 1}, {"id": 2}, {"id": 3}]}


def test_a_connection_that_never_starts_its_handshake_is_closed(https: HttpsServer) -> None:
    """Before its TLS handshake a connection has no request deadline: the handshake has its own
    (header_timeout_seconds, 2 s here), not the event loop's 60 s."""
    with socket.create_connection(("127.0.0.1", https.port), timeout=30) as silent:
        assert silent.recv(1) == b""  # closed by the server well before the 30 s bound


def test_a_refusal_over_tls_is_answered_before_the_connection_closes(https: HttpsServer) -> None:
    """431 for a head past max_header_bytes: TLS has no half-close, the answer still arrives."""
    context = ssl.create_default_context(cafile=str(https.certs.ca_file))
    with (
        socket.create_connection(("127.0.0.1", https.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        answer = b""
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            while chunk := tls.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"RequestHeaderFieldsTooLarge" in answer


def test_https_to_a_plain_http_server_says_so(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_in_plain_http() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # a TLS ClientHello, which no HTTP server understands
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_http, daemon=True)
    thread.start()
    try:
        client = Client(f"https://127.0.0.1:{port}", timeout=10)
        with client, pytest.raises(ClientError) as caught:
            client.list_flows()
    finally:
        thread.join(10)
        listener.close()
    assert caught.value.code == "ConnectionFailed"
    assert "it seems to speak plain HTTP: use an http:// endpoint" in caught.value.message


def test_a_tls_connection_the_server_closed_is_not_reused(tmp_path: Path) -> None:
    """The wire pool sees a kept TLS connection closed by the server (close_notify, FIN) and
    opens another rather than sending a request nobody reads."""
    certs = make_certs(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    body = b'{"RequestId": "r", "Flows": [], "NextToken": ""}'
    answered: list[int] = []

    def serve_two_connections() -> None:
        for number in range(2):
            conn, _ = listener.accept()
            with conn, context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                answered.append(number)
                # close_notify, then the socket closes (keep-alive refused); the client may
                # reset it rather than answer with its own close_notify.
                with contextlib.suppress(OSError):
                    tls.unwrap()

    thread = threading.Thread(target=serve_two_connections, daemon=True)
    thread.start()
    try:
        with Client(f"https://127.0.0.1:{port}", timeout=10, ca_file=certs.ca_file) as client:
            client.list_flows()
            deadline = time.monotonic() + 10
            while client._wire is not None and not client._wire._idle[0].went_away():
                assert time.monotonic() < deadline, "the closed connection still looks open"
                time.sleep(0.01)
            assert client.list_flows().items == []
    finally:
        thread.join(10)
        listener.close()
    assert answered == [0, 1]


def test_a_stop_does_not_wait_for_idle_tls_connections(tmp_path: Path) -> None:
    """SIGTERM with a client's idle keep-alive TLS connection open: the server closes it at
    once rather than waiting, past its grace, for a close_notify the client never sends."""
    certs = make_certs(tmp_path)
    (tmp_path / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path}/store.db"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{server_tls_lines(certs)}',
        encoding="utf-8",
    )
    process, port = start_https_server(tmp_path)
    try:
        client = Client(f"https://127.0.0.1:{port}", timeout=10, ca_file=certs.ca_file)
        with client:
            client.list_flows()  # its connection stays open, idle
            assert stop_server(process) == 0
    finally:
        stop_server(process)
    log = (tmp_path / "server.log").read_text()
    assert "graceful shutdown exceeded" not in log, log
