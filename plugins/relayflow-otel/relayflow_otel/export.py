"""Handing ended spans to the official SDK: a bounded `BatchSpanProcessor` and an OTLP exporter.

Spans are built here with the ids `relayflow_otel.ids` computed (the SDK's tracer would draw
random ones), as `ReadableSpan`s, and given to the processor as if a tracer had ended them.
The processor keeps them in a bounded queue that a thread of its own empties: a full queue
drops spans, an unreachable collector costs that thread its time, and the engine's event loop
never waits on either.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from relayflow_otel.config import ResolvedSettings
from relayflow_otel.ids import micros

__all__ = ["FinishedSpan", "SpanSink", "build_exporter"]

log = logging.getLogger("relayflow.otel")

_SCOPE = InstrumentationScope("relayflow_otel", "0.1.0")
#: How long closing the engine waits for the last spans to leave (a dead collector costs this).
FLUSH_WAIT_SECONDS = 1.0
#: An export running longer than this means the collector is not answering: no flush waits.
STUCK_SECONDS = 0.25
#: How often the processor's thread sends what has queued up.
SCHEDULE_DELAY_MILLIS = 1000


@dataclass(slots=True)
class FinishedSpan:
    """One ended span, in relayflow's terms.

    Attributes:
        name: the span's name.
        trace: its trace id; span and parent: its span id and its parent's (None: a root).
        sampled: whether its trace is sampled (an unsampled span is never exported).
        kind: the OpenTelemetry span kind.
        start, end: seconds since the epoch.
        attributes: plain values.
        links: (trace id, span id, attributes) of linked spans.
        error: (error name, cause) when the span failed; its status is then ERROR.
        events: (name, time in seconds, attributes) inside the span.
    """

    name: str
    trace: int
    span: int
    parent: int | None
    sampled: bool
    kind: SpanKind
    start: float
    end: float
    attributes: dict[str, Any] = field(default_factory=dict)
    # Tuples, not lists: a tuple of plain values is left alone by the garbage collector, and
    # thousands of spans wait for export at any moment.
    links: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    error: tuple[str, str] | None = None
    events: tuple[tuple[str, float, dict[str, Any]], ...] = ()


def _ns(seconds: float) -> int:
    # To the microsecond, as the history keeps times (`ids.micros`): a span started before a
    # restart and ended after it has the same start whichever process reads it.
    return micros(seconds) * 1000


def _flags(sampled: bool) -> TraceFlags:
    return TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)


def build_exporter(settings: ResolvedSettings) -> SpanExporter:
    """The OTLP exporter the settings name (HTTP/protobuf, or gRPC when installed)."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter as GrpcExporter,
        )

        endpoint = settings.traces_url.removesuffix("/v1/traces")
        exporter: SpanExporter = GrpcExporter(
            endpoint=endpoint, headers=settings.headers, timeout=settings.timeout_seconds
        )
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=settings.traces_url,
        headers=settings.headers,
        timeout=settings.timeout_seconds,
    )


class _Once(SpanExporter):
    """An exporter whose shutdown may be called early (to cut a retry short) and again."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._down = False
        self._since: float | None = None  # when the export under way began
        self._failed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._since = time.monotonic()
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        self._failed = result is not SpanExportResult.SUCCESS
        self._since = None
        return result

    @property
    def stuck(self) -> bool:
        """Whether the collector looks unreachable: the last export failed, or one drags on."""
        since = self._since
        return self._failed or (since is not None and time.monotonic() - since > STUCK_SECONDS)

    def shutdown(self) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class SpanSink:
    """Where ended spans go: built into SDK spans and queued for the exporter's thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        service_name: str,
        resource_attributes: Mapping[str, str] | None = None,
        max_queue_size: int = 2048,
        export_timeout_seconds: float = 10.0,
    ) -> None:
        """Start the processor's thread.

        Args:
            exporter: the SDK exporter spans go to.
            service_name: the resource's `service.name`.
            resource_attributes: further resource attributes.
            max_queue_size: ended spans kept at most while they wait; more are dropped.
            export_timeout_seconds: the processor's limit on one export.
        """
        attributes: dict[str, str] = {
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            **dict(resource_attributes or {}),
            "service.name": service_name,
        }
        self.resource = Resource(attributes)
        self._exporter = _Once(exporter)
        self._processor = BatchSpanProcessor(
            self._exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=SCHEDULE_DELAY_MILLIS,
            max_export_batch_size=min(512, max_queue_size),
            export_timeout_millis=export_timeout_seconds * 1000,
        )
        self._timeout = export_timeout_seconds
        self._closed = False
        self.dropped = 0  # spans that could not be built or queued
        atexit.register(self.close)

    @property
    def processor(self) -> BatchSpanProcessor:
        """The SDK processor spans are queued in (FC handlers' spans share it)."""
        return self._processor

    @classmethod
    def from_settings(cls, settings: ResolvedSettings) -> SpanSink:
        """A sink exporting where the settings say."""
        return cls(
            build_exporter(settings),
            service_name=settings.service_name,
            resource_attributes=settings.resource_attributes,
            max_queue_size=settings.max_queue_size,
            export_timeout_seconds=settings.timeout_seconds,
        )

    def emit(self, span: FinishedSpan) -> None:
        """Queue one ended span for export; never raises, never waits."""
        if not span.sampled or self._closed:
            return
        try:
            self._processor.on_end(self._readable(span))
        except Exception:  # a span that cannot be built is dropped, not the engine
            self.dropped += 1
            log.debug("relayflow-otel dropped span %s", span.name, exc_info=True)

    def _readable(self, span: FinishedSpan) -> ReadableSpan:
        flags = _flags(span.sampled)
        context = SpanContext(span.trace, span.span, is_remote=False, trace_flags=flags)
        parent = (
            SpanContext(span.trace, span.parent, is_remote=False, trace_flags=flags)
            if span.parent is not None
            else None
        )
        status = Status(StatusCode.UNSET)
        if span.error is not None:
            error, cause = span.error
            status = Status(StatusCode.ERROR, f"{error}: {cause}"[:1000] if cause else error)
        links: Sequence[Link] = [
            Link(
                SpanContext(trace, linked, is_remote=True, trace_flags=_flags(True)),
                attributes,
            )
            for trace, linked, attributes in span.links
        ]
        events = [Event(name, attributes, _ns(when)) for name, when, attributes in span.events]
        start = _ns(span.start)
        return ReadableSpan(
            name=span.name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=span.attributes,
            events=events,
            links=links,
            kind=span.kind,
            status=status,
            start_time=start,
            end_time=max(start, _ns(span.end)),
            instrumentation_scope=_SCOPE,
        )

    def flush(self, wait_seconds: float = FLUSH_WAIT_SECONDS) -> bool:
        """Send what is queued; wait at most ``wait_seconds`` for it (on a thread of its own).

        A collector that failed the last export, or is slow to answer the current one, is not
        waited for at all: the flush still goes on in the background.

        Returns:
            Whether the flush ended within the wait.
        """
        if self._exporter.stuck:
            wait_seconds = 0.0
        done = threading.Event()

        def run() -> None:
            try:
                self._processor.force_flush(int(self._timeout * 1000))
            except Exception:
                log.debug("relayflow-otel flush failed", exc_info=True)
            done.set()

        threading.Thread(target=run, name="relayflow-otel-flush", daemon=True).start()
        return done.wait(wait_seconds)

    def close(self) -> None:
        """Flush (waiting a little), then stop the processor's thread without waiting on it."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        atexit.unregister(self.close)
        self._exporter.shutdown()  # a retry against a dead collector stops at once
        # shutdown() joins the export thread, which a dead collector may hold: do it aside.
        threading.Thread(
            target=self._processor.shutdown, name="relayflow-otel-shutdown", daemon=True
        ).start()
