"""The test receiver decodes what the official OTLP/HTTP exporter sends."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from otlp_receiver import OtlpReceiver


def test_receiver_decodes_spans_sent_by_the_sdk_exporter(otlp: OtlpReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "probe"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp.traces_url, timeout=5))
    )
    tracer = provider.get_tracer("probe-scope")
    with (
        tracer.start_as_current_span("outer") as outer,
        tracer.start_as_current_span("inner", attributes={"n": 3, "s": "x"}) as inner,
    ):
        inner.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    spans = {span["name"]: span for span in otlp.wait_for_spans(2)}
    assert spans["inner"]["parent_span_id"] == spans["outer"]["span_id"]
    assert spans["inner"]["trace_id"] == f"{outer.get_span_context().trace_id:032x}"
    assert spans["outer"]["parent_span_id"] == ""
    assert spans["inner"]["attributes"] == {"n": 3, "s": "x"}
    assert spans["inner"]["status"] == {"code": "ERROR", "message": "boom"}
    assert spans["inner"]["resource"]["service.name"] == "probe"
    assert spans["inner"]["scope"] == "probe-scope"
    assert spans["inner"]["start_ns"] <= spans["inner"]["end_ns"]
