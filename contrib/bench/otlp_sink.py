"""An OTLP/HTTP trace sink: accepts `POST /v1/traces` (protobuf), counts spans, keeps a few.

A stand-in for an OpenTelemetry collector in benchmarks and for the plots of
docs/observability.md: a process of its own, so its work is not the measured process's. It
decodes every export request (as a collector does), answers 200, and counts spans and traces;
with ``--keep FILE`` it also writes the spans of the first ``--keep-traces`` traces it sees,
one JSON object a line (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,
attributes, service). ``GET /stats`` answers the counts as JSON. ``--fail`` answers every
export with 503, as a collector that is down but reachable would.

    .venv/bin/python contrib/bench/otlp_sink.py [--port 0] [--keep spans.jsonl]
        [--keep-traces 20] [--fail]

It prints `listening on http://127.0.0.1:PORT` once ready, and stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

#: The most bytes one export request may carry (the OTLP exporter batches 512 spans a request).
MAX_BODY = 64 * 2**20


def plain(value: Any) -> Any:
    """One OTLP AnyValue as a JSON value (arrays and key-value lists as lists and dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [plain(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {pair.key: plain(pair.value) for pair in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


class Sink:
    """The counts and the kept spans, shared by the request threads.

    Args:
        keep: where kept spans are written (None: keep none).
        keep_traces: how many traces (the first seen) to keep.
    """

    def __init__(self, keep: IO[str] | None, keep_traces: int) -> None:
        self.lock = threading.Lock()
        self.requests = self.spans = self.rejected = 0
        self.traces: set[bytes] = set()
        self.kept: set[bytes] = set()
        self.keep, self.keep_traces = keep, keep_traces

    def take(self, body: bytes) -> None:
        """Count (and perhaps keep) the spans of one decoded-able request body."""
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                service = ""
                for pair in resource_spans.resource.attributes:
                    if pair.key == "service.name":
                        service = pair.value.string_value
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans += 1
                        self.traces.add(span.trace_id)
                        self._maybe_keep(span, service)

    def _maybe_keep(self, span: Any, service: str) -> None:
        if self.keep is None:
            return
        if span.trace_id not in self.kept:
            if len(self.kept) >= self.keep_traces:
                return
            self.kept.add(span.trace_id)
        record = {
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex(),
            "name": span.name,
            "kind": int(span.kind),
            "start_ns": int(span.start_time_unix_nano),
            "end_ns": int(span.end_time_unix_nano),
            "status": int(span.status.code),
            "attributes": {pair.key: plain(pair.value) for pair in span.attributes},
            "service": service,
        }
        self.keep.write(json.dumps(record) + "\n")
        self.keep.flush()

    def stats(self) -> dict[str, int]:
        """The counts so far."""
        with self.lock:
            return {
                "requests": self.requests,
                "spans": self.spans,
                "traces": len(self.traces),
                "rejected": self.rejected,
            }


def make_handler(sink: Sink, fail: bool) -> type[BaseHTTPRequestHandler]:
    """The request handler class serving ``sink``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

        def reply(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/stats":
                self.reply(200, json.dumps(sink.stats()).encode(), "application/json")
            else:
                self.reply(404, b"", "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self.reply(413, b"", "text/plain")
                return
            body = self.rfile.read(length)
            if fail:
                self.reply(503, b"", "text/plain")
                return
            if self.path.rstrip("/") != "/v1/traces":
                self.reply(404, b"", "text/plain")
                return
            try:
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                sink.take(body)
            except Exception:  # a body that does not decode is the sender's fault: 400
                with sink.lock:
                    sink.rejected += 1
                self.reply(400, b"", "text/plain")
                return
            answer = ExportTraceServiceResponse().SerializeToString()
            self.reply(200, answer, "application/x-protobuf")

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: thousands of exports would flood the terminal."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free one")
    parser.add_argument("--keep", help="write the spans of the first traces here (JSON lines)")
    parser.add_argument("--keep-traces", type=int, default=20, help="how many traces to keep")
    parser.add_argument("--fail", action="store_true", help="answer every export with 503")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.keep_traces < 0:
        parser.error("--keep-traces must be 0 or more")
    keep = open(args.keep, "w", encoding="utf-8") if args.keep else None  # noqa: SIM115
    sink = Sink(keep, args.keep_traces)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(sink, args.fail))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if keep is not None:
            keep.close()
    print(json.dumps(sink.stats()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
