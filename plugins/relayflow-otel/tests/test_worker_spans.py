"""relayflow-otel's worker side: a CONSUMER span per message, continuing the task's trace.

The spans go through the official OTLP/HTTP exporter to the real receiver of otlp_receiver.py.
Workers run in-process on kombu's `memory://` transport with a reporter that records its calls
(the reports are not what is tested here; the end-to-end test reports to a real server). No
test sets the process's global tracer provider: each builds its own and registers a
`WorkerTracing` around it, the way a program embedding a worker would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection, Producer, Queue
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otlp_receiver import OtlpReceiver, Span

import relayflow_otel.worker as otel_worker
from relayflow.worker.hooks import WorkerInfo, WorkerMessage, WorkerPlugins
from relayflow_mns.worker import TOKEN_HEADER, Worker

MEMORY = "memory://"
FAST = {"polling_interval": 0.01}
CONSUMER = 5
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
)


class Recorder:
    """A reporter that keeps what the worker reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> int:
        with self.lock:
            self.calls.append(("succeeded", token))
            return len(self.calls)

    def report_task_failed(self, token: str, error: str, cause: str) -> int:
        with self.lock:
            self.calls.append(("failed", token, error))
            return len(self.calls)


def provider_to(url: str, *, timeout: float = 5) -> TracerProvider:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=url, timeout=timeout)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    return provider


def traceparent_of(span: trace.Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


def hex_ids(span: trace.Span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def publish(queue: str, body: dict[str, Any], token: str, headers: dict[str, str]) -> None:
    with Connection(MEMORY) as connection:
        Producer(connection.default_channel).publish(
            json.dumps(body),
            routing_key=queue,
            declare=[Queue(queue, routing_key=queue)],
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            headers={TOKEN_HEADER: token, **headers},
        )


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return value


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No OTEL_* variable, and the module's cached state read again before and after."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    otel_worker.use_provider(None)
    yield monkeypatch
    otel_worker.use_provider(None)


def message(queue: str = "jobs", **headers: str) -> WorkerMessage:
    return WorkerMessage(queue, "seed", "run-1", "extract", headers)


# -- inert unless configured ------------------------------------------------------------------


def test_without_an_endpoint_the_loaded_plugin_does_nothing(no_otel_env: Any) -> None:
    plugins = WorkerPlugins.load()
    assert plugins.active  # relayflow_otel.worker is registered through its entry point
    threads = threading.active_count()
    info = WorkerInfo(("jobs",), 1, "redis")
    plugins.started(info)
    assert otel_worker.relayflow_worker_message(message()) is None
    with plugins.message(message(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")):
        assert not trace.get_current_span().get_span_context().is_valid
    plugins.handled(message(), "succeeded", 0.1)
    plugins.stopping(info)
    assert threading.active_count() == threads
    assert otel_worker.handler_span("f", {}, {}) is None


def test_an_untraced_worker_does_not_even_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "from relayflow.worker.hooks import WorkerPlugins, WorkerInfo, WorkerMessage\n"
        "plugins = WorkerPlugins.load()\n"
        "plugins.started(WorkerInfo(('q',), 1, 'redis'))\n"
        "with plugins.message(WorkerMessage('q', 'f', 'e', 's', {})):\n"
        "    pass\n"
        "assert 'relayflow_otel.worker' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


@pytest.mark.parametrize(
    "extra",
    [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}, {}],
    ids=["sdk-disabled", "exporter-none", "no-endpoint"],
)
def test_the_standard_variables_turn_it_off(no_otel_env: Any, extra: dict[str, str]) -> None:
    if extra:
        no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    for name, value in extra.items():
        no_otel_env.setenv(name, value)
    assert otel_worker.provider_from_env() is None


def test_an_unknown_protocol_is_one_warning_and_no_spans(
    no_otel_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with caplog.at_level(logging.WARNING, "relayflow_otel.worker"):
        assert otel_worker.provider_from_env() is None
    assert [r.getMessage() for r in caplog.records] == [
        "relayflow-otel: OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, got "
        "'carrier-pigeon'; worker spans are off"
    ]


def test_variables_the_sdk_refuses_leave_the_worker_untraced(
    no_otel_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    no_otel_env.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")  # less than a batch (512)
    with caplog.at_level(logging.WARNING, "relayflow_otel.worker"):
        otel_worker.relayflow_worker_started(WorkerInfo(("jobs",), 1, "redis"))
        assert otel_worker.relayflow_worker_message(message()) is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("relayflow-otel: worker spans are off: max_export_batch_size")


def test_the_environment_names_the_service(no_otel_env: Any) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = otel_worker.provider_from_env()
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "relayflow-worker"
    provider.shutdown()
    no_otel_env.setenv("OTEL_SERVICE_NAME", "billing-worker")
    provider = otel_worker.provider_from_env()
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "billing-worker"
    provider.shutdown()


# -- spans --------------------------------------------------------------------------------------


def test_the_message_span_continues_the_task_span_and_holds_the_handlers(
    otlp: OtlpReceiver,
) -> None:
    provider = provider_to(otlp.traces_url)
    plugins = WorkerPlugins()
    plugins.register(otel_worker.WorkerTracing(provider), "otel")
    engine = provider.get_tracer("engine-stand-in")
    handler_tracer = provider.get_tracer("jobs")
    info = WorkerInfo(("jobs",), 1, "amqp")
    plugins.started(info)
    with engine.start_as_current_span("task extract") as task_span:
        headers = {"traceparent": traceparent_of(task_span), "x-relayflow-message-id": "m-7"}
    first = message(**headers)
    with plugins.message(first), handler_tracer.start_as_current_span("extract rows"):
        pass
    plugins.handled(first, "succeeded", 0.01)  # after the context, as the worker does
    second = message(**headers)
    with plugins.message(second):
        plugins.handled(second, "failed", 0.01)  # before: the span ends on leaving
    unsampled = message(traceparent=traceparent_of(task_span)[:-2] + "00")
    with plugins.message(unsampled), handler_tracer.start_as_current_span("not sampled"):
        pass  # the engine did not sample this trace: nothing of it is exported here either
    plugins.handled(unsampled, "succeeded", 0.01)
    plugins.stopping(info)
    spans = otlp.wait_for(lambda found: len(found) >= 4, timeout=10)
    trace_id, task_id = hex_ids(task_span)
    consumers = [span for span in spans if span["kind"] == CONSUMER]
    assert [span["name"] for span in consumers] == ["jobs process", "jobs process"]
    assert "not sampled" not in [span["name"] for span in spans]
    for span in consumers:
        assert (span["trace_id"], span["parent_span_id"]) == (trace_id, task_id)
        assert span["scope"] == "relayflow_otel.worker"
    ok, failed = sorted(consumers, key=lambda span: span["start_ns"])
    assert ok["attributes"] == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "jobs",
        "messaging.message.id": "m-7",
        "relayflow.flow": "seed",
        "relayflow.execution": "run-1",
        "relayflow.step": "extract",
        "relayflow.outcome": "succeeded",
    }
    assert ok["status"]["code"] == "UNSET"
    assert failed["attributes"]["relayflow.outcome"] == "failed"
    assert failed["status"]["code"] == "ERROR"
    (handler,) = [span for span in spans if span["name"] == "extract rows"]
    assert (handler["trace_id"], handler["parent_span_id"]) == (trace_id, ok["span_id"])
    provider.shutdown()


def test_a_real_worker_traces_every_message_even_without_or_with_a_bad_traceparent(
    otlp: OtlpReceiver,
) -> None:
    provider = provider_to(otlp.traces_url)
    plugins = WorkerPlugins()
    plugins.register(otel_worker.WorkerTracing(provider), "otel")
    handler_tracer = provider.get_tracer("jobs")
    queue = f"q-{uuid.uuid4().hex[:10]}"
    with provider.get_tracer("engine").start_as_current_span("task") as task_span:
        good = traceparent_of(task_span)

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        with handler_tracer.start_as_current_span(f"job {body['n']}"):
            if body["n"] == 1:
                raise KeyError("no such row")
            return {"n": body["n"]}

    publish(queue, {"n": 0}, "tok-0", {"traceparent": good, "x-relayflow-step": "extract"})
    publish(queue, {"n": 1}, "tok-1", {"traceparent": good, "x-relayflow-step": "transform"})
    publish(queue, {"n": 2}, "tok-2", {"traceparent": "00-not-a-trace-id-01"})
    publish(queue, {"n": 3}, "tok-3", {})
    reporter = Recorder()
    worker = Worker(
        queue,
        handle,
        transport_url=MEMORY,
        reporter=reporter,
        poll_interval=0.05,
        transport_options=FAST,
        plugins=plugins,
    )
    worker.start()
    try:
        wait_for(lambda: len(reporter.calls) == 4, 5, "four reports")
    finally:
        assert worker.stop(timeout=10)
    assert sorted(reporter.calls) == [
        ("failed", "tok-1", "KeyError"),
        ("succeeded", "tok-0"),
        ("succeeded", "tok-2"),
        ("succeeded", "tok-3"),
    ]
    spans = otlp.wait_for(lambda found: len(found) >= 9, timeout=10)
    by_name: dict[str, Span] = {span["name"]: span for span in spans}
    consumers = {span["span_id"]: span for span in spans if span["kind"] == CONSUMER}
    assert len(consumers) == 4
    trace_id, task_id = hex_ids(task_span)
    for n in range(4):
        job = by_name[f"job {n}"]
        consumer = consumers[job["parent_span_id"]]
        assert consumer["name"] == f"{queue} process"
        assert consumer["attributes"]["messaging.system"] == "memory"
        assert job["trace_id"] == consumer["trace_id"]
        if n < 2:
            assert (consumer["trace_id"], consumer["parent_span_id"]) == (trace_id, task_id)
        else:  # a new trace: the header was not a traceparent, or there was none
            assert consumer["trace_id"] != trace_id and consumer["parent_span_id"] == ""
        outcome = "failed" if n == 1 else "succeeded"
        assert consumer["attributes"]["relayflow.outcome"] == outcome
        assert consumer["status"]["code"] == ("ERROR" if n == 1 else "UNSET")
    provider.shutdown()


def test_an_unreachable_collector_leaves_the_worker_as_it_is(
    no_otel_env: pytest.MonkeyPatch,
) -> None:
    # A closed port: every export fails, and the exporter retries for its 10 s timeout.
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    no_otel_env.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    no_otel_env.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")  # most spans are dropped: never a wait
    no_otel_env.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    tracing = otel_worker.WorkerTracing.from_env()
    assert tracing is not None
    plugins = WorkerPlugins()
    plugins.register(tracing, "otel")
    queue = f"q-{uuid.uuid4().hex[:10]}"
    count = 40
    for n in range(count):
        publish(queue, {"n": n}, f"tok-{n}", {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
    reporter = Recorder()
    worker = Worker(
        queue,
        lambda body: {"n": body["n"]},
        transport_url=MEMORY,
        reporter=reporter,
        poll_interval=0.05,
        transport_options=FAST,
        concurrency=2,
        plugins=plugins,
    )
    worker.start()
    try:
        wait_for(lambda: len(reporter.calls) == count, 10, f"{count} reports")
        # The exporter is still retrying: the stop does not wait for it.
        wait_for(lambda: tracing._exporter and tracing._exporter.stuck, 5, "a failed export")
    finally:
        assert worker.stop(timeout=otel_worker.STOP_FLUSH_SECONDS + 5)
    assert sorted(reporter.calls) == sorted(("succeeded", f"tok-{n}") for n in range(count))
    stats = worker.stats
    assert (stats.received, stats.succeeded, stats.kept) == (count, count, 0)


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
