"""A real `relayflow server` and `relayflow worker`, scraped by a real Prometheus.

The server serves `/metrics` (`[prometheus] enabled = true`), a worker process in another
process serves its own with `--metrics-port`, both on the embedded SQLite queue transport.
Executions run (some failing, some left waiting), then Prometheus's HTTP API must show counters
that match them. Every wait is bounded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from prometheus_testkit import Prometheus, free_port, value, wait_for

from relayflow.client import Client
from relayflow.testing import fdl
from tests.api_server import EXE, server_env, start_server, stop_server

JOBS = """
def handle(body):
    if body.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


def task_flow(queue: str) -> str:
    return fdl(f"""
    - type: task
      name: job
      resourceArn: acs:mns:::/queues/{queue}/messages
      pattern: waitForCallback
      timeoutSeconds: 60
      inputMappings:
        - target: fail
          source: $input.fail
        - target: taskToken
          source: $context.task.token
      serviceParams:
        MessageBody: $
    """)


QUICK = fdl("""
- type: pass
  name: only
""")
BROKEN = fdl("""
- type: fail
  name: boom
  error: Boom
""")


def write_config(folder: Path) -> Path:
    config = folder / "relayflow.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n'
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[integrations.mns]\ntransport = "relayflow-sqlite:///{folder}/queues.db"\n'
        "transport_options = { visibility_timeout = 10, polling_interval = 0.05 }\n"
        '[prometheus]\nenabled = true\npath = "/metrics"\nwaiting_refresh_seconds = 1\n',
        encoding="utf-8",
    )
    return config


def start_worker(folder: Path, port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    (folder / "prom_jobs.py").write_text(JOBS, encoding="utf-8")
    worker_config = folder / "worker.toml"
    worker_config.write_text(
        (folder / "relayflow.toml").read_text()
        + f'[client]\nendpoint = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    log = (folder / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            EXE,
            "worker",
            "jobs",
            "--handler",
            "prom_jobs:handle",
            "--config",
            str(worker_config),
            "--metrics-port",
            str(metrics_port),
        ],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(),
    )
    log.close()
    return process


def test_prometheus_scrapes_server_and_worker_counters(tmp_path: Path, prometheus: Prometheus):
    write_config(tmp_path)
    server, port = start_server(tmp_path)
    worker = None
    client = Client(f"http://127.0.0.1:{port}")
    try:
        metrics_port = free_port()
        worker = start_worker(tmp_path, port, metrics_port)
        prometheus.scrape("relayflow", f"127.0.0.1:{port}")
        prometheus.scrape("worker", f"127.0.0.1:{metrics_port}")

        client.create_flow("job", task_flow("jobs"))
        client.create_flow("held", task_flow("parked"))  # no worker: its tasks wait
        client.create_flow("quick", QUICK)
        client.create_flow("broken", BROKEN)
        runs = [("job", {"fail": False})] * 3 + [("job", {"fail": True})] * 2
        runs += [("quick", {})] * 2 + [("broken", {})] + [("held", {})] * 2
        for i, (flow, data) in enumerate(runs):
            client.start_execution(flow, data, name=f"r{i}")
        statuses: dict[tuple[str, str], float] = {}
        for i, (flow, _) in enumerate(runs):
            if flow != "held":
                info = client.describe_execution(flow, f"r{i}", wait_seconds=20)
                statuses[(flow, info.status)] = statuses.get((flow, info.status), 0) + 1
        assert statuses == {
            ("job", "Succeeded"): 3,
            ("job", "Failed"): 2,
            ("quick", "Succeeded"): 2,
            ("broken", "Failed"): 1,
        }

        # The worker's endpoint, read directly, before Prometheus has it.
        def worker_counts() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            done = "relayflow_worker_messages_total"
            ok = value(text, done, queue="jobs", outcome="succeeded")
            failed = value(text, done, queue="jobs", outcome="failed")
            return text if (ok, failed) == (3, 2) else None

        wait_for("the worker's counters", worker_counts, 15)

        def ended() -> dict[tuple[str, str], float] | None:
            found = {
                (r["metric"]["flow"], r["metric"]["status"]): float(r["value"][1])
                for r in prometheus.query(
                    'sum by (flow, status) (relayflow_executions_ended_total{job="relayflow"})'
                )
            }
            return found if found == statuses else None

        wait_for("Prometheus's ended executions to match", ended, 20)
        started = prometheus.values(
            'sum by (flow) (relayflow_executions_started_total{job="relayflow"})', "flow"
        )
        assert started == {"job": 5, "held": 2, "quick": 2, "broken": 1}

        def waiting() -> dict[str, float] | None:
            found = prometheus.values('relayflow_tasks_waiting{job="relayflow"}', "flow")
            return found if found == {"held": 2} else None

        wait_for("the held tasks in relayflow_tasks_waiting", waiting, 15)

        def worker_scraped() -> dict[str, float] | None:
            found = prometheus.values(
                'sum by (outcome) (relayflow_worker_messages_total{job="worker",queue="jobs"})',
                "outcome",
            )
            return found if found == {"succeeded": 3, "failed": 2} else None

        wait_for("Prometheus's worker counters", worker_scraped, 15)
        api = prometheus.values(
            'sum by (action) (relayflow_api_requests_total{job="relayflow",code="200"})', "action"
        )
        assert api["StartExecution"] == len(runs)
        assert api["ReportTaskSucceeded"] == 3
        assert api["ReportTaskFailed"] == 2
        tasks = prometheus.values(
            "sum by (outcome) (relayflow_task_attempt_duration_seconds_count"
            '{job="relayflow",flow="job"})',
            "outcome",
        )
        assert tasks == {"succeeded": 3, "failed": 2}
        commits = prometheus.query('sum(relayflow_store_commit_jobs_count{job="relayflow"})')
        assert float(commits[0]["value"][1]) > 0
        assert prometheus.targets_up() == {"relayflow": "up", "worker": "up"}
    finally:
        client.close()
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)
        assert stop_server(server) == 0
