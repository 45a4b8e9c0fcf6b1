"""The trace an invocation belongs to: `context.tracing`, and a span when relayflow-otel is on.

A task request carries the W3C trace context of its task attempt in its headers (`traceparent`,
`tracestate`) when the engine traces (relayflow-otel's engine side puts them there). The handler
reads it as `context.tracing`, shaped like Function Compute's own: `span_context` in the
`trace-id:span-id:parent-span-id:flags` form FC gives, `span_baggages` and `jaeger_endpoint`, plus
the W3C headers themselves.

When relayflow-otel is installed and traces in this process, the handler also runs inside a
SERVER span continuing that context (`relayflow_otel.worker.handler_span`), so spans the handler
opens with OpenTelemetry nest under it. relayflow-fc does not depend on OpenTelemetry: without
relayflow-otel, `context.tracing` is all there is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

__all__ = ["MAX_TRACESTATE_CHARS", "SpanOpener", "Tracing", "span_opener", "tracing_of"]

log = logging.getLogger("relayflow_fc")

#: W3C Trace Context's own limit on `tracestate`; a longer one is left out.
MAX_TRACESTATE_CHARS: Final = 512

_TRACEPARENT: Final = re.compile(r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

#: Opens the handler's span on the handler's thread; None when nothing traces here.
SpanOpener = Callable[[], AbstractContextManager[Any] | None]


@dataclass(frozen=True, slots=True)
class Tracing:
    """`context.tracing`: the task attempt's trace.

    Attributes:
        traceparent: the W3C `traceparent` of the task attempt's span; "" when the engine
            traces nothing (or the header was not a valid one).
        tracestate: the W3C `tracestate` that came with it; "" when none, or longer than
            `MAX_TRACESTATE_CHARS`.
        span_context: the same trace in Function Compute's form,
            `trace-id:span-id:parent-span-id:flags` (parent-span-id is `0`); "" without one.
        span_baggages: baggage items; always empty here.
        jaeger_endpoint: None: relayflow runs no Jaeger agent.
    """

    traceparent: str = ""
    tracestate: str = ""
    span_context: str = ""
    span_baggages: dict[str, str] = field(default_factory=dict)
    jaeger_endpoint: str | None = None


def tracing_of(headers: Mapping[str, str]) -> Tracing:
    """The `Tracing` of a task request's headers (names matched case-insensitively)."""
    found = {name.lower(): value for name, value in headers.items() if isinstance(value, str)}
    parent = found.get("traceparent", "").strip()
    match = _TRACEPARENT.fullmatch(parent)
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return Tracing()
    state = found.get("tracestate", "").strip()
    if len(state) > MAX_TRACESTATE_CHARS:
        state = ""
    return Tracing(parent, state, f"{match[1]}:{match[2]}:0:{match[3]}")


def span_opener(name: str, tracing: Tracing, attributes: Mapping[str, Any]) -> SpanOpener | None:
    """What opens the handler's span, or None when there is no trace or no relayflow-otel."""
    if not tracing.traceparent:
        return None
    handler_span = _otel_handler_span()
    if handler_span is None:
        return None
    headers = {"traceparent": tracing.traceparent}
    if tracing.tracestate:
        headers["tracestate"] = tracing.tracestate

    def open_span() -> AbstractContextManager[Any] | None:
        try:
            return handler_span(name, headers, attributes)
        except Exception:  # a tracing bug must never fail the task
            log.exception("relayflow-otel could not open the span of fc handler %s", name)
            return None

    return open_span


@cache
def _otel_handler_span() -> Callable[..., AbstractContextManager[Any] | None] | None:
    """relayflow-otel's `handler_span`, imported once; None when it is not installed."""
    try:
        from relayflow_otel.worker import handler_span
    except ImportError:
        return None
    except Exception as exc:  # installed but broken: say so once, and run without spans
        log.warning("relayflow-otel is installed but does not import (%s); no fc spans", exc)
        return None
    return handler_span
