"""What the tests share: a real HTTP server on a free loopback port, and small helpers.

`request` builds the TaskRequest the engine would pass; `integration` an HttpIntegration that is
closed afterwards.

The server is a stdlib ThreadingHTTPServer serving on a daemon thread. Endpoints (any method):

- `/echo`: answers JSON of what it got (method, path, query, headers, body); `?status=401`
  answers with that status instead of 200;
- `/slow?seconds=N`: waits N seconds (or until the server stops), then answers;
- `/failing?key=K&times=N`: 503 for the first N calls with that key, then 200;
- `/text`: a plain-text answer;
- `/deny`: 401, quoting the Authorization header it got, as careless servers do;
- `/huge?bytes=N[&declare=1][&status=S]`: N bytes, chunked (or with Content-Length when
  declare=1); it records how much it managed to send before the client hung up;
- `/callback`: answers 202, then calls `on_callback(token, body)` on a thread of its own, with
  the `X-Relayflow-Task-Token` header and the parsed JSON body;
- `/redirect?to=URL[&status=S]`: answers 302 (or S) with `Location: URL`;
- `/cookie`: answers 200 with `Set-Cookie: session=<SESSION_COOKIE>`;
- `/deep?depth=N[&strings=1]`: JSON arrays nested N deep; with strings=1 the innermost holds a
  string full of brackets and an escaped quote, which add no depth.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from relayflow.engine import TaskRequest
from relayflow_http import HttpIntegration, HttpSettings

TOKEN_HEADER = "X-Relayflow-Task-Token"
CHUNK = b"x" * 65536
SESSION_COOKIE = "session-cookie-4f1d9a"


def request(
    params: dict[str, Any] | None,
    *,
    pattern: str = "requestResponse",
    headers: dict[str, str] | None = None,
    timeout_seconds: int | None = None,
    input: dict[str, Any] | None = None,
) -> TaskRequest:
    """The TaskRequest the engine would pass for a step with these serviceParams."""
    return TaskRequest(
        flow_name="f",
        execution_name="e",
        step_name="call",
        task_id=3,
        token="token-3",
        resource="http:Request",
        pattern=pattern,
        input=input or {},
        service_params=params,
        timeout_seconds=timeout_seconds,
        attempt=0,
        headers=headers or {},
    )


@asynccontextmanager
async def integration(settings: HttpSettings | None = None) -> AsyncIterator[HttpIntegration]:
    """An HttpIntegration with these settings, its connections closed afterwards."""
    http = HttpIntegration(settings)
    try:
        yield http
    finally:
        await http.aclose()


@dataclass
class HugeRecord:
    """What one `/huge` answer sent before it ended."""

    total: int
    sent: int = 0
    cut_off: bool = False
    done: bool = False


@dataclass
class Seen:
    """One request as the server received it (`headers` by lowercase name, the last one wins)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class State:
    """What the endpoints share; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    huge: dict[str, HugeRecord] = field(default_factory=dict)
    huge_done: threading.Condition = field(default_factory=threading.Condition)
    stopping: threading.Event = field(default_factory=threading.Event)
    on_callback: Callable[[str, Any], None] | None = None


class LocalApi(ThreadingHTTPServer):
    """The server; `url` is its base URL, `state` what it recorded."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = State()
        # A short poll interval: `shutdown` waits for the loop to notice.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> LocalApi:
        """Serve on a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake slow handlers, stop serving and close the socket."""
        self.state.stopping.set()
        self.shutdown()
        self.server_close()

    def seen_with(self, marker: str) -> list[Seen]:
        """The requests whose path and query contain ``marker``."""
        with self.state.lock:
            return [s for s in self.state.seen if marker in s.path + json.dumps(s.query)]

    def wait_huge(self, key: str, seconds: float) -> HugeRecord | None:
        """The record of the `/huge?key=...` answer once it has ended (None: still going)."""
        with self.state.huge_done:
            self.state.huge_done.wait_for(
                lambda: key in self.state.huge and self.state.huge[key].done, timeout=seconds
            )
            record = self.state.huge.get(key)
            return record if record is not None and record.done else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalApi

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        seen = Seen(
            self.command,
            parts.path,
            query,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            list(self.headers.items()),
        )
        state = self.server.state
        with state.lock:
            state.seen.append(seen)
        route = getattr(self, "_" + parts.path.strip("/"), None)
        if route is None:
            self._json(404, {"error": f"no endpoint {parts.path}"})
            return
        route(seen, {k: v[0] for k, v in query.items()})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, "application/json", json.dumps(value).encode())

    # -- endpoints ----------------------------------------------------------------------------

    def _echo(self, seen: Seen, query: dict[str, str]) -> None:
        try:
            parsed = json.loads(seen.body) if seen.body else None
        except ValueError:
            parsed = None
        self._json(
            int(query.get("status", 200)),
            {
                "method": seen.method,
                "path": seen.path,
                "query": seen.query,
                "headers": seen.headers,
                "body": seen.body,
                "json": parsed,
            },
        )

    def _slow(self, seen: Seen, query: dict[str, str]) -> None:
        self.server.state.stopping.wait(float(query.get("seconds", 5)))
        self._json(200, {"slept": True})

    def _failing(self, seen: Seen, query: dict[str, str]) -> None:
        state = self.server.state
        key = query.get("key", "")
        with state.lock:
            state.calls[key] += 1
            calls = state.calls[key]
        if calls <= int(query.get("times", 1)):
            self._json(503, {"error": "busy", "call": calls})
        else:
            self._json(200, {"calls": calls})

    def _text(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, "text/plain; charset=utf-8", "hello, wörld\n".encode())

    def _deny(self, seen: Seen, query: dict[str, str]) -> None:
        credentials = seen.headers.get("authorization", "")
        self._send(401, "text/plain", f"the credentials {credentials} were rejected".encode())

    def _huge(self, seen: Seen, query: dict[str, str]) -> None:
        state = self.server.state
        record = HugeRecord(int(query["bytes"]))
        key = query.get("key", "")
        with state.huge_done:
            state.huge[key] = record
        self.send_response(int(query.get("status", 200)))
        self.send_header("Content-Type", "application/octet-stream")
        declare = query.get("declare") == "1"
        if declare:
            self.send_header("Content-Length", str(record.total))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while record.sent < record.total:
                piece = CHUNK[: record.total - record.sent]
                if declare:
                    self.wfile.write(piece)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                record.sent += len(piece)
            if not declare:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up: what the size limit is for
            record.cut_off = True
            self.close_connection = True
        finally:
            with state.huge_done:
                record.done = True
                state.huge_done.notify_all()

    def _callback(self, seen: Seen, query: dict[str, str]) -> None:
        token = self.headers.get(TOKEN_HEADER, "")
        self._json(202, {"accepted": True})
        self.wfile.flush()
        callback = self.server.state.on_callback
        if callback is not None:
            body = json.loads(seen.body) if seen.body else None
            threading.Thread(target=callback, args=(token, body), daemon=True).start()

    def _redirect(self, seen: Seen, query: dict[str, str]) -> None:
        self.send_response(int(query.get("status", 302)))
        self.send_header("Location", query["to"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cookie(self, seen: Seen, query: dict[str, str]) -> None:
        data = b'{"cookie": "set"}'
        self.send_response(200)
        self.send_header("Set-Cookie", f"session={SESSION_COOKIE}; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _deep(self, seen: Seen, query: dict[str, str]) -> None:
        depth = int(query["depth"])
        inner = json.dumps('[{"' + "[" * 500) if query.get("strings") == "1" else ""
        text = "[" * depth + inner + "]" * depth
        self._send(200, "application/json", text.encode())
