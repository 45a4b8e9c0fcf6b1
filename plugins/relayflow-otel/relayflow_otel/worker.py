"""The worker side of relayflow-otel: a span per task message, continuing the engine's trace.

`relayflow worker` loads this module through the entry-point group `relayflow.worker`. It is
inert (every hook returns at once, no thread, no socket) unless the standard OpenTelemetry
environment gives an endpoint::

    export OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318
    relayflow worker fnf-demo --handler jobs:handle

Then each message is handled inside a CONSUMER span named ``<queue> process``, the child of
the task span whose W3C ``traceparent`` the message carries, and that span is the current
context while the handler runs: spans a handler opens with
``opentelemetry.trace.get_tracer(__name__).start_as_current_span(...)`` nest under it and are
exported with it (the worker makes its provider the global one, unless one was set before).

The environment read (the standard variables; see WORKERS.md):

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: where spans go;
  without either the plugin is inert;
- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: inert all the same;
- ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``
  (the default), or ``grpc`` when opentelemetry-exporter-otlp-proto-grpc is installed;
- ``OTEL_SERVICE_NAME`` (default ``relayflow-worker``), ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_EXPORTER_OTLP_HEADERS`` / ``_TIMEOUT``,
  ``OTEL_BSP_*``: read by the OpenTelemetry SDK itself.

Spans are exported by the SDK's batch processor on its own thread, from a bounded queue that
drops spans when full: an unreachable collector never slows a message down. When the worker
stops, what is queued is flushed for at most `STOP_FLUSH_SECONDS`.

`handler_span` is the same service for Function Compute handlers run by relayflow-fc.

This module imports neither the OpenTelemetry SDK nor relayflow's engine or configuration:
`relayflow_otel.worker_spans`, which does the work, is imported once the environment asks for
spans (or a provider is given).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final

from relayflow.worker.hooks import WorkerInfo, WorkerMessage, hookimpl

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span

    from relayflow_otel.worker_spans import WorkerTracing, provider_from_env

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "MAX_ATTRIBUTE_CHARS",
    "STOP_FLUSH_SECONDS",
    "WorkerTracing",
    "env_asks_for_spans",
    "handler_span",
    "provider_from_env",
    "trace_handlers",
    "use_provider",
]

log = logging.getLogger("relayflow_otel.worker")

#: The service name of a worker's spans when neither OTEL_SERVICE_NAME nor
#: OTEL_RESOURCE_ATTRIBUTES names one.
DEFAULT_SERVICE_NAME: Final = "relayflow-worker"
#: The longest a stopping worker waits for its spans to be exported.
STOP_FLUSH_SECONDS: Final = 5.0
#: The instrumentation scope of the worker's and FC handlers' spans.
SCOPE: Final = "relayflow_otel.worker"
#: Attribute values taken from message headers are cut to this many characters.
MAX_ATTRIBUTE_CHARS: Final = 256

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_LAZY: Final = frozenset({"WorkerTracing", "provider_from_env"})


def __getattr__(name: str) -> Any:
    """`WorkerTracing` and `provider_from_env`, from `worker_spans` (with the SDK) when asked."""
    if name in _LAZY:
        from relayflow_otel import worker_spans

        return getattr(worker_spans, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def env_true(environ: Mapping[str, str], name: str) -> bool:
    """Whether the variable ``name`` says true (`true`, `1`, `yes`, `on`)."""
    return environ.get(name, "").strip().lower() in _TRUE


def env_asks_for_spans(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment turns the worker's spans on (an endpoint, nothing saying off)."""
    environ = os.environ if environ is None else environ
    if env_true(environ, "OTEL_SDK_DISABLED"):
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint and endpoint.strip())


# -- the module as a plugin: one WorkerTracing from the environment, made on first use ---------

_lock = threading.Lock()
_state: dict[str, WorkerTracing | None] = {}


def use_provider(provider: TracerProvider | None) -> None:
    """Use ``provider`` for this process's worker and FC handler spans (None: read the env again).

    For programs that set up OpenTelemetry themselves, and for tests; `relayflow worker` needs
    no call. The provider is not made the global one, and it is flushed, not shut down, when a
    worker stops.
    """
    with _lock:
        _state.clear()
        if provider is not None:
            from relayflow_otel.worker_spans import WorkerTracing

            _state["tracing"] = WorkerTracing(provider)


def _tracing() -> WorkerTracing | None:
    """The process's `WorkerTracing`, built from the environment once; None when off."""
    try:
        return _state["tracing"]
    except KeyError:
        pass
    with _lock:
        if "tracing" not in _state:
            _state["tracing"] = _from_env()
        return _state["tracing"]


def _from_env() -> WorkerTracing | None:
    if not env_asks_for_spans():  # the SDK is not even imported
        return None
    try:
        from opentelemetry import trace

        from relayflow_otel.worker_spans import WorkerTracing

        tracing = WorkerTracing.from_env()
    except Exception as exc:  # a bad variable must not stop the worker
        log.warning("relayflow-otel: worker spans are off: %s", exc)
        return None
    if tracing is not None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # Handlers' own spans (trace.get_tracer(...)) go to the same collector.
        trace.set_tracer_provider(tracing.provider)
    return tracing


@hookimpl
def relayflow_worker_started(worker: WorkerInfo) -> None:
    """Read the environment; when tracing is on, remember the broker's kind."""
    tracing = _tracing()
    if tracing is not None:
        tracing.relayflow_worker_started(worker)


@hookimpl
def relayflow_worker_message(message: WorkerMessage) -> AbstractContextManager[object] | None:
    """The message's span as a context manager; None when tracing is off."""
    tracing = _tracing()
    return None if tracing is None else tracing.relayflow_worker_message(message)


@hookimpl
def relayflow_worker_message_handled(message: WorkerMessage, outcome: str, seconds: float) -> None:
    """Put the outcome on the message's span."""
    tracing = _state.get("tracing")
    if tracing is not None:
        tracing.relayflow_worker_message_handled(message, outcome, seconds)


@hookimpl
def relayflow_worker_stopping(worker: WorkerInfo) -> None:
    """Flush the spans, for `STOP_FLUSH_SECONDS` at most."""
    tracing = _state.get("tracing")
    if tracing is not None:
        tracing.relayflow_worker_stopping(worker)


def trace_handlers(
    resource: Resource, processor: SpanProcessor, *, make_global: bool = True
) -> TracerProvider:
    """Trace the handlers this process runs (relayflow-fc's) with the engine's export pipeline.

    relayflow-otel's engine side calls it when tracing is on in a server: `handler_span` then
    opens spans on a provider with the engine's resource that hands them to the engine's
    span processor (which keeps owning it: the provider never shuts it down). With
    ``make_global``, the provider becomes the global one unless one was set before, so spans a
    handler opens with ``opentelemetry.trace.get_tracer(...)`` are exported too.

    Returns:
        The provider.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    provider = TracerProvider(
        resource=resource, sampler=ParentBased(ALWAYS_ON), shutdown_on_exit=False
    )
    provider.add_span_processor(processor)
    use_provider(provider)
    if make_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


def handler_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span] | None:
    """A span for a handler run in this process (relayflow-fc's), or None when tracing is off.

    The span continues ``headers``' W3C ``traceparent``/``tracestate`` (a task request's) and
    is the current span while entered, so the handler's own spans nest under it. Its provider
    is the one `use_provider` or `trace_handlers` gave (the engine side's, in a server), else
    the worker's from the environment once a worker started; without either, None.

    Args:
        name: the span's name.
        headers: the request's headers.
        attributes: the span's attributes.
    """
    tracing = _state.get("tracing")
    return None if tracing is None else tracing.handler_span(name, headers, attributes)
