"""Function Compute handlers continue the task's trace: `context.tracing`, and a span with otel.

The handlers are this module's functions (``test_worker_fc:...``); each invocation goes through
a real `FcIntegration`, with the request headers the engine side of relayflow-otel sets, and
last under a real engine traced by that engine side. Spans
go through the official OTLP/HTTP exporter to the real receiver of otlp_receiver.py; the
provider is given with `use_provider` (never the process's global one).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otlp_receiver import OtlpReceiver

import relayflow_otel.worker as otel_worker
from relayflow.engine import Engine, Failed, Succeeded, TaskRequest
from relayflow.plugins import PluginManager
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow_fc import FcContext, FcIntegration, FcSettings
from relayflow_otel import enable
from relayflow_otel.config import OtelSettings, resolve

SERVER = 2
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TASK_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{TASK_SPAN}-01"
PROVIDER: list[TracerProvider] = []  # the test's provider, for the handlers' own spans


class SoldOut(Exception):
    """A handler's own error."""


def book(event: bytes, context: FcContext) -> dict[str, Any]:
    """Say what the handler saw; open a span of its own with the test's provider, if any."""
    seen = {
        "traceparent": context.tracing.traceparent,
        "tracestate": context.tracing.tracestate,
        "span_context": context.tracing.span_context,
        "current": f"{trace.get_current_span().get_span_context().span_id:016x}",
    }
    if PROVIDER:
        with PROVIDER[0].get_tracer("trip").start_as_current_span("reserve seat"):
            pass
    if json.loads(event).get("soldOut"):
        raise SoldOut("no seats")
    return seen


def invoke(headers: dict[str, str], **event: Any) -> Any:
    fc = FcIntegration(FcSettings(functions={"trip/book": "test_worker_fc:book"}))
    return asyncio.run(asyncio.wait_for(fc.invoke(trip_request(headers, **event)), 5))


def trip_request(headers: dict[str, str], **event: Any) -> TaskRequest:
    return TaskRequest(
        flow_name="trip",
        execution_name="run-1",
        step_name="book",
        task_id=3,
        token="token-1",
        resource="acs:fc:cn-hangzhou::services/trip/functions/book",
        pattern="requestResponse",
        input=event,
        service_params=None,
        timeout_seconds=5,
        attempt=1,
        headers=headers,
    )


@pytest.fixture
def traced(otlp: OtlpReceiver) -> Iterator[TracerProvider]:
    """relayflow-otel on in this process, as its engine side turns it on; spans to the receiver."""
    processor = SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp.traces_url))
    resource = Resource({"service.name": "relayflow"})
    provider = otel_worker.trace_handlers(resource, processor, make_global=False)
    PROVIDER.append(provider)
    yield provider
    PROVIDER.clear()
    otel_worker.use_provider(None)
    processor.shutdown()


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """relayflow-otel installed, but not tracing in this process (no endpoint, no provider)."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    otel_worker.use_provider(None)
    yield
    otel_worker.use_provider(None)


def test_the_handler_reads_the_tasks_trace_in_context_tracing(untraced: None) -> None:
    outcome = invoke({"traceparent": TRACEPARENT, "tracestate": "rojo=00f067aa0ba902b7"})
    assert outcome == Succeeded(
        {
            "traceparent": TRACEPARENT,
            "tracestate": "rojo=00f067aa0ba902b7",
            "span_context": f"{TRACE_ID}:{TASK_SPAN}:0:01",
            "current": "0000000000000000",  # no span: nothing traces in this process
        }
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-not-hex-01"},
        {"traceparent": f"ff-{TRACE_ID}-{TASK_SPAN}-01"},  # the forbidden version
        {"traceparent": f"00-{'0' * 32}-{TASK_SPAN}-01"},  # an all-zero trace id
        {"tracestate": "rojo=1"},  # a state without a parent means nothing
    ],
    ids=["none", "garbage", "version-ff", "zero-trace", "state-only"],
)
def test_a_missing_or_bad_traceparent_is_an_empty_tracing(
    untraced: None, headers: dict[str, str]
) -> None:
    outcome = invoke(headers)
    assert isinstance(outcome, Succeeded)
    assert outcome.output["traceparent"] == outcome.output["span_context"] == ""


def test_a_tracestate_past_the_w3c_limit_is_left_out(untraced: None) -> None:
    outcome = invoke({"traceparent": TRACEPARENT, "tracestate": "k=" + "v" * 511})
    assert isinstance(outcome, Succeeded)
    assert (outcome.output["traceparent"], outcome.output["tracestate"]) == (TRACEPARENT, "")


def test_with_otel_on_the_handler_runs_in_a_span_continuing_the_task(
    traced: TracerProvider, otlp: OtlpReceiver
) -> None:
    outcome = invoke({"traceparent": TRACEPARENT})
    assert isinstance(outcome, Succeeded)
    failed = invoke({"traceparent": TRACEPARENT}, soldOut=True)
    assert failed == Failed("SoldOut", "no seats")
    spans = otlp.wait_for_spans(4)
    handlers = sorted(
        (span for span in spans if span["kind"] == SERVER), key=lambda span: span["start_ns"]
    )
    assert [span["name"] for span in handlers] == ["trip/book", "trip/book"]
    for span in handlers:
        assert (span["trace_id"], span["parent_span_id"]) == (TRACE_ID, TASK_SPAN)
    ok, sold_out = handlers
    assert outcome.output["current"] == ok["span_id"]  # current while the handler ran
    assert ok["attributes"] == {
        "faas.name": "book",
        "faas.invocation_id": ok["attributes"]["faas.invocation_id"],
        "faas.trigger": "other",
        "cloud.provider": "alibaba_cloud",
        "cloud.region": "cn-hangzhou",
        "relayflow.flow": "trip",
        "relayflow.execution": "run-1",
        "relayflow.step": "book",
        "relayflow.attempt": 1,
    }
    assert ok["status"]["code"] == "UNSET"
    assert ok["resource"]["service.name"] == "relayflow"
    assert sold_out["status"] == {"code": "ERROR", "message": "SoldOut: no seats"}
    own = [span for span in spans if span["name"] == "reserve seat"]
    assert sorted(span["parent_span_id"] for span in own) == sorted(
        [ok["span_id"], sold_out["span_id"]]
    )


def test_with_otel_on_a_request_without_a_trace_gets_no_span(
    traced: TracerProvider, otlp: OtlpReceiver
) -> None:
    outcome = invoke({})
    assert isinstance(outcome, Succeeded)
    spans = otlp.wait_for_spans(1)  # the handler's own span, a root: nothing to continue
    assert [(span["name"], span["parent_span_id"]) for span in spans] == [("reserve seat", "")]


TRIP = fdl("""
- type: task
  name: book
  resourceArn: acs:fc:cn-hangzhou::services/trip/functions/book
  timeoutSeconds: 10
""")


@bounded(seconds=20)
async def test_a_traced_engine_hands_its_task_span_to_the_handler(
    traced: TracerProvider, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    plugins = PluginManager()  # relayflow-otel's engine side, as `[otel] endpoint` turns it on
    tracer = enable(resolve(OtelSettings(endpoint=otlp.endpoint), {}), plugins)
    otel_worker.use_provider(traced)  # whatever enable() did, the handlers use the test's
    fc = FcIntegration(FcSettings(functions={"trip/book": "test_worker_fc:book"}))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        async with Engine(store, integrations=[fc], plugins=plugins, poll_seconds=0.1) as engine:
            await engine.create_flow("trip", TRIP)
            await engine.start_execution("trip", {}, name="run-1")
            done = await engine.describe_execution("trip", "run-1", wait_seconds=10)
    finally:
        tracer.close()
    assert done.status == "Succeeded" and done.output is not None
    names = ("execution trip", "step book", "task book", "trip/book", "reserve seat")
    spans = await asyncio.to_thread(
        otlp.wait_for, lambda found: {s["name"] for s in found} >= set(names), 10
    )
    by_name = {span["name"]: span for span in spans}
    assert len({by_name[name]["trace_id"] for name in names}) == 1
    task, handler, own = by_name["task book"], by_name["trip/book"], by_name["reserve seat"]
    assert handler["parent_span_id"] == task["span_id"]
    assert own["parent_span_id"] == handler["span_id"]
    assert done.output["traceparent"] == f"00-{task['trace_id']}-{task['span_id']}-01"
    assert done.output["current"] == handler["span_id"]


FC_README = (Path(__file__).resolve().parents[2] / "relayflow-fc" / "README.md").read_text()


def test_the_fc_readme_tracing_example_nests_its_span(
    traced: TracerProvider, otlp: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = FC_README.split("## Tracing")[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (tmp_path / "fc_readme_tracing.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fc_readme_tracing")
    # The example takes the global provider's tracer; this test's provider stands in for it.
    monkeypatch.setattr(module, "tracer", traced.get_tracer("trip_functions"))
    fc = FcIntegration(FcSettings(functions={"trip/book": "fc_readme_tracing:book_train"}))
    outcome = asyncio.run(
        asyncio.wait_for(fc.invoke(trip_request({"traceparent": TRACEPARENT})), 5)
    )
    assert outcome == Succeeded({"trainId": "T1"})
    spans = {span["name"]: span for span in otlp.wait_for_spans(2)}
    assert spans["reserve seat"]["parent_span_id"] == spans["trip/book"]["span_id"]
    assert spans["trip/book"]["parent_span_id"] == TASK_SPAN
