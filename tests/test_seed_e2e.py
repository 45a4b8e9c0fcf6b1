"""The seed scenario end to end: server, workers in other processes, a real broker.

Three serial waitForCallback tasks on the queue `fnf-demo` (contrib/examples/seed-three-tasks.yaml)
served by `relayflow worker` processes, which report through the HTTP API and only then delete
their messages. Run on the embedded SQLite transport and on a real redis-server; one run kills
a worker mid-task and checks that no execution is lost and every token completes once.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from relayflow.client import Client
from relayflow.store import open_store

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("relayflow"))
EXAMPLES = ROOT / "contrib" / "examples"
SLOW_WORKER = """
import time

from seed_worker import handle as quick


def handle(body):
    time.sleep(0.3)
    return quick(body)
"""


def expected_output() -> dict:
    rows = [{"id": 1, "seen": True}, {"id": 2, "seen": True}, {"id": 3, "seen": True}]
    return {"rows": rows, "loaded": 3}


def start_topology(folder: Path, transport: str, workers: int, handler: str, options: str = ""):
    shutil.copy(EXAMPLES / "seed_worker.py", folder)
    (folder / "slow_worker.py").write_text(SLOW_WORKER)
    config = folder / "relayflow.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n'
        f"[server]\nport = 0\n"
        f'[integrations.mns]\ntransport = "{transport}"\n'
        f"transport_options = {{ visibility_timeout = 2{options} }}\n"
    )
    server = subprocess.Popen(
        [EXE, "server", "--config", str(config)], cwd=folder, stderr=subprocess.PIPE, text=True
    )
    port = None
    deadline = time.monotonic() + 20
    while port is None and time.monotonic() < deadline:
        line = server.stderr.readline()
        found = re.search(r"serving the API on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
    assert port, "the server did not start"
    config.write_text(config.read_text() + f'[client]\nendpoint = "http://127.0.0.1:{port}"\n')
    procs = [
        subprocess.Popen(
            [
                EXE,
                "worker",
                "fnf-demo",
                "--handler",
                handler,
                "--concurrency",
                "2",
                "--config",
                str(config),
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    return server, procs, Client(f"http://127.0.0.1:{port}")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return -9


def check_histories(folder: Path, names: list[str]) -> None:
    store = open_store(f"sqlite:///{folder}/store.db")
    try:
        with store.reader() as tx:
            for name in names:
                row = tx.get_execution("seed", name)
                events = tx.list_events(row.id, 0, 1000)
                assert [e.event_id for e in events] == list(range(1, len(events) + 1))
                done = [e.step_name for e in events if e.type == "TaskSucceeded"]
                assert done == ["extract", "transform", "load"], (name, done)
    finally:
        store.close()


def run_seed(
    folder: Path, transport: str, count: int, *, kill_one: bool = False, options: str = ""
) -> None:
    """Run ``count`` seed executions on ``transport``; ``options`` adds transport options
    (TOML inline-table entries, each starting with a comma)."""
    handler = "slow_worker:handle" if kill_one else "seed_worker:handle"
    server, workers, client = start_topology(folder, transport, 2, handler, options)
    try:
        client.create_flow("seed", (EXAMPLES / "seed-three-tasks.yaml").read_text())
        names = [f"run{i}" for i in range(count)]
        for name in names:
            client.start_execution("seed", {"source": name}, name=name)
        if kill_one:
            time.sleep(0.5)  # the first worker has messages in hand
            workers[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 60
        for name in names:
            info = client.describe_execution(
                "seed", name, wait_seconds=min(60, max(1, int(deadline - time.monotonic())))
            )
            assert info.status == "Succeeded", (name, info.status, info.raw)
            assert info.output == expected_output(), name
    finally:
        for worker in workers:
            stop(worker)
        assert stop(server) == 0
        client.close()
    check_histories(folder, names)


def test_seed_scenario_on_the_embedded_transport(tmp_path):
    run_seed(tmp_path, f"relayflow-sqlite:///{tmp_path}/queues.db", 20)


def test_seed_scenario_on_redis(tmp_path, redis_url):
    run_seed(tmp_path, redis_url, 20)


def test_a_worker_killed_mid_task_loses_nothing(tmp_path):
    run_seed(tmp_path, f"relayflow-sqlite:///{tmp_path}/queues.db", 8, kill_one=True)


def test_relayflow_run_with_an_in_process_worker(tmp_path):
    shutil.copy(EXAMPLES / "seed_worker.py", tmp_path)
    shutil.copy(EXAMPLES / "seed-three-tasks.yaml", tmp_path)
    done = subprocess.run(
        [
            EXE,
            "run",
            "seed-three-tasks.yaml",
            "--input",
            '{"source": "x"}',
            "--worker",
            "fnf-demo=seed_worker:handle",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_output()
