"""`relayflow worker` with RELAYFLOW_WORKER_LOG_FORMAT=json: every stderr line is a JSON object.

The worker runs as its own process on the embedded `relayflow-sqlite` transport, reporting to a
port nobody listens on (the credentials check then warns and the worker starts all the same),
and stops on SIGTERM. Waits are bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_process_writes_json_lines(tmp_path: Path) -> None:
    pytest.importorskip("relayflow_mns.sqlite_transport")
    (tmp_path / "jobs_logs.py").write_text("def handle(body):\n    return {}\n")
    (tmp_path / "relayflow.toml").write_text(
        "[integrations.mns]\n"
        f'transport = "relayflow-sqlite:///{tmp_path / "queues.db"}"\n\n'
        f'[client]\nendpoint = "http://127.0.0.1:{_free_port()}"\ntimeout_seconds = 2\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
    env["RELAYFLOW_WORKER_LOG_FORMAT"] = "json"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from relayflow_mns.cli import worker; worker(prog_name='relayflow worker')",
                "logs-q",
                "--handler",
                "jobs_logs:handle",
                "--config",
                "relayflow.toml",
            ],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    try:
        deadline = time.monotonic() + 20
        while "SIGTERM or Ctrl-C stops it" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "the worker did not start within 20 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
    levels = [(entry["level"], entry["message"]) for entry in entries]
    assert levels[0][0] == "WARNING" and "reports are retried" in levels[0][1]
    assert levels[-1][0] == "INFO" and levels[-1][1].startswith("relayflow worker: stopped;")
