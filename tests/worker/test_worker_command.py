"""`relayflow worker` against a real `relayflow server` and broker: credentials, several queues,
and one-line answers to a user's mistakes.

Each test runs the server as a subprocess in a temporary folder (an admin and a worker key, the
embedded SQLite transport unless said otherwise) and the worker as `relayflow worker`, as a user
would. Every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kombu import Connection, Producer, Queue

import relayflow_mns.sqlite_transport  # noqa: F401  (registers relayflow-sqlite://)
from relayflow.client import Client
from tests.api_server import server_env, start_server, stop_server

EXE = str(Path(sys.executable).with_name("relayflow"))
ADMIN = ("cmd-admin", "cmd-admin-secret-0123")
WORKER = ("cmd-worker", "cmd-worker-secret-0123")
TIMEOUT = 60.0

JOBS = "def handle(body):\n    return {'done': body['job']}\n"
TWO_QUEUES = """version: v1
type: flow
steps:
  - type: task
    name: pick
    resourceArn: acs:mns:::/queues/warehouse/messages
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: pick
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
  - type: task
    name: tell
    resourceArn: acs:mns:::/queues/notify/messages
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: tell
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_server_config(folder: Path, transport: str, port: int = 0) -> None:
    keys = "".join(
        f'\n[[server.access_keys]]\nid = "{key_id}"\nsecret = "{secret}"\nrole = "{role}"\n'
        for role, (key_id, secret) in (("admin", ADMIN), ("worker", WORKER))
    )
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n{keys}\n'
        f'[integrations.mns]\ntransport = "{transport}"\n',
        encoding="utf-8",
    )


def write_worker_config(
    folder: Path, transport: str, port: int, key: tuple[str, str], name: str = "worker.toml"
) -> Path:
    path = folder / name
    path.write_text(
        f'[integrations.mns]\ntransport = "{transport}"\n'
        "transport_options = { visibility_timeout = 5 }\n\n"
        f'[client]\nendpoint = "http://127.0.0.1:{port}"\n'
        f'access_key_id = "{key[0]}"\naccess_key_secret = "{key[1]}"\ntimeout_seconds = 5\n',
        encoding="utf-8",
    )
    (folder / "cmd_jobs.py").write_text(JOBS, encoding="utf-8")
    return path


def worker_command(queues: str, config: Path) -> list[str]:
    return [EXE, "worker", queues, "--handler", "cmd_jobs:handle", "--config", str(config)]


def start_worker(folder: Path, command: list[str], name: str = "worker") -> subprocess.Popen[str]:
    log = (folder / f"{name}.log").open("w")
    process = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=log, text=True, env=server_env()
    )
    log.close()
    return process


def wait_for(what: str, check: Callable[[], object], seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.05)


def waiting(transport: str, queue: str) -> int:
    with Connection(transport) as connection:
        try:
            declared = Queue(queue, routing_key=queue)(connection.default_channel).queue_declare(
                passive=True
            )
        except connection.channel_errors:  # not declared yet: nothing sent to it so far
            return 0
        return int(declared.message_count or 0)


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not log lines (those start with a date)."""
    return [line for line in stderr.splitlines() if line and not line[:4].isdigit()]


def test_a_wrong_secret_stops_the_worker_at_start_and_keeps_the_message(tmp_path: Path) -> None:
    transport = f"relayflow-sqlite:///{tmp_path}/queues.db"
    write_server_config(tmp_path, transport)
    server, port = start_server(tmp_path)
    try:
        with Client(f"http://127.0.0.1:{port}", *ADMIN) as client:
            client.create_flow("two", TWO_QUEUES)
            client.start_execution("two", {}, name="run")
            wait_for("the first message", lambda: waiting(transport, "warehouse") == 1)
            wrong = write_worker_config(tmp_path, transport, port, (WORKER[0], "not-the-secret"))
            done = subprocess.run(
                worker_command("warehouse,notify", wrong),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=server_env(),
            )
            assert done.returncode == 2, done.stderr
            lines = error_lines(done.stderr)
            assert len(lines) == 1, done.stderr
            assert lines[0].startswith("relayflow: CredentialsRefused: the server refuses this "), (
                lines
            )
            assert "SignatureDoesNotMatch" in lines[0]
            assert waiting(transport, "warehouse") == 1  # not taken, not run
            assert "outcome=" not in done.stderr
            # One worker for both queues, with the right key, finishes the run.
            right = write_worker_config(tmp_path, transport, port, WORKER)
            worker = start_worker(tmp_path, worker_command("warehouse,notify", right))
            try:
                info = client.wait_for_execution("two", "run", timeout=TIMEOUT)
            finally:
                worker.terminate()
                assert worker.wait(TIMEOUT) == 0
            assert info.status == "Succeeded", (info.status, info.error, info.cause)
            assert info.output == {"done": "tell"}
            log = (tmp_path / "worker.log").read_text()
            assert "queue=warehouse flow=two execution=run step=pick outcome=succeeded" in log
            assert "queue=notify flow=two execution=run step=tell outcome=succeeded" in log
    finally:
        assert stop_server(server) == 0


def test_a_report_refused_for_the_key_mid_run_stops_the_worker(tmp_path: Path) -> None:
    # The server is down when the worker starts, so the check at start cannot tell; when the
    # server comes up, it does not know the worker's key: the first report is refused.
    transport = f"relayflow-sqlite:///{tmp_path}/queues.db"
    port = free_port()
    config = write_worker_config(tmp_path, transport, port, ("unknown-key", "some-secret"))
    worker = start_worker(tmp_path, worker_command("jobs", config))
    server = None
    try:
        wait_for(
            "the worker's warning",
            lambda: "cannot check the credentials yet" in (tmp_path / "worker.log").read_text(),
        )
        write_server_config(tmp_path, transport, port)
        server, _ = start_server(tmp_path)
        with Connection(transport) as connection:
            Producer(connection.default_channel).publish(
                json.dumps({"job": "one"}),
                routing_key="jobs",
                declare=[Queue("jobs", routing_key="jobs")],
                content_type="application/json",
                content_encoding="utf-8",
                serializer=None,
                headers={"x-relayflow-task-token": "a-token"},
            )
        assert worker.wait(TIMEOUT) == 2
        stderr = (tmp_path / "worker.log").read_text()
        assert "outcome=refused" in stderr
        lines = error_lines(stderr)
        assert len(lines) == 1 and lines[0].startswith("relayflow: CredentialsRefused: "), stderr
        assert "InvalidAccessKeyId.NotFound" in lines[0]
        assert waiting(transport, "jobs") == 1  # left for a worker with a good key
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if server is not None:
            assert stop_server(server) == 0


def test_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_worker_config(tmp_path, "reddis://127.0.0.1:6379/0", free_port(), WORKER)
    cases = [
        (["cmd_jobs:handle", str(config)], "relayflow: UnknownTransport: cannot load the "),
        (["cmd_jobs:missing", str(config)], "relayflow: InvalidHandler: module 'cmd_jobs' has "),
        (["no_such_module:handle", str(config)], "relayflow: InvalidHandler: cannot import "),
    ]
    broker = f"redis://127.0.0.1:{free_port()}/0"
    down = write_worker_config(tmp_path, broker, 9, WORKER, "down.toml")
    cases.append((["cmd_jobs:handle", str(down)], "relayflow: BrokerUnreachable: cannot reach "))
    for (handler, path), start in cases:
        done = subprocess.run(
            [EXE, "worker", "jobs", "--handler", handler, "--config", path],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=server_env(),
        )
        assert done.returncode == 2, (handler, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), (handler, lines)
    empty = subprocess.run(
        [EXE, "worker", "a,,b", "--handler", "cmd_jobs:handle", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=server_env(),
    )
    assert empty.returncode == 2
    assert empty.stderr.strip().startswith("relayflow: InvalidArgument: QUEUE must be one or more")
