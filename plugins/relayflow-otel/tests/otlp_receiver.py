"""A tiny OTLP/HTTP trace receiver for tests: real protobuf over a real loopback socket.

Usage::

    with OtlpReceiver() as receiver:
        endpoint = receiver.endpoint          # "http://127.0.0.1:<port>"
        ...                                   # point the exporter at endpoint
        spans = receiver.wait_for(lambda spans: len(spans) >= 3, timeout=10.0)

Every span is a plain dict with the keys ``trace_id``, ``span_id``, ``parent_span_id`` (lower
hex, ``""`` when absent), ``name``, ``kind`` (the protobuf enum number: 1 internal, 2 server,
3 client, 4 producer, 5 consumer), ``start_ns``, ``end_ns``, ``attributes`` (dict of plain
values), ``links`` (list of ``{"trace_id", "span_id", "attributes"}``), ``status``
(``{"code": "UNSET" | "OK" | "ERROR", "message": str}``), ``resource`` (dict of the resource's
attributes) and ``scope`` (the instrumentation scope's name).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Span = dict[str, Any]

_STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(value: AnyValue) -> Any:
    """One OTLP ``AnyValue`` as a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    """A repeated ``KeyValue`` as a dict."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = _value(pair.value)
    return result


def decode(body: bytes) -> list[Span]:
    """The spans of one ``ExportTraceServiceRequest`` body, as plain dicts."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": int(span.kind),
                        "start_ns": int(span.start_time_unix_nano),
                        "end_ns": int(span.end_time_unix_nano),
                        "attributes": _attributes(span.attributes),
                        "links": [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": _attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        "status": {
                            "code": _STATUS_NAMES.get(int(span.status.code), "UNSET"),
                            "message": span.status.message,
                        },
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                    }
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP protobuf receiver on a free loopback port, serving from a daemon thread.

    Attributes:
        endpoint: The base URL to give an exporter (``OTEL_EXPORTER_OTLP_ENDPOINT`` style; the
            exporter appends ``/v1/traces``).
        traces_url: The full URL spans are posted to.
        requests: How many export requests arrived (including rejected ones).
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._spans: list[Span] = []
        self.requests = 0
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    spans = decode(body) if self.path.rstrip("/") == "/v1/traces" else None
                except Exception:  # a broken body is a 400, as a collector answers
                    spans = None
                receiver._received(spans)
                if spans is None:
                    self.send_response(400 if self.path.rstrip("/") == "/v1/traces" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read spans, not access logs."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.traces_url = f"{self.endpoint}/v1/traces"
        self._thread: threading.Thread | None = None

    def _received(self, spans: list[Span] | None) -> None:
        with self._lock:
            self.requests += 1
            if spans:
                self._spans.extend(spans)
            self._lock.notify_all()

    def start(self) -> OtlpReceiver:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() returns quickly
            name="otlp-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def spans(self) -> list[Span]:
        """A copy of every span received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        """Forget the spans received so far."""
        with self._lock:
            self._spans.clear()

    def wait_for(
        self, predicate: Callable[[list[Span]], bool], timeout: float = 10.0
    ) -> list[Span]:
        """Wait until ``predicate(spans)`` is true; returns the spans.

        Raises:
            AssertionError: If the predicate is still false after ``timeout`` seconds; the
                message lists the span names received, to show what was missing.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [span["name"] for span in self._spans]
                    raise AssertionError(
                        f"OTLP receiver: condition not met within {timeout}s; "
                        f"{len(names)} spans received: {names}"
                    )
                self._lock.wait(left)
            return list(self._spans)

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[Span]:
        """Wait until at least ``count`` spans arrived; returns them all."""
        return self.wait_for(lambda spans: len(spans) >= count, timeout)

    def traces(self) -> dict[str, list[Span]]:
        """The spans received so far, grouped by trace id."""
        grouped: dict[str, list[Span]] = {}
        for span in self.spans:
            grouped.setdefault(span["trace_id"], []).append(span)
        return grouped
