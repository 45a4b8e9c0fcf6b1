"""Handing the engine's ended spans to an exporter process, in batches of plain tuples.

Building OpenTelemetry SDK spans and encoding them costs about as much CPU as the engine's own
work for a trivial task step, and a thread of the engine's process would take that CPU (and the
interpreter's lock) from the event loop. So the engine's hooks only note each ended span as a
record of plain values (`exporter_process.expand`: EventIds, times, names) and append it to a
list; full lists (and, once a second, the last partial one) go to a thread that pickles them
into the stdin of `relayflow_otel.exporter_process` (a process of its own), which derives the
span ids, names and attributes, encodes the spans as OTLP/protobuf and posts them.

Bounds: at most ``max_queue_size`` spans wait in this process; more are dropped (and counted),
never waited for. A pipe that the exporter process does not read (a collector that does not
answer keeps it busy retrying) blocks that thread only. An exporter process that dies is
started again, `MAX_RESTARTS` times at most; after that spans are dropped quietly (one warning).
The exporter process reads until its stdin closes, so it ends with the engine's process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from relayflow_otel.config import ResolvedSettings
from relayflow_otel.export import FinishedSpan

__all__ = ["BATCH_SIZE", "MAX_RESTARTS", "PipeSink"]

log = logging.getLogger("relayflow.otel")

#: Spans sent to the exporter process at once (one export request each; the OTLP exporter
#: of the SDK batches as many).
BATCH_SIZE = 512
#: How often a partial batch is sent, in seconds.
SEND_EVERY_SECONDS = 1.0
#: Times a dead exporter process is started again before spans are dropped for good.
MAX_RESTARTS = 3
#: How long closing waits for the last spans to be handed over.
FLUSH_WAIT_SECONDS = 1.0
_SCOPE = ("relayflow_otel", "0.1.0")
_STOP = object()


def _frame(value: object) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(4, "big") + body


class PipeSink:
    """Ended spans -> batches of tuples -> the exporter process."""

    def __init__(
        self,
        traces_url: str,
        *,
        service_name: str,
        resource_attributes: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float = 10.0,
        max_queue_size: int = 32_768,
        command: list[str] | None = None,
    ) -> None:
        """Start the exporter process and the thread that feeds it.

        Args:
            traces_url: the OTLP/HTTP URL spans are posted to.
            service_name: the resource's `service.name`.
            resource_attributes: further resource attributes.
            headers: headers of each export request.
            timeout_seconds: the exporter's limit on one export, retries included.
            max_queue_size: ended spans kept at most in this process; more are dropped.
            command: the exporter process's command line (tests); by default this Python
                running the script `relayflow_otel/exporter_process.py`.

        Raises:
            OSError: the exporter process cannot be started.
        """
        self._settings = {
            "url": traces_url,
            "headers": dict(headers or {}),
            "timeout": timeout_seconds,
            "resource": {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                **dict(resource_attributes or {}),
                "service.name": service_name,
            },
            "scope": _SCOPE,
        }
        self._timeout = timeout_seconds
        # A script, not `-m`: importing the package would import relayflow (a third of a
        # second of CPU at every start); -P keeps this folder off its path.
        script = str(Path(__file__).with_name("exporter_process.py"))
        self._command = command or [sys.executable, "-P", script]
        self._batch_size = max(1, min(BATCH_SIZE, max_queue_size))
        self._max_waiting = max_queue_size
        self._lock = threading.Lock()
        self._batch: list[Any] = []  # span tuples and engine records
        self._waiting = 0  # spans in `_batches`, under `_lock`
        self._batches: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._dead = False
        self.dropped = 0  # spans dropped: the queue was full, or the exporter is gone
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._start_process()
        self._thread = threading.Thread(target=self._feed, name="relayflow-otel-pipe", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_settings(cls, settings: ResolvedSettings) -> PipeSink:
        """A sink exporting where the settings say (OTLP/HTTP)."""
        return cls(
            settings.traces_url,
            service_name=settings.service_name,
            resource_attributes=settings.resource_attributes,
            headers=settings.headers,
            timeout_seconds=settings.timeout_seconds,
            max_queue_size=settings.max_queue_size,
        )

    # -- the event loop's side: append, never wait ----------------------------------------------

    def emit(self, span: FinishedSpan) -> None:
        """Queue one ended span for export; never raises, never waits."""
        if not span.sampled or self._closed or self._dead:
            return
        values = (
            span.name,
            span.trace,
            span.span,
            span.parent or 0,
            span.kind._value_ + 1,  # the SDK's kinds count from 0, OTLP's from 1
            span.start,
            span.end,
            span.attributes,
            span.links,
            span.error,
            span.events,
        )
        with self._lock:
            self._batch.append(values)
            if len(self._batch) >= self._batch_size:
                self._hand_over()

    def emit_records(self, records: list[tuple[Any, ...]]) -> None:
        """Queue the engine's records of ended spans (`exporter_process.expand`), all sampled.

        The exporter process makes spans of them: the engine's loop only appends. Never
        raises, never waits.
        """
        if self._closed or self._dead:
            return
        with self._lock:
            batch = self._batch
            batch += records
            if len(batch) >= self._batch_size:
                self._hand_over()

    def _hand_over(self) -> None:
        """Move the current batch to the feeding thread, in batches of `BATCH_SIZE` at most.

        What would make more than ``max_queue_size`` spans wait is dropped (a transaction's
        records come at once, so the current batch may be longer than one).
        """
        batch, self._batch = self._batch, []
        room = max(0, self._max_waiting - self._waiting)
        if len(batch) > room:
            self.dropped += len(batch) - room
            del batch[room:]
        size = self._batch_size
        for start in range(0, len(batch), size):
            part = batch[start : start + size] if len(batch) > size else batch
            self._waiting += len(part)
            self._batches.put(part)

    # -- the feeding thread -------------------------------------------------------------------

    def _start_process(self) -> None:
        self.process = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True
        )
        self._write(_frame(self._settings))

    def _write(self, data: bytes) -> None:
        process = self.process
        if process is None or process.stdin is None:
            raise BrokenPipeError("no exporter process")
        stdin: IO[bytes] = process.stdin
        stdin.write(data)
        stdin.flush()

    def _send(self, batch: list[Any]) -> None:
        """Write one batch to the exporter process, starting it again if it died."""
        data = _frame(batch)
        while not self._dead:
            try:
                self._write(data)
                return
            except (OSError, ValueError):  # a broken pipe: the process died
                if self._closed:  # not started again to flush the last spans: dropped
                    break
                self._restart()
        self.dropped += len(batch)

    def _restart(self) -> None:
        if self.restarts >= MAX_RESTARTS:
            if not self._dead:
                log.warning(
                    "relayflow-otel: the exporter process died %d times; spans are dropped",
                    self.restarts + 1,
                )
            self._dead = True
            return
        self.restarts += 1
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        try:
            self._start_process()
        except (OSError, ValueError):
            log.debug("relayflow-otel cannot start the exporter process", exc_info=True)

    def _feed(self) -> None:
        while True:
            try:
                item = self._batches.get(timeout=SEND_EVERY_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._hand_over()  # the partial batch, once a second
                continue
            if item is _STOP:
                break
            if isinstance(item, threading.Event):  # a flush: everything before it is sent
                item.set()
                continue
            self._send(item)
            with self._lock:
                self._waiting -= len(item)
        process = self.process
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the exporter sends what it has, then ends
            try:  # reaped here; one stuck on a collector that does not answer is ended
                process.wait(self._timeout + 2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- flush and close ------------------------------------------------------------------------

    def flush(self, wait_seconds: float = FLUSH_WAIT_SECONDS) -> bool:
        """Hand what has ended to the exporter process; wait at most ``wait_seconds``.

        Returns:
            Whether every span ended before the call was handed over within the wait.
        """
        done = threading.Event()
        with self._lock:
            self._hand_over()
            self._batches.put(done)
        return done.wait(wait_seconds)

    def close(self) -> None:
        """Flush (waiting a little), then let the exporter process finish and end."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        atexit.unregister(self.close)
        self._batches.put(_STOP)
