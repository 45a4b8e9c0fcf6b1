"""The exporter process: reads batches of span tuples on stdin, posts them as OTLP/HTTP.

`relayflow_otel.pipe.PipeSink` starts it (``python -m relayflow_otel.exporter_process``) so that
encoding and sending spans costs the engine's process nothing but a pickle per batch: Python
threads share one interpreter lock, another process does not.

Its stdin carries frames: 4 bytes (big-endian length) then a pickle. The first frame is the
settings (a dict: `url`, `headers`, `timeout`, `resource`, `scope`); every other one is a list of
span tuples (`relayflow_otel.otlp`). It exits when stdin ends (the engine closed it, or the
engine's process is gone), a few seconds after its parent process has gone whatever holds
stdin, and on no signal but SIGTERM/SIGKILL (Ctrl-C in a terminal reaches the engine, which
closes the pipe). A failed export is retried with a growing pause within `timeout` seconds,
then its spans are dropped; the first failure of a run of them is written to stderr.
"""

from __future__ import annotations

import http.client
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from relayflow_otel.otlp import encode

#: Seconds a parent that has gone is given (its pipe is normally closed at once) before exit.
ORPHAN_GRACE_SECONDS = 5.0
#: The largest frame read (a batch of spans); a longer one means a broken pipe protocol.
MAX_FRAME = 256 * 1024 * 1024
_RETRY = frozenset({429, 502, 503, 504})


def read_frame(stream: BinaryIO) -> Any:
    """The next frame's object, or None at the end of the stream."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


class Poster:
    """POSTs request bodies to one OTLP/HTTP URL over a kept-alive connection."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        """Aim at ``url``; ``timeout`` bounds one export, retries included."""
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {**headers, "Content-Type": "application/x-protobuf"}
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self.failing = False

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=timeout)
        self._connection.timeout = timeout
        return self._connection

    def _once(self, body: bytes, timeout: float) -> tuple[bool, str]:
        """(whether to stop trying, what went wrong or "")."""
        connection = self._connect(timeout)
        try:
            connection.request("POST", self._path, body, self._headers)
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self._connection = None
            return False, f"{type(exc).__name__}: {exc}"
        if 200 <= answer.status < 300:
            return True, ""
        problem = f"HTTP {answer.status} {answer.reason}"
        return answer.status not in _RETRY, problem

    def post(self, body: bytes) -> bool:
        """Send one body, retrying within the timeout; whether the collector took it."""
        deadline = time.monotonic() + self._timeout
        pause = 0.25
        while True:
            left = deadline - time.monotonic()
            done, problem = self._once(body, max(0.05, left))
            if done and not problem:
                self.failing = False
                return True
            left = deadline - time.monotonic()
            if done or left <= pause:
                if not self.failing:  # once a run of failures, not once an export
                    print(
                        f"relayflow-otel: spans dropped: the collector at {self._host} "
                        f"did not take them ({problem})",
                        file=sys.stderr,
                        flush=True,
                    )
                self.failing = True
                return False
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _watch_parent(parent: int) -> None:
    """Exit a little while after the parent has gone, should a descendant hold the pipe."""
    while os.getppid() == parent:
        time.sleep(1.0)
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(0)


def main() -> int:
    """Export what stdin brings until it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when this ends
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    stdin = sys.stdin.buffer
    settings = read_frame(stdin)
    if not isinstance(settings, dict):
        return 0
    poster = Poster(str(settings["url"]), dict(settings["headers"]), float(settings["timeout"]))
    resource = dict(settings["resource"])
    scope = tuple(settings["scope"])
    while True:
        batch = read_frame(stdin)
        if batch is None:
            return 0
        try:
            body, left_out = encode(batch, resource, (str(scope[0]), str(scope[1])))
        except Exception as exc:  # not a list of spans: said, dropped, the next goes on
            print(f"relayflow-otel: a batch of spans was dropped: {exc}", file=sys.stderr)
            continue
        if left_out:
            print(f"relayflow-otel: {left_out} malformed spans dropped", file=sys.stderr)
        poster.post(body)


if __name__ == "__main__":
    sys.exit(main())
