"""One real `relayflow server` per test session, and ways to call it.

tests/conftest.py loads this module as a pytest plugin (its ``pytest_plugins``),
so that the session-scoped `api_server` fixture is one server shared by every API test module.

The server runs as a subprocess in a temporary folder, which is its working directory:

- `relayflow.toml`: a SQLite store, ``port = 0`` (the real port is read from the log line
  ``relayflow serving the API on http://HOST:PORT``), three access keys (admin, worker,
  reader), a small ``max_body_bytes`` and ``timestamp_window_seconds``;
- `queue_plugin.py`: an integration claiming `acs:mns:::/queues/jobs/messages` that appends
  each task attempt (its token, input and serviceParams) as a JSON line to `messages.jsonl` and
  answers `Submitted({"MessageId": ...})` — a stand-in for an MNS queue that tests read as a
  worker would.

At the end of the session the server gets SIGTERM and must exit 0.

Test modules import helpers from here before pytest registers it as a plugin, so its asserts
are not rewritten (PYTEST_DONT_REWRITE); they carry their own messages instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest

from relayflow.api.signature import signed_params

EXE = str(Path(sys.executable).with_name("relayflow"))
QUEUE_ARN = "acs:mns:::/queues/jobs/messages"
# One callback task on the test queue, its token in the message: what most API tests run.
TOKEN_FLOW = f"""version: v1
type: flow
steps:
  - type: task
    name: job
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    inputMappings:
      - target: taskToken
        source: $context.task.token
"""
MAX_BODY_BYTES = 65536
WINDOW_SECONDS = 300
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
KEYS: dict[str, tuple[str, str]] = {
    "admin": ("test-admin", "admin-secret-0123456789"),
    "worker": ("test-worker", "worker-secret-0123456789"),
    "reader": ("test-reader", "reader-secret-0123456789"),
}
_SERVING = re.compile(
    r"relayflow serving the API on (?P<scheme>https?)://(?P<host>[^\s:]+):(?P<port>\d+)"
)

QUEUE_PLUGIN = textwrap.dedent(
    '''\
    """A stand-in for an MNS queue: each task attempt becomes a JSON line in messages.jsonl."""

    import itertools
    import json
    from pathlib import Path

    from relayflow.engine import FunctionIntegration, Submitted
    from relayflow.plugins import hookimpl

    QUEUE = "acs:mns:::/queues/jobs/messages"
    MESSAGES = Path(__file__).with_name("messages.jsonl")
    _ids = itertools.count(1)


    async def send(request):
        message_id = f"m-{next(_ids)}"
        line = json.dumps(
            {
                "MessageId": message_id,
                "flow": request.flow_name,
                "execution": request.execution_name,
                "step": request.step_name,
                "attempt": request.attempt,
                "token": request.token,
                "input": request.input,
                "serviceParams": request.service_params,
            }
        )
        with MESSAGES.open("a", encoding="utf-8") as out:
            out.write(line + "\\n")
        return Submitted({"MessageId": message_id})


    def make(settings):
        return FunctionIntegration({QUEUE: send}, name="queue")


    @hookimpl
    def relayflow_register_integrations(register):
        register("queue", make)
    '''
)


def config_text(
    *,
    host: str = "127.0.0.1",
    keys: Mapping[str, tuple[str, str]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    window_seconds: int = WINDOW_SECONDS,
    plugin: bool = True,
    server: Mapping[str, int | float] | None = None,
) -> str:
    """A relayflow.toml for a test server (keys: role -> (id, secret); server: more keys)."""
    text = (
        '[engine]\nstore = "sqlite:///relayflow.db"\n\n'
        f'[server]\nhost = "{host}"\nport = 0\nmax_body_bytes = {max_body_bytes}\n'
        f"timestamp_window_seconds = {window_seconds}\n"
    )
    text += "".join(f"{name} = {value}\n" for name, value in (server or {}).items())
    for role, (key_id, secret) in (keys or {}).items():
        text += f'\n[[server.access_keys]]\nid = "{key_id}"\nsecret = "{secret}"\nrole = "{role}"\n'
    if plugin:
        # The test's own queue stands in for the mns plugin's, which would claim the same ARN.
        text += '\n[plugins]\nmodules = ["queue_plugin"]\ndisable = ["mns"]\n'
    return text


def server_env() -> dict[str, str]:
    """The environment for a server subprocess: ours without RELAYFLOW_ overrides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}


def start_server(
    folder: Path, timeout: float = START_TIMEOUT
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `relayflow server` in ``folder``; return the process and the port it serves on.

    Its stderr goes to ``folder/server.log``; the port comes from the "serving" log line.
    """
    process, _, port = start_server_scheme(folder, timeout)
    return process, port


def start_server_scheme(
    folder: Path, timeout: float = START_TIMEOUT
) -> tuple[subprocess.Popen[bytes], str, int]:
    """As `start_server`, with the scheme it serves (`http`, or `https` with TLS configured)."""
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [EXE, "server", "--config", "relayflow.toml"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(),
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (folder / "server.log").read_text(encoding="utf-8", errors="replace")
        found = _SERVING.search(text)
        if found:
            return process, found["scheme"], int(found["port"])
        if process.poll() is not None:
            raise RuntimeError(f"relayflow server exited with {process.returncode}:\n{text}")
        time.sleep(0.02)
    process.kill()
    process.wait()
    text = (folder / "server.log").read_text(encoding="utf-8", errors="replace")
    raise RuntimeError(f"relayflow server did not report its port within {timeout} s:\n{text}")


def stop_server(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the server and return its exit code (killed, and -9, if it does not stop)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def utc_stamp(moment: float) -> str:
    """A Unix time as the API's RFC 3339 UTC text."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ApiServer:
    """A running test server and clients for it."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    http: httpx.Client = field(init=False)
    _clients: dict[str, AcsClient] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=10)

    @property
    def endpoint(self) -> str:
        """`host:port`, what `RpcRequest.set_endpoint` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API's base URL."""
        return f"http://{self.endpoint}"

    # -- the official SDK ---------------------------------------------------------------------

    def client(self, role: str = "admin") -> AcsClient:
        """An SDK client signing with the key of ``role`` (no automatic retries)."""
        if role not in self._clients:
            key_id, secret = KEYS[role]
            self._clients[role] = AcsClient(
                key_id, secret, "cn-hangzhou", auto_retry=False, timeout=30
            )
        return self._clients[role]

    def call(self, request: RpcRequest, role: str = "admin") -> dict[str, Any]:
        """Send one SDK request to this server; the answer as a dict."""
        request.set_endpoint(self.endpoint)
        request.set_protocol_type("http")
        answer: dict[str, Any] = json.loads(self.client(role).do_action_with_exception(request))
        return answer

    def refused(self, request: RpcRequest, role: str = "admin") -> ServerException:
        """Send one SDK request that must be refused; the SDK's exception."""
        with pytest.raises(ServerException) as caught:
            self.call(request, role)
        return caught.value

    # -- raw HTTP -----------------------------------------------------------------------------

    def signed(
        self, params: Mapping[str, str], role: str = "admin", method: str = "POST", **kwargs: Any
    ) -> dict[str, str]:
        """``params`` with Action's Version and the signature of ``role``'s key."""
        key_id, secret = KEYS[role]
        return signed_params(key_id, secret, method, {"Version": "2019-03-15", **params}, **kwargs)

    def post(self, params: Mapping[str, str]) -> httpx.Response:
        """POST already signed (or deliberately unsigned) parameters as a form."""
        return self.http.post("/", data=dict(params))

    def rpc(self, params: Mapping[str, str], role: str = "admin") -> httpx.Response:
        """Sign ``params`` with ``role``'s key and POST them."""
        return self.post(self.signed(params, role))

    def ok(self, params: Mapping[str, str], role: str = "admin") -> dict[str, Any]:
        """A signed call that must succeed; its answer without the RequestId."""
        answer = self.rpc(params, role)
        assert answer.status_code == 200, answer.text
        doc: dict[str, Any] = answer.json()
        doc.pop("RequestId")
        return doc

    def describe(self, flow: str, execution: str) -> dict[str, Any]:
        """DescribeExecution as the admin; `{"Code": ...}` when it does not exist."""
        answer = self.rpc(
            {"Action": "DescribeExecution", "FlowName": flow, "ExecutionName": execution}
        )
        doc: dict[str, Any] = answer.json()
        doc.pop("RequestId")
        return doc

    def history(self, flow: str, execution: str) -> list[dict[str, Any]]:
        """The whole history of an execution (one page of up to 999 events)."""
        doc = self.ok(
            {
                "Action": "GetExecutionHistory",
                "FlowName": flow,
                "ExecutionName": execution,
                "Limit": "999",
            }
        )
        assert doc["NextToken"] == ""
        events: list[dict[str, Any]] = doc["Events"]
        return events

    # -- the queue ----------------------------------------------------------------------------

    def messages(self, flow: str | None = None, execution: str | None = None) -> list[dict]:
        """The messages the queue plugin has written, optionally of one execution."""
        path = self.folder / "messages.jsonl"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # being written
            message = json.loads(line)
            if flow is not None and message["flow"] != flow:
                continue
            if execution is not None and message["execution"] != execution:
                continue
            found.append(message)
        return found

    def wait_messages(
        self, flow: str, execution: str, count: int = 1, timeout: float = 5.0
    ) -> list[dict]:
        """Wait until an execution has sent ``count`` messages; return them, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(flow, execution)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{flow}/{execution} sent {len(found)} messages within {timeout} s, "
                    f"expected {count}"
                )
            time.sleep(0.005)

    def log(self) -> str:
        """What the server has logged so far."""
        return (self.folder / "server.log").read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(folder: Path, config: str) -> Iterator[ApiServer]:
    """A server of its own with the relayflow.toml ``config``; SIGTERM at the end must exit 0.

    For tests that need other limits than the shared `api_server`'s.
    """
    (folder / "relayflow.toml").write_text(config, encoding="utf-8")
    (folder / "queue_plugin.py").write_text(QUEUE_PLUGIN, encoding="utf-8")
    process, port = start_server(folder)
    server = ApiServer(folder, port, process)
    try:
        yield server
    finally:
        server.http.close()
        code = stop_server(process)
    assert code == 0, f"relayflow server exited with {code} on SIGTERM:\n{server.log()}"


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One `relayflow server` for the whole session; SIGTERM at the end must exit 0."""
    with serving(tmp_path_factory.mktemp("api-server"), config_text(keys=KEYS)) as server:
        yield server
