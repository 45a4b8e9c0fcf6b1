"""contrib/examples/sdk_worker.py: the seed scenario served by a worker that reports with the
official Alibaba SDK and receives with plain kombu, against a real `relayflow server`.

Each run starts the server as a subprocess in a temporary folder (access keys: an admin and a
worker), creates the seed flow and starts executions through `relayflow.client.Client` signed
with the admin key, then runs `sdk_worker.py --count 3*N` with the worker key until it exits.
On the embedded SQLite transport, on a real redis-server and on a real rabbitmq-server. The
two example configurations in contrib/examples must load, too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kombu import Connection, Queue

import relayflow_mns.sqlite_transport  # noqa: F401  (registers relayflow-sqlite://)
from relayflow.client import Client
from relayflow.config import load_config
from relayflow_mns.integration import MnsSettings
from tests.api_server import server_env, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "contrib" / "examples"
WORKER = EXAMPLES / "sdk_worker.py"
SEED = (EXAMPLES / "seed-three-tasks.yaml").read_text(encoding="utf-8")
ADMIN = ("sdk-test-admin", "sdk-test-admin-secret")
WORKER_KEY = ("sdk-test-worker", "sdk-test-worker-secret")
EXECUTIONS = 3
WORKER_TIMEOUT = 60.0


def expected_output() -> dict:
    rows = [{"id": 1, "seen": True}, {"id": 2, "seen": True}, {"id": 3, "seen": True}]
    return {"rows": rows, "loaded": 3}


def write_config(folder: Path, transport: str) -> None:
    keys = "".join(
        f'\n[[server.access_keys]]\nid = "{key_id}"\nsecret = "{secret}"\nrole = "{role}"\n'
        for role, (key_id, secret) in (("admin", ADMIN), ("worker", WORKER_KEY))
    )
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{keys}\n'
        f'[integrations.mns]\ntransport = "{transport}"\n',
        encoding="utf-8",
    )


def run_worker(
    folder: Path,
    port: int,
    transport: str,
    count: int,
    *,
    queue: str = "fnf-demo",
    key: tuple[str, str] = WORKER_KEY,
) -> subprocess.CompletedProcess[str]:
    env = {
        **server_env(),
        "RELAYFLOW_ACCESS_KEY_ID": key[0],
        "RELAYFLOW_ACCESS_KEY_SECRET": key[1],
    }
    return subprocess.run(
        [
            sys.executable,
            str(WORKER),
            "--transport",
            transport,
            "--endpoint",
            f"127.0.0.1:{port}",
            "--count",
            str(count),
            "--queue",
            queue,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )


def run_seed(
    folder: Path,
    transport: str,
    queue: str = "fnf-demo",
    then: Callable[[Client, int], None] | None = None,
) -> None:
    """Run EXECUTIONS seed executions on ``transport`` (the flow's queue renamed to ``queue``);
    ``then(client, port)`` runs afterwards, with the server still up."""
    write_config(folder, transport)
    definition = SEED.replace("/queues/fnf-demo/", f"/queues/{queue}/")
    server, port = start_server(folder)
    try:
        with Client(f"http://127.0.0.1:{port}", *ADMIN) as client:
            client.create_flow("seed", definition)
            names = [f"run-{i}" for i in range(EXECUTIONS)]
            for name in names:
                client.start_execution("seed", {"source": name}, name=name)
            worker = run_worker(folder, port, transport, 3 * EXECUTIONS, queue=queue)
            assert worker.returncode == 0, worker.stderr
            assert worker.stderr.count(" succeeded (EventId ") == 3 * EXECUTIONS, worker.stderr
            for name in names:
                info = client.wait_for_execution("seed", name, timeout=20)
                assert info.status == "Succeeded", (name, info.status, info.error, info.cause)
                assert info.output == expected_output(), name
                events = list(client.iter_history("seed", name))
                done = [event.step_name for event in events if event.type == "TaskSucceeded"]
                assert done == ["extract", "transform", "load"], (name, done)
            if then is not None:
                then(client, port)
    finally:
        code = stop_server(server)
    assert code == 0, (folder / "server.log").read_text(encoding="utf-8", errors="replace")


def test_sdk_worker_on_the_embedded_transport(tmp_path: Path) -> None:
    transport = f"relayflow-sqlite:///{tmp_path}/queues.db"

    def redeliver(client: Client, port: int) -> None:
        # A message delivered again after its task was answered: refused, and deleted all
        # the same. Its token is in the body only, as in Serverless Workflow's MNS messages.
        events = list(client.iter_history("seed", "run-0"))
        body = next(event.detail["input"] for event in events if event.type == "StepEntered")
        assert body["job"] == "extract" and body["taskToken"], body
        queue = Queue("fnf-demo", routing_key="fnf-demo")
        with Connection(transport) as connection:
            connection.Producer().publish(
                json.dumps(body),
                routing_key="fnf-demo",
                declare=[queue],
                content_type="application/json",
                content_encoding="utf-8",
                serializer=None,
            )
        again = run_worker(tmp_path, port, transport, 1)
        assert again.returncode == 0, again.stderr
        assert "extract: already answered (" in again.stderr, again.stderr
        with Connection(transport) as connection:
            assert queue(connection.default_channel).queue_declare(passive=True).message_count == 0

    run_seed(tmp_path, transport, then=redeliver)


def test_sdk_worker_on_redis(tmp_path: Path, redis_url: str) -> None:
    # A database and a queue of its own: other tests share this redis-server.
    url = redis_url.rsplit("/", 1)[0] + "/6"
    run_seed(tmp_path, url, f"sdk-{uuid.uuid4().hex[:8]}")


def test_sdk_worker_on_rabbitmq(tmp_path: Path, amqp_url: str) -> None:
    run_seed(tmp_path, amqp_url, f"sdk-{uuid.uuid4().hex[:8]}")


def test_a_wrong_secret_stops_the_worker_and_keeps_the_message(tmp_path: Path) -> None:
    transport = f"relayflow-sqlite:///{tmp_path}/queues.db"
    write_config(tmp_path, transport)
    server, port = start_server(tmp_path)
    try:
        with Client(f"http://127.0.0.1:{port}", *ADMIN) as client:
            client.create_flow("seed", SEED)
            client.start_execution("seed", {"source": "s"}, name="run")
            wrong = run_worker(tmp_path, port, transport, 1, key=(WORKER_KEY[0], "not-the-secret"))
            assert wrong.returncode == 2, wrong.stderr
            last = wrong.stderr.strip().splitlines()[-1]
            assert last.startswith("sdk_worker: "), wrong.stderr
            assert "SignatureDoesNotMatch" in last, last
            # The message went back to the queue: a worker with the right key finishes the run.
            right = run_worker(tmp_path, port, transport, 3)
            assert right.returncode == 0, right.stderr
            info = client.wait_for_execution("seed", "run", timeout=20)
            assert info.status == "Succeeded", (info.status, info.error, info.cause)
    finally:
        code = stop_server(server)
    assert code == 0


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    done = run_worker(tmp_path, 9, "amqp://guest:guest@127.0.0.1:9//", 1)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdk_worker: cannot reach the broker"), lines
    assert "guest:***@" in lines[0]


def test_no_access_key_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(WORKER), "--count", "1"],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("sdk_worker: no access key:"), done.stderr
    assert not (tmp_path / "relayflow-queues.db").exists()


def test_help_teaches() -> None:
    done = subprocess.run(
        [sys.executable, str(WORKER), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    for words in ("x-relayflow-task-token", "ReportTaskSucceeded", "--transport", "--count"):
        assert words in done.stdout, words
    assert "cn-hangzhou.fnf.aliyuncs.com" in done.stdout


@pytest.mark.parametrize("name", ["seed-redis.toml", "seed-rabbitmq.toml"])
def test_the_example_configurations_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in os.environ if v.startswith("RELAYFLOW_")]:
        monkeypatch.delenv(variable)
    config = load_config(str(EXAMPLES / name))
    settings = MnsSettings(**config.integrations["mns"])
    scheme = "redis" if "redis" in name else "amqp"
    assert settings.transport.startswith(f"{scheme}://")
    assert config.server.port == 8765
    assert config.client.endpoint == f"http://127.0.0.1:{config.server.port}"
    roles = {key.id: key.role for key in config.server.access_keys}
    assert sorted(roles.values()) == ["admin", "worker"]
    assert roles[config.client.access_key_id] == "admin"
    assert config.engine.store.startswith("sqlite:///")
