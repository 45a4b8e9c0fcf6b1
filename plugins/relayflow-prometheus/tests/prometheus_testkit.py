"""A real Prometheus server for tests, and readers of the text exposition format.

`start_prometheus` runs Debian's /usr/bin/prometheus on a free loopback port with its storage in
a temporary folder, waits (bounded) until it is ready, and kills it afterwards. Targets are
added while it runs (`Prometheus.scrape` rewrites the configuration and asks for a reload), so a
test can start the server it scrapes first and learn its port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import relayflow_prometheus
from relayflow.config import Config
from relayflow.plugins import PluginManager
from relayflow_prometheus import ServerMetrics

PROMETHEUS = "/usr/bin/prometheus"
READY_SECONDS = 20.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = 15.0) -> T:
    """Call ``probe`` until it returns something other than None; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None:
            return last
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {seconds} s")


@dataclass
class Prometheus:
    """A running Prometheus: its URL, and the scrape jobs it has."""

    url: str
    config: Path
    jobs: dict[str, list[str]] = field(default_factory=dict)

    def scrape(self, job: str, target: str, path: str = "/metrics") -> None:
        """Scrape ``target`` (`host:port`) every second under ``job``, then reload."""
        self.jobs[job] = [target, path]
        write_config(self.config, self.jobs)
        answer = httpx.post(f"{self.url}/-/reload", timeout=10)
        assert answer.status_code == 200, answer.text

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (`/api/v1/query`)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        doc = answer.json()
        assert doc.get("status") == "success", doc
        return list(doc["data"]["result"])

    def check(self, expr: str) -> str | None:
        """None when Prometheus accepts ``expr``, else its error."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        doc = answer.json()
        return None if doc.get("status") == "success" else str(doc.get("error"))

    def values(self, expr: str, label: str) -> dict[str, float]:
        """The query's samples as {value of ``label``: value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def targets_up(self) -> dict[str, str]:
        """Each active target's job and health (`up`, `down`, `unknown`)."""
        doc = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in doc["data"]["activeTargets"]}


def write_config(path: Path, jobs: dict[str, list[str]]) -> None:
    """A Prometheus configuration scraping each job every second (JSON is valid YAML)."""
    doc = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "metrics_path": metrics_path,
                "static_configs": [{"targets": [target]}],
            }
            for job, (target, metrics_path) in jobs.items()
        ],
    }
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


@contextmanager
def start_prometheus(folder: Path) -> Iterator[Prometheus]:
    """Run Prometheus in ``folder`` until the block ends."""
    if not os.access(PROMETHEUS, os.X_OK) and shutil.which("prometheus") is None:
        message = "prometheus is not installed (apt-get install prometheus)"
        if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    program = PROMETHEUS if os.access(PROMETHEUS, os.X_OK) else str(shutil.which("prometheus"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    write_config(config, {})
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            program,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Prometheus(f"http://127.0.0.1:{port}", config)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process.poll() is not None:
                text = (folder / "prometheus.log").read_text(errors="replace")
                pytest.fail(f"prometheus exited with {process.returncode}:\n{text[-2000:]}")
            try:
                if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus was not ready within {READY_SECONDS} s")
            time.sleep(0.1)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of an exposition (0.0 when it is absent)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def manager_with(table: dict[str, Any] | None) -> PluginManager:
    """A PluginManager with only this plugin, configured by ``table`` as `[prometheus]`."""
    manager = PluginManager()
    manager.register(relayflow_prometheus, "prometheus")
    config = Config(sections={} if table is None else {"prometheus": table})
    manager.check_config(config)
    manager.configure(config)
    return manager


def metrics_of(manager: PluginManager) -> ServerMetrics:
    app = manager.http_routes()["/metrics"]
    metrics = getattr(app, "__self__", None)
    assert isinstance(metrics, ServerMetrics)
    return metrics


async def scrape(
    manager: PluginManager, path: str = "/metrics", client: str = "127.0.0.1"
) -> tuple[int, str]:
    """GET ``path`` through the plugin's ASGI app, as `relayflow server` would call it."""
    app = manager.http_routes()[path]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "client": (client, 5000)}
    await app(scope, receive, send)
    return sent[0]["status"], sent[1]["body"].decode()


HELD_QUEUE = "acs:mns:::/queues/jobs/messages"


async def _small_run() -> str:
    """A scrape of the plugin after one execution (a task done, one held, then stopped), a
    refresh of the waiting gauges and one call of each work and API hook."""
    from relayflow.engine import Submitted, Succeeded, TaskRequest
    from relayflow.plugins.events import ApiRequestEvent, CommitEvent
    from relayflow.testing import eventually, fdl, make_engine

    manager = manager_with({"enabled": True})

    async def work(request: TaskRequest) -> Succeeded:
        return Succeeded({})

    async def park(request: TaskRequest) -> Submitted:
        return Submitted({"MessageId": "m"})

    flow = fdl(f"""
    - type: task
      name: work
      action: test:Work
    - type: task
      name: hold
      resourceArn: {HELD_QUEUE}
      pattern: waitForCallback
    """)
    async with make_engine({"test:Work": work, HELD_QUEUE: park}, plugins=manager) as engine:
        await engine.create_flow("f", flow)
        await engine.start_execution("f", {}, name="x")

        async def held() -> bool:
            return bool((await engine.list_waiting("f")).items)

        await eventually(held, 5, "the held task")
        await metrics_of(manager).waiting.refresh(engine)
        await engine.stop_execution("f", "x", error="E", cause="c")
        await engine.describe_execution("f", "x", wait_seconds=5)
    manager.batch_committed(CommitEvent(jobs=2, seconds=0.01, store="sqlite"))
    manager.outbox_dispatched(HELD_QUEUE, 0.01)
    manager.timers_fired(1, 0.01)
    manager.api_request_finished(ApiRequestEvent("StartExecution", 200, "", 0.01))
    return (await scrape(manager))[1]


def exposed_metrics() -> dict[str, set[str]]:
    """Every sample name the server and worker sides expose after a small real run, with the
    label names each carries."""
    import asyncio

    from prometheus_client import generate_latest

    from relayflow_prometheus.worker import WorkerMetrics

    worker = WorkerMetrics.build()
    worker.handled("jobs", "succeeded", 0.1)
    text = asyncio.run(_small_run()) + generate_latest(worker.registry).decode()
    found: dict[str, set[str]] = {}
    for name, labels in samples(text):
        found.setdefault(name, set()).update(key for key, _ in labels)
    return found
