"""How relayflow-otel's worker side makes spans, with the OpenTelemetry SDK.

`relayflow_otel.worker` is the entry point a worker loads; it imports this module (and with it
the SDK) only once the environment asks for spans, so an untraced worker starts as fast as
without the plugin. Everything here is described in WORKERS.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from relayflow.worker.hooks import WorkerInfo, WorkerMessage, hookimpl
from relayflow_otel.worker import (
    DEFAULT_SERVICE_NAME,
    MAX_ATTRIBUTE_CHARS,
    SCOPE,
    STOP_FLUSH_SECONDS,
    env_asks_for_spans,
)

__all__ = ["WorkerTracing", "provider_from_env"]

log = logging.getLogger("relayflow_otel.worker")

_PROPAGATOR: Final = TraceContextTextMapPropagator()
# The `messaging.system` of a broker URL scheme, in the semantic conventions' words.
_SYSTEMS: Final = {"amqp": "rabbitmq", "pyamqp": "rabbitmq", "amqps": "rabbitmq", "sqs": "aws_sqs"}
# Outcomes of the worker's log line that mean the task did not get its result as asked.
_ERROR_OUTCOMES: Final = {
    "failed": "the handler failed; the task was reported failed",
    "kept": "the report could not be made; the message will be delivered again",
    "refused": "the server refused the worker's credentials",
}


def _cut(value: str) -> str:
    return value if len(value) <= MAX_ATTRIBUTE_CHARS else value[:MAX_ATTRIBUTE_CHARS]


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    """The OTLP exporter the environment asks for, or None (with a warning) if it cannot be."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            log.warning(
                "relayflow-otel: OTEL_EXPORTER_OTLP_PROTOCOL is grpc, but "
                "opentelemetry-exporter-otlp-proto-grpc is not installed; worker spans are off"
            )
            return None
        exporter: SpanExporter = GrpcSpanExporter()
        return exporter
    log.warning(
        "relayflow-otel: OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, got %r; "
        "worker spans are off",
        protocol[:40],
    )
    return None


class _WatchedExporter(SpanExporter):
    """An exporter that remembers whether the collector answers, so a stop need not wait.

    The SDK's OTLP exporters retry an unreachable collector until their timeout (10 s by
    default); a stopping worker asks `stuck` and, when the collector failed or an export has
    been going on for `STUCK_AFTER_SECONDS`, drops the last spans at once instead.
    """

    STUCK_AFTER_SECONDS: Final = 1.0

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = False
        self.busy_since: float | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.busy_since = time.monotonic()
        try:
            result = self.inner.export(spans)
        except Exception:
            self.failed = True
            raise
        finally:
            self.busy_since = None
        self.failed = result is not SpanExportResult.SUCCESS
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    @property
    def stuck(self) -> bool:
        """Whether the last export failed, or the one going on has taken too long."""
        busy = self.busy_since
        return self.failed or (
            busy is not None and time.monotonic() - busy > self.STUCK_AFTER_SECONDS
        )


def provider_from_env() -> TracerProvider | None:
    """A tracer provider exporting over OTLP as the environment says, or None when it is off.

    Off means: no ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` nor ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    or ``OTEL_SDK_DISABLED`` true, or ``OTEL_TRACES_EXPORTER=none``, or a protocol that cannot
    be served (a warning says which). The SDK reads the rest of the variables itself.
    """
    built = _build_from_env()
    return None if built is None else built[0]


def _build_from_env() -> tuple[TracerProvider, _WatchedExporter] | None:
    environ = os.environ
    if not env_asks_for_spans(environ):
        return None
    inner = _exporter(environ)
    if inner is None:
        return None
    exporter = _WatchedExporter(inner)
    resource = Resource.create({})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


class _MessageSpan:
    """The span of one message: entered before the handler, ended once the outcome is known.

    The worker leaves the context after the report and calls `relayflow_worker_message_handled`
    with the outcome; whichever of the two comes last ends the span, so the outcome is on it
    either way.
    """

    __slots__ = ("_owner", "_token", "exited", "message", "outcome", "span")

    def __init__(self, owner: WorkerTracing, message: WorkerMessage, span: trace.Span) -> None:
        self._owner = owner
        self.message = message
        self.span = span
        self.outcome: str | None = None
        self.exited = False
        self._token: object | None = None

    def __enter__(self) -> trace.Span:
        self._owner._pending[threading.get_ident()] = self
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if exc is not None:  # the worker reports handler errors itself; this is a worker error
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.exited = True
        if self.outcome is not None or exc is not None:
            self.end()

    def set_outcome(self, outcome: str) -> None:
        self.outcome = outcome
        self.span.set_attribute("relayflow.outcome", _cut(outcome))
        problem = _ERROR_OUTCOMES.get(outcome)
        if problem is not None:
            self.span.set_status(Status(StatusCode.ERROR, problem))
        if self.exited:
            self.end()

    def end(self) -> None:
        ident = threading.get_ident()
        if self._owner._pending.get(ident) is self:
            del self._owner._pending[ident]
        self.span.end()


class WorkerTracing:
    """The worker hooks, around one tracer provider.

    The module registers an instance built from the environment (see the module's docstring);
    a program or a test may register its own with a provider of its choosing::

        plugins = WorkerPlugins()
        plugins.register(WorkerTracing(provider), "otel")

    Args:
        provider: where the spans go.
        owns_provider: shut the provider down when the worker stops (else only flush it).
    """

    def __init__(self, provider: TracerProvider, *, owns_provider: bool = False) -> None:
        self.provider = provider
        self.owns_provider = owns_provider
        self._exporter: _WatchedExporter | None = None
        self.tracer = provider.get_tracer(SCOPE)
        self._system = "unknown"
        # Message spans not ended yet, by handling thread (each thread holds one message).
        self._pending: dict[int, _MessageSpan] = {}

    @classmethod
    def from_env(cls) -> WorkerTracing | None:
        """The tracing the environment asks for (see `provider_from_env`), or None.

        It owns its provider, and a stop does not wait for a collector that does not answer.
        The provider is not made the global one (the module's own instance does that).

        Raises:
            ValueError: the SDK refuses a variable (such as ``OTEL_BSP_MAX_QUEUE_SIZE``).
        """
        built = _build_from_env()
        if built is None:
            return None
        tracing = cls(built[0], owns_provider=True)
        tracing._exporter = built[1]
        return tracing

    @hookimpl
    def relayflow_worker_started(self, worker: WorkerInfo) -> None:
        """Remember the broker's kind for `messaging.system`."""
        scheme = worker.transport.lower()
        self._system = _SYSTEMS.get(scheme, scheme or "unknown")

    @hookimpl
    def relayflow_worker_message(self, message: WorkerMessage) -> AbstractContextManager[object]:
        """The message's CONSUMER span, current while the handler runs."""
        stale = self._pending.pop(threading.get_ident(), None)
        if stale is not None:  # the previous message's outcome never came
            stale.span.end()
        carrier = {key.lower(): value for key, value in message.headers.items()}
        parent = _PROPAGATOR.extract(carrier)
        attributes: dict[str, str] = {
            "messaging.system": self._system,
            "messaging.operation.type": "process",
            "messaging.destination.name": _cut(message.queue),
        }
        for key, value in (
            ("relayflow.flow", message.flow),
            ("relayflow.execution", message.execution),
            ("relayflow.step", message.step),
            ("messaging.message.id", carrier.get("x-relayflow-message-id", "")),
        ):
            if value:
                attributes[key] = _cut(value)
        span = self.tracer.start_span(
            f"{_cut(message.queue)} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        return _MessageSpan(self, message, span)

    @hookimpl
    def relayflow_worker_message_handled(
        self, message: WorkerMessage, outcome: str, seconds: float
    ) -> None:
        """Put the outcome on the message's span (and end it if the handling is over)."""
        pending = self._pending.get(threading.get_ident())
        if pending is not None and (pending.message is message or pending.message == message):
            pending.set_outcome(outcome)

    @hookimpl
    def relayflow_worker_stopping(self, worker: WorkerInfo) -> None:
        """End what is left open and export it, waiting `STOP_FLUSH_SECONDS` at most."""
        for pending in list(self._pending.values()):
            pending.span.end()
        self._pending.clear()
        self.flush(STOP_FLUSH_SECONDS)

    def flush(self, seconds: float) -> None:
        """Export what is queued (and shut down an owned provider) within ``seconds``.

        The SDK's flush waits on the exporter, which retries a collector that does not answer
        until its own timeout: it runs on a daemon thread, waited for at most ``seconds``, and
        no longer once the collector is seen not to answer (then the last spans are dropped
        and the exporter's retries cut short).
        """

        def run() -> None:
            try:
                self.provider.force_flush(int(seconds * 1000))
                if self.owns_provider:
                    self.provider.shutdown()
            except Exception:  # never fail a stopping worker
                log.exception("relayflow-otel: exporting the last worker spans failed")

        thread = threading.Thread(target=run, name="relayflow-otel-flush", daemon=True)
        thread.start()
        deadline = time.monotonic() + seconds
        exporter = self._exporter
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.05)
            if exporter is not None and exporter.stuck:
                break
        if not thread.is_alive():
            return
        if exporter is not None and exporter.stuck:
            log.warning("relayflow-otel: the collector does not answer; the last spans are dropped")
            with contextlib.suppress(Exception):  # ends the exporter's retries at once
                exporter.shutdown()
        else:
            log.warning(
                "relayflow-otel: the collector did not take the last spans within %g s; "
                "they are dropped",
                seconds,
            )

    def handler_span(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> AbstractContextManager[trace.Span]:
        """A SERVER span continuing ``headers``' traceparent, current while it is entered."""
        carrier = {key.lower(): value for key, value in headers.items()}
        return self.tracer.start_as_current_span(
            _cut(name),
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=dict(attributes),
        )
