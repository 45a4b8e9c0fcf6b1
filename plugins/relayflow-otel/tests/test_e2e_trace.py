"""Issue 16's "done when": one trace across a server, a broker and a worker in its own process.

A `relayflow server` (SQLite store, `[otel]` pointing at the test's OTLP/HTTP receiver,
`[integrations.mns]` on a real redis-server) runs the seed flow of
contrib/examples/seed-three-tasks.yaml on a queue of its own; a `relayflow worker` process,
traced through the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, handles its three messages with a
handler that opens a span of its own. The receiver must then hold one trace: the execution's
root span, a span per step and per task attempt, a CONSUMER span per message whose parent is
its task's span, and the handler's spans under those. Every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otlp_receiver import OtlpReceiver, Span

from relayflow.client import Client
from tests.api_server import EXE, server_env, start_server, stop_server

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "contrib" / "examples" / "seed-three-tasks.yaml"
WORKERS = (Path(__file__).resolve().parents[1] / "WORKERS.md").read_text(encoding="utf-8")
# The handler of WORKERS.md ("A handler's own spans"): a span of its own per job.
(JOBS,) = re.findall(r"```python\n# jobs.py\n(.*?)```", WORKERS, re.S)
PRODUCER, CONSUMER = 4, 5


def wait_for(what: str, probe: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)
    return found


def write_configs(folder: Path, redis: str, endpoint: str) -> None:
    broker = f'[integrations.mns]\ntransport = "{redis}"\n'
    (folder / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{folder}/store.db"\n'
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[otel]\nendpoint = "{endpoint}"\nservice_name = "relayflow-e2e"\n' + broker,
        encoding="utf-8",
    )
    (folder / "e2e_jobs.py").write_text(JOBS, encoding="utf-8")


@contextmanager
def worker_process(
    folder: Path, queue: str, port: int, endpoint: str
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **server_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "e2e-worker",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    broker = (folder / "relayflow.toml").read_text().partition("[integrations.mns]")[2]
    (folder / "worker.toml").write_text(
        f'[integrations.mns]{broker}[client]\nendpoint = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    log = (folder / "worker.log").open("wb")
    process = subprocess.Popen(
        [EXE, "worker", queue, "--handler", "e2e_jobs:handle", "--config", "worker.toml"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def counts(spans: list[Span]) -> dict[str, int]:
    """How many spans of each kind the trace has."""
    names = [span["name"] for span in spans]
    return {
        "root": names.count("execution seed"),
        "steps": sum(name.startswith("step ") for name in names),
        "tasks": sum(name.startswith("task ") for name in names),
        "worker": sum(span["kind"] == CONSUMER for span in spans),
        "handler": sum(name.startswith("job ") for name in names),
    }


EXPECTED = {"root": 1, "steps": 3, "tasks": 3, "worker": 3, "handler": 3}


def one_trace(spans: list[Span]) -> bool:
    """Whether every span of the trace has come (more would be a failure, seen below)."""
    return all(found >= EXPECTED[key] for key, found in counts(spans).items())


def run_seed(folder: Path, redis: str, endpoint: str, runs: int = 1) -> str:
    """Run the seed flow ``runs`` times with a server and a worker process; the worker's log.

    Both export spans to ``endpoint``. Every execution must succeed, and both processes must
    stop cleanly on SIGTERM (the worker flushing its spans as it goes).
    """
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    write_configs(folder, redis, endpoint)
    server, port = start_server(folder)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        with worker_process(folder, queue, port, endpoint) as worker:
            client.create_flow("seed", SEED.read_text().replace("fnf-demo", queue))
            for n in range(1, runs + 1):
                client.start_execution("seed", {"source": "s3://in.csv"}, name=f"run-{n}")
            for n in range(1, runs + 1):
                done = client.describe_execution("seed", f"run-{n}", wait_seconds=20)
                assert done.status == "Succeeded", (
                    done.status,
                    (folder / "worker.log").read_text(),
                )
                assert done.output == {"rows": [10, 20, 30], "loaded": 3}
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0, (folder / "worker.log").read_text()
    finally:
        client.close()
        assert stop_server(server) == 0, (folder / "server.log").read_text()
    return queue


def test_one_trace_from_the_engine_through_the_broker_to_the_worker_and_its_handler(
    tmp_path: Path, redis_url: str, otlp: OtlpReceiver
) -> None:
    queue = run_seed(tmp_path, redis_url, otlp.endpoint)
    spans = otlp.wait_for(one_trace, timeout=15)
    assert counts(spans) == EXPECTED, [span["name"] for span in spans]

    assert len({span["trace_id"] for span in spans}) == 1, "one trace for the whole execution"
    by_id = {span["span_id"]: span for span in spans}

    def parent(span: Span) -> Span:
        return by_id[span["parent_span_id"]]

    (root,) = [span for span in spans if span["parent_span_id"] == ""]
    assert root["name"] == "execution seed"
    assert root["resource"]["service.name"] == "relayflow-e2e"
    consumers = [span for span in spans if span["kind"] == CONSUMER]
    assert sorted(span["attributes"]["relayflow.step"] for span in consumers) == [
        "extract",
        "load",
        "transform",
    ]
    for consumer in consumers:
        step = consumer["attributes"]["relayflow.step"]
        assert consumer["name"] == f"{queue} process"
        assert consumer["resource"]["service.name"] == "e2e-worker"
        assert consumer["attributes"]["messaging.system"] == "redis"
        assert consumer["attributes"]["messaging.destination.name"] == queue
        assert consumer["attributes"]["relayflow.execution"] == "run-1"
        assert consumer["attributes"]["relayflow.outcome"] == "succeeded"
        assert re.fullmatch(r"[0-9A-F]{32}", consumer["attributes"]["messaging.message.id"])
        task = parent(consumer)  # the worker continues the task attempt's span
        assert task["name"] == f"task {step}"
        assert task["kind"] == PRODUCER
        assert task["attributes"]["relayflow.step"] == step
        assert task["attributes"]["relayflow.resource"].endswith(f"/queues/{queue}/messages")
        step_span = parent(task)
        assert step_span["name"] == f"step {step}"
        assert parent(step_span) is root
    jobs = {span["name"]: span for span in spans if span["name"].startswith("job ")}
    for step in ("extract", "transform", "load"):
        handler = jobs[f"job {step}"]
        assert parent(handler)["kind"] == CONSUMER  # the handler's span is the worker span's
        assert parent(handler)["attributes"]["relayflow.step"] == step
        assert handler["scope"] == "jobs"


def test_an_unreachable_collector_changes_nothing_for_the_server_and_the_worker(
    tmp_path: Path, redis_url: str
) -> None:
    with socket.socket() as sock:  # a port nothing listens on: every export is refused
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runs = 3
    queue = run_seed(tmp_path, redis_url, closed, runs=runs)
    log = (tmp_path / "worker.log").read_text()
    assert log.count(f"queue={queue} flow=seed") == log.count("outcome=succeeded") == 3 * runs


FC_HANDLER = """
from opentelemetry import trace

tracer = trace.get_tracer("e2e_fc")


def book(event, context):
    with tracer.start_as_current_span("reserve seat"):
        return {"traceparent": context.tracing.traceparent}
"""
TRIP = """version: v1
type: flow
steps:
  - type: task
    name: book
    resourceArn: acs:fc:::services/trip/functions/book
    timeoutSeconds: 10
"""


def test_an_fc_handler_in_the_server_continues_the_task_span(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    (tmp_path / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path}/store.db"\n'
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[otel]\nendpoint = "{otlp.endpoint}"\n'
        '[integrations.fc.functions]\n"trip/book" = "e2e_fc:book"\n',
        encoding="utf-8",
    )
    (tmp_path / "e2e_fc.py").write_text(FC_HANDLER, encoding="utf-8")
    server, port = start_server(tmp_path)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        client.create_flow("trip", TRIP)
        client.start_execution("trip", {}, name="run-1")
        done = client.describe_execution("trip", "run-1", wait_seconds=20)
        assert done.status == "Succeeded", done
    finally:
        client.close()
        assert stop_server(server) == 0, (tmp_path / "server.log").read_text()
    names = {"execution trip", "step book", "task book", "trip/book", "reserve seat"}
    spans = otlp.wait_for(lambda found: {s["name"] for s in found} >= names, timeout=15)
    by_name = {span["name"]: span for span in spans}
    assert len({span["trace_id"] for span in spans}) == 1
    task, handler, own = by_name["task book"], by_name["trip/book"], by_name["reserve seat"]
    assert (handler["parent_span_id"], handler["kind"]) == (task["span_id"], 2)  # SERVER
    assert own["parent_span_id"] == handler["span_id"]
    assert handler["resource"]["service.name"] == task["resource"]["service.name"]
    assert done.output == {"traceparent": f"00-{task['trace_id']}-{task['span_id']}-01"}
