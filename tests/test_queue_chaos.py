"""The seed scenario under chaos: another broker, and a server killed mid-run.

Built on tests/test_seed_e2e.py: the same flow, workers and checks. Every execution must end
Succeeded with the expected output, and every task step must have succeeded exactly once in a
gap-free history, whatever was killed or restarted on the way.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.client import Client
from tests.test_seed_e2e import (
    EXAMPLES,
    EXE,
    SLOW_WORKER,
    check_histories,
    expected_output,
    run_seed,
    stop,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_seed_scenario_on_rabbitmq(tmp_path, amqp_url):
    run_seed(tmp_path, amqp_url, 20)


# -- a topology on a fixed port, so that a restarted server is found where it was ----------


WORKER = [EXE, "worker", "fnf-demo", "--handler", "slow_worker:handle"]


def _wait_for(what: str, ready: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.05)


def _start_server(folder: Path, config: Path, attempt: int) -> subprocess.Popen:
    log = folder / f"server{attempt}.log"
    with log.open("w") as err:
        server = subprocess.Popen([EXE, "server", "--config", str(config)], cwd=folder, stderr=err)
    _wait_for(
        "the server's start",
        lambda: server.poll() is not None or "serving the API" in log.read_text(),
        20,
    )
    assert server.poll() is None, log.read_text()
    return server


def _start_workers(folder: Path, config: Path, count: int) -> list[subprocess.Popen]:
    workers = []
    for index in range(count):
        with (folder / f"worker{index}.log").open("w") as err:
            workers.append(
                subprocess.Popen(
                    [*WORKER, "--concurrency", "2", "--config", str(config)],
                    cwd=folder,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    return workers


def _config(folder: Path, transport: str, port: int) -> Path:
    shutil.copy(EXAMPLES / "seed_worker.py", folder)
    (folder / "slow_worker.py").write_text(SLOW_WORKER)
    config = folder / "relayflow.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n'
        f"[server]\nport = {port}\n"
        f'[integrations.mns]\ntransport = "{transport}"\n'
        f"transport_options = {{ visibility_timeout = 2 }}\n"
        f'[client]\nendpoint = "http://127.0.0.1:{port}"\n'
    )
    return config


def _wait_all(client: Client, names: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for name in names:
        left = max(1, int(deadline - time.monotonic()))
        info = client.describe_execution("seed", name, wait_seconds=min(30, left))
        assert info.status == "Succeeded", (name, info.status, info.raw)
        assert info.output == expected_output(), name


def _start_executions(client: Client, count: int) -> list[str]:
    client.create_flow("seed", (EXAMPLES / "seed-three-tasks.yaml").read_text())
    names = [f"run{i}" for i in range(count)]
    for name in names:
        client.start_execution("seed", {"source": name}, name=name)
    return names


def test_killing_the_server_mid_run_loses_nothing(tmp_path):
    port = _free_port()
    config = _config(tmp_path, f"relayflow-sqlite:///{tmp_path}/queues.db", port)
    server = _start_server(tmp_path, config, 0)
    workers = _start_workers(tmp_path, config, 2)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        names = _start_executions(client, 10)
        time.sleep(0.8)  # tasks are in the workers' hands
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        time.sleep(0.5)  # reports fail meanwhile: their messages come back later
        server = _start_server(tmp_path, config, 1)
        _wait_all(client, names, 45)
    finally:
        for worker in workers:
            stop(worker)
        assert stop(server) == 0
        client.close()
    check_histories(tmp_path, names)


def _start_redis(folder: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        assert process.poll() is None, "redis-server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait_for("redis-server's start", answers, 10)
    return process


def test_restarting_the_broker_mid_run_loses_nothing(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    data = tmp_path / "redis"
    data.mkdir()
    redis_port = _free_port()
    redis = _start_redis(data, redis_port)
    port = _free_port()
    config = _config(tmp_path, f"redis://127.0.0.1:{redis_port}/0", port)
    server = workers = None
    client = Client(f"http://127.0.0.1:{port}")
    try:
        server = _start_server(tmp_path, config, 0)
        workers = _start_workers(tmp_path, config, 2)
        names = _start_executions(client, 10)
        # Both workers must be consuming (on a loaded machine they may still be starting, and
        # a worker that finds no broker exits); then messages are delivered and unacknowledged.
        logs = [tmp_path / f"worker{index}.log" for index in range(2)]
        _wait_for(
            "both workers handling messages",
            lambda: all("queue=fnf-demo" in log.read_text() for log in logs),
            20,
        )
        redis.terminate()
        assert redis.wait(timeout=10) == 0
        time.sleep(0.5)
        redis = _start_redis(data, redis_port)
        _wait_all(client, names, 50)
    finally:
        for worker in workers or []:
            stop(worker)
        if server is not None:
            assert stop(server) == 0
        client.close()
        stop(redis)
    check_histories(tmp_path, names)
