"""The exporter process: reads batches of span tuples on stdin, posts them as OTLP/HTTP.

`relayflow_otel.pipe.PipeSink` starts it (``python -P <this file>``, a script: it starts in a few
hundredths of a second) so that encoding and sending spans costs
the engine's process nothing but a pickle per batch: Python threads share one interpreter lock,
another process does not. It imports nothing but the standard library and the package's
`ids.py` (by its path): the few protobuf messages OTLP needs are written by hand (`encode`),
faster than the protobuf runtime builds them.

Its stdin carries frames: 4 bytes (big-endian length) then a pickle. The first frame is the
settings (a dict: `url`, `headers`, `timeout`, `resource`, `scope`); every other one is a list
of span tuples (below) and of the engine's records (`expand`), which become span tuples here.
It exits when stdin ends (the
engine closed it, or the engine's process is gone), a few seconds after its parent process has
gone whatever holds stdin, and on no signal but SIGTERM/SIGKILL (Ctrl-C in a terminal reaches
the engine, which closes the pipe). A failed export is retried with a growing pause within
`timeout` seconds, then its spans are dropped; the first failure of a run of them is written to
stderr.

Spans come as tuples of plain values (cheap to build on the event loop and to pickle in
batches); `encode` turns a batch of them into the bytes an OTLP/HTTP collector takes, filling
the fields relayflow's spans use and nothing more. `encode_batch` does the same for a batch of
span tuples and engine records in one pass (what the process runs).

A span tuple holds, in this order (see `SPAN_FIELDS`): name, trace id (int, 128 bits), span id
(int, 64 bits), parent span id (0 for a root), kind (the OTLP number, `KIND_*`), start and end
in seconds since the epoch, attributes (a dict of plain values), links (a sequence of (trace
id, span id, attributes)), error ((name, cause) or None: the status is then ERROR with "name:
cause"), and events (a sequence of (name, seconds, attributes)).
"""

from __future__ import annotations

import http.client
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

if __spec__ is not None and __spec__.parent:  # imported from the package
    from relayflow_otel.ids import micros, span_id, span_id_in
else:  # a script: the ids' module by its path, for the package would import relayflow
    import importlib.util
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location(
        "_relayflow_otel_ids", Path(__file__).with_name("ids.py")
    )
    assert _spec is not None and _spec.loader is not None
    _ids = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_ids)
    micros, span_id, span_id_in = _ids.micros, _ids.span_id, _ids.span_id_in

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
    # To the microsecond as `ids.micros` rounds, as the history keeps times: the engine hands
    # over its hooks' times as they come, and the start of a root span as `micros` gave it
    # (the SDK path rounds alike).
    return micros(seconds) * 1000


# -- protobuf's wire format, by hand: the few messages and fields relayflow's spans use ---------
# (opentelemetry-proto's trace.proto and common.proto; a tag is field number << 3 | wire type)

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_SPAN_FLAGS = b"\x85\x01" + _FIXED32(0x101)  # field 16: sampled; the parent is not remote
_LINK_FLAGS = b"\x35" + _FIXED32(0x301)  # field 6: sampled, in another process
#: Encoded attributes kept for reuse (flow, execution and step names repeat span after span).
_CACHE: dict[tuple[str, type, Any], bytes] = {}
_CACHE_SIZE = 20_000


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64: two's complement on ten bytes
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return tag + _varint(len(payload)) + payload


def _any(plain: Any, depth: int = 0) -> bytes:
    """An AnyValue (bool before int: a bool is an int)."""
    if isinstance(plain, bool):
        return b"\x10\x01" if plain else b"\x10\x00"
    if isinstance(plain, int):
        if -(1 << 63) <= plain < 1 << 63:
            return b"\x18" + _varint(plain)
        plain = str(plain)  # OTLP's integers are 64 bits: a larger one is kept as its digits
    elif isinstance(plain, float):
        return b"\x21" + _DOUBLE(plain)
    elif isinstance(plain, list | tuple) and depth == 0:
        items = b"".join(_field(b"\x0a", _any(item, 1)) for item in plain[:MAX_ARRAY])
        return _field(b"\x2a", items)
    elif not isinstance(plain, str):
        plain = str(plain)
    return _field(b"\x0a", plain.encode("utf-8", "replace"))


def _key_value(tag: bytes, key: str, plain: Any) -> bytes:
    """One attribute as a KeyValue field with ``tag``; plain scalars are encoded once."""
    if isinstance(plain, list | tuple | dict):
        return _field(tag, _field(b"\x0a", key.encode()) + _field(b"\x12", _any(plain)))
    cached = (key, type(plain), plain)
    found = _CACHE.get(cached)
    if found is None:
        found = _field(tag, _field(b"\x0a", key.encode()) + _field(b"\x12", _any(plain)))
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[cached] = found
    return found


def _attributes(tag: bytes, attributes: Mapping[str, Any]) -> bytes:
    return b"".join([_key_value(tag, key, plain) for key, plain in attributes.items()])


def _span(one: SpanTuple) -> bytes:
    name, trace, span, parent, kind, start, end, attributes, links, error, events = one
    begin = _ns(start)
    parts = [
        b"\x0a\x10" + trace.to_bytes(16, "big"),
        b"\x12\x08" + span.to_bytes(8, "big"),
        b"\x22\x08" + parent.to_bytes(8, "big") if parent else b"",
        _field(b"\x2a", name.encode("utf-8", "replace")),
        b"\x30" + _varint(kind),
        b"\x39" + _FIXED64(begin),
        b"\x41" + _FIXED64(max(begin, _ns(end))),
        _attributes(b"\x4a", attributes),
    ]
    for event_name, when, event_attributes in events or ():
        event = b"\x09" + _FIXED64(_ns(when)) + _field(b"\x12", event_name.encode())
        parts.append(_field(b"\x5a", event + _attributes(b"\x1a", event_attributes)))
    for linked_trace, linked_span, link_attributes in links or ():
        link = b"\x0a\x10" + linked_trace.to_bytes(16, "big")
        link += b"\x12\x08" + linked_span.to_bytes(8, "big")
        link += _attributes(b"\x22", link_attributes) + _LINK_FLAGS
        parts.append(_field(b"\x6a", link))
    if error is not None:
        error_name, cause = error
        message = (f"{error_name}: {cause}" if cause else str(error_name))[:MAX_MESSAGE]
        status = _field(b"\x12", message.encode("utf-8", "replace")) + b"\x18\x02"  # ERROR
        parts.append(_field(b"\x7a", status))
    parts.append(_SPAN_FLAGS)
    return b"".join(parts)


# -- the engine's records: what its hooks hand over, made span tuples here -------------------
# The engine's loop only notes what happened; the span ids (a hash each), names, attribute
# dicts and kinds are made here, off its process. The ids are the ones `relayflow_otel.ids`
# gives, so they are the same whichever process makes them.

#: A step: (STEP, trace, event, parent event, start, end, flow, execution, step, error, flags).
STEP = 1
#: A task attempt: (TASK, trace, event, parent event, start, end, flow, execution, step, error,
#: flags, resource, pattern, attempt, submitted times); resource None: its start is unknown.
#: Resource and pattern are made text here, and an attempt that is not a number left out.
TASK = 2
#: An execution: (ROOT, trace, event, start, end, flow, execution, status, error,
#: (parent flow, parent execution) or None, (linked trace, linked span id) or None).
ROOT = 3
#: `flags` bits: the execution ended with the span open; its opening event was never seen.
ABANDONED = 1
START_UNKNOWN = 2
_PARENT_LINK = {"relayflow.link": "parent"}


def expand(record: tuple[Any, ...]) -> SpanTuple:
    """The span tuple of one engine record (one of `STEP`, `TASK`, `ROOT`).

    ``event`` and ``parent event`` are the EventIds of the history events that opened the span
    and its parent; the span ids are derived from them and the trace id (`ids.span_id`).

    Raises:
        Exception: the record is malformed.
    """
    form = record[0]
    if form == ROOT:
        _, trace, event, start, end, flow, execution, status, error, parent, link = record
        attributes = {
            "relayflow.flow": flow,
            "relayflow.execution": execution,
            "relayflow.status": status,
        }
        if error is not None:
            attributes["relayflow.error"] = error[0]
            attributes["relayflow.cause"] = error[1]
        links: tuple[Any, ...] = ()
        if parent is not None:
            attributes["relayflow.parent.flow"] = parent[0]
            attributes["relayflow.parent.execution"] = parent[1]
            if link is not None:
                links = ((link[0], link[1], _PARENT_LINK),)
        span = span_id(trace, event)
        return (f"execution {flow}", trace, span, 0, KIND_INTERNAL, start, end, attributes,
                links, error, ())  # fmt: skip
    trace, event, parent_event, start, end, flow, execution, step, error, flags = record[1:11]
    key = trace.to_bytes(16, "big")
    attributes = {"relayflow.flow": flow, "relayflow.execution": execution, "relayflow.step": step}
    kind = KIND_INTERNAL
    events: tuple[Any, ...] = ()
    if form == TASK:
        resource, pattern, attempt, submitted = record[11:15]
        kind = KIND_CLIENT
        if resource is None:
            attributes["relayflow.task_id"] = event
        else:
            attributes["relayflow.resource"] = str(resource)
            attributes["relayflow.pattern"] = pattern = str(pattern)
            attributes["relayflow.task_id"] = event
            if isinstance(attempt, int):
                attributes["relayflow.attempt"] = attempt
            if pattern == "waitForCallback" and not flags & ABANDONED:
                kind = KIND_PRODUCER
        if error is not None:
            attributes["relayflow.error"] = error[0]
            attributes["relayflow.cause"] = error[1]
        events = tuple(("submitted", when, {}) for when in submitted)
        name = f"task {step}"
    elif form == STEP:
        name = f"step {step}"
    else:
        raise ValueError(f"not an engine record: {form!r}")
    if flags & START_UNKNOWN:
        attributes["relayflow.start_unknown"] = True
    if flags & ABANDONED:
        attributes["relayflow.abandoned"] = True
    span = span_id_in(key, event)
    parent = span_id_in(key, parent_event)
    return (name, trace, span, parent, kind, start, end, attributes, (), error, events)


def rows(batch: list[Any]) -> tuple[list[SpanTuple], int]:
    """Span tuples from a batch, and how many of its items were malformed (left out).

    A batch is a list of span tuples (`SPAN_FIELDS`, the first item a name) and engine
    records (`expand`, the first item a number), in any mix.
    """
    spans: list[SpanTuple] = []
    malformed = 0
    for item in batch:
        try:
            spans.append(item if isinstance(item[0], str) else expand(item))
        except Exception:  # one malformed record is left out, not its batch
            malformed += 1
    return spans, malformed


def encode(
    spans: Iterable[SpanTuple],
    resource: Mapping[str, Any],
    scope: tuple[str, str],
) -> tuple[bytes, int]:
    """One `ExportTraceServiceRequest` holding ``spans``, serialized, and how many were left out.

    A span that cannot be encoded (a malformed tuple) is left out; the others go.

    Args:
        spans: span tuples (see the module's docstring); `rows` makes them of a flat batch.
        resource: the resource's attributes (`service.name`, ...).
        scope: the instrumentation scope's (name, version).
    """
    encoded = []
    dropped = 0
    for one in spans:
        try:
            encoded.append(_field(b"\x12", _span(one)))
        except Exception:  # one malformed span is left out, not its batch
            dropped += 1
    return _request(encoded, resource, scope), dropped


def encode_batch(
    batch: list[Any], resource: Mapping[str, Any], scope: tuple[str, str]
) -> tuple[bytes, int]:
    """`encode` of `rows` of ``batch`` in one pass: the same bytes, about twice as fast.

    The step and task records of a plain task step (what most of a batch is) are encoded
    without their span tuple: names and attributes that repeat within an execution come
    encoded from small caches, and span ids are hashed once a batch (a step's id is its task's
    parent). Anything else goes the way `rows` and `encode` take it.
    """
    encoded = []
    dropped = 0
    ids: dict[tuple[int, int], bytes] = {}
    for item in batch:
        try:
            if isinstance(item[0], str):
                one = _span(item)
            elif item[0] is not ROOT and not item[10] and item[9] is None:
                one = _plain_record(item, ids)
            else:
                one = _span(expand(item))
            encoded.append(_field(b"\x12", one))
        except Exception:  # one malformed item is left out, not its batch
            dropped += 1
    return _request(encoded, resource, scope), dropped


def _request(encoded: list[bytes], resource: Mapping[str, Any], scope: tuple[str, str]) -> bytes:
    scope_name, version = scope
    scope_spans = _field(
        b"\x0a", _field(b"\x0a", scope_name.encode()) + _field(b"\x12", version.encode())
    ) + b"".join(encoded)
    resource_spans = _field(b"\x0a", _attributes(b"\x0a", resource))
    resource_spans += _field(b"\x12", scope_spans)
    return _field(b"\x0a", resource_spans)


_T = TypeVar("_T")
#: Encoded (flow, execution) attributes, and a step's (task name, step name, attribute).
_OWNERS: dict[tuple[str, str], bytes] = {}
_STEPS: dict[str, tuple[bytes, bytes, bytes]] = {}
#: Encoded resource and pattern attributes, and a task's kind, by (resource, pattern).
_TASK_KINDS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_PRODUCER = b"\x30" + _varint(KIND_PRODUCER)
_CLIENT = b"\x30" + _varint(KIND_CLIENT)
_INTERNAL = b"\x30" + _varint(KIND_INTERNAL)
_SUBMITTED = _field(b"\x12", b"submitted")


def _cached(cache: dict[Any, _T], key: Any, make: Callable[[], _T]) -> _T:
    found = cache.get(key)
    if found is None:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        found = cache[key] = make()
    return found


def _plain_record(record: tuple[Any, ...], ids: dict[tuple[int, int], bytes]) -> bytes:
    """`_span(expand(record))` for a `STEP` or `TASK` record without error or flags."""
    form = record[0]
    trace, event, parent_event, start, end, flow, execution, step = record[1:9]
    if not (type(flow) is type(execution) is type(step) is str) or not (
        type(event) is type(parent_event) is int
    ):
        return _span(expand(record))  # values the general way turns into text, or refuses
    key: bytes = trace.to_bytes(16, "big")
    span = _span_bytes(ids, trace, key, event)
    parent = _span_bytes(ids, trace, key, parent_event)
    owner = _cached(
        _OWNERS,
        (flow, execution),
        lambda: (
            _key_value(b"\x4a", "relayflow.flow", flow)
            + _key_value(b"\x4a", "relayflow.execution", execution)
        ),
    )
    task_name, step_name, step_attribute = _cached(
        _STEPS,
        step,
        lambda: (
            _field(b"\x2a", f"task {step}".encode("utf-8", "replace")),
            _field(b"\x2a", f"step {step}".encode("utf-8", "replace")),
            _key_value(b"\x4a", "relayflow.step", step),
        ),
    )
    begin = _ns(start)
    head = b"\x0a\x10" + key + b"\x12\x08" + span + b"\x22\x08" + parent
    times = b"\x39" + _FIXED64(begin) + b"\x41" + _FIXED64(max(begin, _ns(end)))
    if form == STEP:
        return head + step_name + _INTERNAL + times + owner + step_attribute + _SPAN_FLAGS
    if form != TASK:
        raise ValueError(f"not an engine record: {form!r}")
    resource, pattern, attempt, submitted = record[11:15]
    if resource is None:
        kind = _CLIENT
        described = _key_value(b"\x4a", "relayflow.task_id", event)
    else:
        if type(resource) is type(pattern) is str:
            described, kind = _cached(
                _TASK_KINDS, (resource, pattern), lambda: _task_kind(resource, pattern)
            )
        else:
            described, kind = _task_kind(resource, pattern)
        described += _key_value(b"\x4a", "relayflow.task_id", event)
        if isinstance(attempt, int):
            described += _key_value(b"\x4a", "relayflow.attempt", attempt)
    events = b"".join(
        _field(b"\x5a", b"\x09" + _FIXED64(_ns(when)) + _SUBMITTED) for when in submitted
    )
    attributes = owner + step_attribute + described
    return head + task_name + kind + times + attributes + events + _SPAN_FLAGS


def _span_bytes(ids: dict[tuple[int, int], bytes], trace: int, key: bytes, event: int) -> bytes:
    """The 8 bytes of `span_id_in`, hashed once a batch (a step's id is its task's parent)."""
    found = ids.get((trace, event))
    if found is None:
        found = ids[(trace, event)] = span_id_in(key, event).to_bytes(8, "big")
    return found


def _task_kind(resource: Any, pattern: Any) -> tuple[bytes, bytes]:
    text = str(pattern)
    attributes = _key_value(b"\x4a", "relayflow.resource", str(resource))
    attributes += _key_value(b"\x4a", "relayflow.pattern", text)
    return attributes, _PRODUCER if text == "waitForCallback" else _CLIENT


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
            body, left_out = encode_batch(batch, resource, (str(scope[0]), str(scope[1])))
        except Exception as exc:  # not a list of spans: said, dropped, the next goes on
            print(f"relayflow-otel: a batch of spans was dropped: {exc}", file=sys.stderr)
            continue
        if left_out:
            print(f"relayflow-otel: {left_out} malformed spans dropped", file=sys.stderr)
        poster.post(body)


if __name__ == "__main__":
    sys.exit(main())
