"""Encoding ended spans, as plain tuples, into one OTLP/protobuf `ExportTraceServiceRequest`.

The engine's process hands spans to the exporter process as tuples of plain values (cheap to
build on the event loop and to pickle in batches); this module, imported by the exporter
process only, turns a batch of them into the bytes an OTLP/HTTP collector takes. It fills the
fields relayflow's spans use and nothing more.

A span tuple holds, in this order (see `SPAN_FIELDS`): name, trace id (int, 128 bits), span id
(int, 64 bits), parent span id (0 for a root), kind (the OTLP number, `KIND_*`), start and end
in seconds since the epoch, attributes (a dict of plain values), links (a sequence of (trace id,
span id, attributes)), error ((name, cause) or None: the status is then ERROR with
"name: cause"), and events (a sequence of (name, seconds, attributes)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

__all__ = [
    "KIND_CLIENT",
    "KIND_CONSUMER",
    "KIND_INTERNAL",
    "KIND_PRODUCER",
    "KIND_SERVER",
    "SPAN_FIELDS",
    "SpanTuple",
    "encode",
]

#: The fields of a span tuple, in order.
SPAN_FIELDS = (
    "name",
    "trace",
    "span",
    "parent",
    "kind",
    "start",
    "end",
    "attributes",
    "links",
    "error",
    "events",
)
SpanTuple = tuple[Any, ...]

# OTLP's span kinds (trace.proto's SpanKind; the SDK's enum counts from 0 instead).
KIND_INTERNAL = 1
KIND_SERVER = 2
KIND_CLIENT = 3
KIND_PRODUCER = 4
KIND_CONSUMER = 5

#: Characters of a status message kept.
MAX_MESSAGE = 1_000
#: Items of a list attribute kept.
MAX_ARRAY = 128


def _ns(seconds: float) -> int:
    # To the microsecond, as the history keeps times (the SDK path rounds alike).
    return round(seconds * 1_000_000) * 1000


def _set(value: AnyValue, plain: Any, depth: int = 0) -> None:
    """Put one plain attribute value into ``value`` (bool before int: a bool is an int)."""
    if isinstance(plain, bool):
        value.bool_value = plain
    elif isinstance(plain, int):
        if -(1 << 63) <= plain < 1 << 63:
            value.int_value = plain
        else:  # OTLP's integers are 64 bits: a larger one is kept as its digits
            value.string_value = str(plain)
    elif isinstance(plain, float):
        value.double_value = plain
    elif isinstance(plain, str):
        value.string_value = plain
    elif isinstance(plain, list | tuple) and depth == 0:
        array = value.array_value
        for item in plain[:MAX_ARRAY]:
            _set(array.values.add(), item, 1)
    else:
        value.string_value = str(plain)


def _attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    for key, plain in attributes.items():
        pair = target.add()
        pair.key = key
        _set(pair.value, plain)


def encode(
    spans: Iterable[SpanTuple],
    resource: Mapping[str, Any],
    scope: tuple[str, str],
) -> tuple[bytes, int]:
    """One `ExportTraceServiceRequest` holding ``spans``, serialized, and how many were left out.

    A span that cannot be encoded (a malformed tuple) is left out; the others go.

    Args:
        spans: span tuples (see the module's docstring).
        resource: the resource's attributes (`service.name`, ...).
        scope: the instrumentation scope's (name, version).
    """
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _attributes(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = scope
    out = scope_spans.spans
    dropped = 0
    for one in spans:
        item = out.add()
        try:
            name, trace, span, parent, kind, start, end, attributes, links, error, events = one
            trace_bytes = trace.to_bytes(16, "big")
            item.trace_id = trace_bytes
            item.span_id = span.to_bytes(8, "big")
            if parent:
                item.parent_span_id = parent.to_bytes(8, "big")
            item.name = name
            item.kind = kind
            begin = _ns(start)
            item.start_time_unix_nano = begin
            item.end_time_unix_nano = max(begin, _ns(end))
            _attributes(item.attributes, attributes)
            if error is not None:
                error_name, cause = error
                item.status.code = Status.STATUS_CODE_ERROR
                item.status.message = (f"{error_name}: {cause}" if cause else error_name)[
                    :MAX_MESSAGE
                ]
            for linked_trace, linked_span, link_attributes in links:
                link = item.links.add()
                link.trace_id = linked_trace.to_bytes(16, "big")
                link.span_id = linked_span.to_bytes(8, "big")
                link.flags = 0x301  # sampled, in another process (the remote bits)
                _attributes(link.attributes, link_attributes)
            for event_name, when, event_attributes in events:
                event = item.events.add()
                event.name = event_name
                event.time_unix_nano = _ns(when)
                _attributes(event.attributes, event_attributes)
            item.flags = 0x101  # sampled; its parent is not remote (the bit saying so is set)
        except Exception:  # one malformed span is left out, not its batch
            del out[len(out) - 1]
            dropped += 1
    return request.SerializeToString(), dropped
