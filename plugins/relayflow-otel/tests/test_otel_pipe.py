"""The engine's spans through the exporter process: encoding, bounds, a process that dies."""

from __future__ import annotations

import random
import subprocess
import sys
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind
from otlp_receiver import OtlpReceiver, decode

from relayflow_otel.export import FinishedSpan
from relayflow_otel.exporter_process import (
    ABANDONED,
    KIND_CLIENT,
    KIND_INTERNAL,
    KIND_PRODUCER,
    ROOT,
    START_UNKNOWN,
    STEP,
    TASK,
    encode,
    encode_batch,
    rows,
)
from relayflow_otel.ids import span_id
from relayflow_otel.pipe import PipeSink

TRACE = 0x0123456789ABCDEF0123456789ABCDEF


def _span(name: str, span: int, **fields: object) -> FinishedSpan:
    values: dict[str, object] = {
        "name": name,
        "trace": TRACE,
        "span": span,
        "parent": None,
        "sampled": True,
        "kind": SpanKind.INTERNAL,
        "start": 1_800_000_000.25,
        "end": 1_800_000_001.5,
        **fields,
    }
    return FinishedSpan(**values)  # type: ignore[arg-type]


def _wait_until(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_tuples_encode_as_the_sdk_would_and_a_malformed_one_is_left_out() -> None:
    task = (
        "task a",
        TRACE,
        7,
        5,
        KIND_CLIENT,
        1_800_000_000.000001,
        1_800_000_002.5,
        {"s": "x", "i": 3, "b": True, "f": 0.5, "big": 1 << 70, "list": [1, "two"]},
        [(TRACE + 1, 9, {"relayflow.link": "parent"})],
        ("Boom", "it broke"),
        [("submitted", 1_800_000_001.0, {})],
    )
    root = ("execution f", TRACE, 5, 0, KIND_INTERNAL, 1.0, 0.5, {}, (), None, ())
    malformed = ("bad", "not an id", 1, 0, KIND_INTERNAL, 1.0, 2.0, {}, (), None, ())
    body, left_out = encode([task, malformed, root], {"service.name": "svc"}, ("scope", "1"))
    assert left_out == 1
    got_task, got_root = decode(body)
    assert got_task["trace_id"] == f"{TRACE:032x}"
    assert (got_task["span_id"], got_task["parent_span_id"]) == (f"{7:016x}", f"{5:016x}")
    assert got_task["kind"] == KIND_CLIENT
    assert got_task["start_ns"] == 1_800_000_000_000_001_000
    assert got_task["end_ns"] == 1_800_000_002_500_000_000
    assert got_task["attributes"] == {
        "s": "x",
        "i": 3,
        "b": True,
        "f": 0.5,
        "big": str(1 << 70),
        "list": [1, "two"],
    }
    assert got_task["links"] == [
        {
            "trace_id": f"{TRACE + 1:032x}",
            "span_id": f"{9:016x}",
            "attributes": {"relayflow.link": "parent"},
        }
    ]
    assert got_task["status"] == {"code": "ERROR", "message": "Boom: it broke"}
    assert got_task["resource"] == {"service.name": "svc"} and got_task["scope"] == "scope"
    assert got_root["parent_span_id"] == "" and got_root["status"]["code"] == "UNSET"
    assert got_root["end_ns"] == got_root["start_ns"]  # an end before the start: none long
    # What the receiver's decoding leaves out: events and flags, read with protobuf itself.
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (raw_task, raw_root) = request.resource_spans[0].scope_spans[0].spans
    (event,) = raw_task.events
    assert (event.name, event.time_unix_nano) == ("submitted", 1_800_000_001_000_000_000)
    assert raw_task.flags == raw_root.flags == 0x101
    assert raw_task.links[0].flags == 0x301
    assert request.resource_spans[0].scope_spans[0].scope.version == "1"


def test_engine_records_become_spans_named_by_the_ids_and_a_malformed_one_is_left_out() -> None:
    base = ("f", "e", "a")
    step = (STEP, TRACE, 2, 1, 10.0, 11.0, *base, ("E", "c"), ABANDONED)
    task = (TASK, TRACE, 3, 2, 10.5, 10.75, *base, None, 0, "r", "waitForCallback", 0, (10.6,))
    lost = (TASK, TRACE, 5, 1, 11.0, 11.0, *base, ("E", "c"), START_UNKNOWN, None, None, None, ())
    root = (ROOT, TRACE, 1, 9.0, 12.0, "f", "e", "Failed", ("E", "c"), ("p", "q"), (TRACE + 1, 9))
    malformed = (TASK, "not a trace", 3)
    as_is = ("as is", TRACE, 7, 0, KIND_INTERNAL, 1.0, 2.0, {}, (), None, ())
    spans, left_out = rows([step, malformed, task, lost, root, as_is])
    assert left_out == 1
    got_step, got_task, got_lost, got_root, got_as_is = spans
    ids = {event: span_id(TRACE, event) for event in (1, 2, 3, 5)}
    names = {"relayflow.flow": "f", "relayflow.execution": "e", "relayflow.step": "a"}
    assert got_step == (
        "step a", TRACE, ids[2], ids[1], KIND_INTERNAL, 10.0, 11.0,
        {**names, "relayflow.abandoned": True}, (), ("E", "c"), (),
    )  # fmt: skip
    assert got_task == (
        "task a", TRACE, ids[3], ids[2], KIND_PRODUCER, 10.5, 10.75,
        {**names, "relayflow.resource": "r", "relayflow.pattern": "waitForCallback",
         "relayflow.task_id": 3, "relayflow.attempt": 0},
        (), None, (("submitted", 10.6, {}),),
    )  # fmt: skip
    assert got_lost[2:5] == (ids[5], ids[1], KIND_CLIENT)
    assert got_lost[7] == {
        **names,
        "relayflow.task_id": 5,
        "relayflow.error": "E",
        "relayflow.cause": "c",
        "relayflow.start_unknown": True,
    }
    assert got_root == (
        "execution f", TRACE, ids[1], 0, KIND_INTERNAL, 9.0, 12.0,
        {"relayflow.flow": "f", "relayflow.execution": "e", "relayflow.status": "Failed",
         "relayflow.error": "E", "relayflow.cause": "c", "relayflow.parent.flow": "p",
         "relayflow.parent.execution": "q"},
        ((TRACE + 1, 9, {"relayflow.link": "parent"}),), ("E", "c"), (),
    )  # fmt: skip
    assert got_as_is == as_is


def _random_item(rng: random.Random) -> tuple[object, ...]:
    """An engine record (mostly the plain step and task ones), a span tuple, or junk."""
    names = ["f", "e", "a", "ünï", "x" * 40, 7, None]
    flow, execution, step = (rng.choice(names[:5]) for _ in range(3))
    if rng.random() < 0.1:
        flow = rng.choice(names)
    trace = rng.choice([TRACE, TRACE + 1, 1, (1 << 128) - 1])
    event = rng.choice([1, 2, 3, 40, True, 1.0, "3"] if rng.random() < 0.1 else [1, 2, 3, 40])
    parent = rng.choice([1, 2, 3])
    error = None if rng.random() < 0.7 else rng.choice([("E", "c"), ("E", ""), (1, None)])
    flags = 0 if rng.random() < 0.8 else rng.choice([ABANDONED, START_UNKNOWN, 3])
    start = rng.choice([10.0, 10.5, 1_800_000_000.123456, 9.9999995])
    end = start + rng.choice([0.0, 0.25, -1.0])
    form = rng.random()
    if form < 0.4:
        return (STEP, trace, event, parent, start, end, flow, execution, step, error, flags)
    if form < 0.85:
        resource = rng.choice(["acs:mns:::/queues/q/messages", "r", None, 5])
        pattern = rng.choice(["requestResponse", "waitForCallback", "sync"])
        attempt = rng.choice([0, 1, True, "2", None])
        submitted = rng.choice([(), (10.6,), (10.6, 10.7), None])
        return (TASK, trace, event, parent, start, end, flow, execution, step, error, flags,
                resource, pattern, attempt, submitted)  # fmt: skip
    if form < 0.93:
        return (ROOT, trace, 1, start, end, "f", "e", "Succeeded", error, None, None)
    if form < 0.97:
        return ("as is", TRACE, 7, 0, KIND_INTERNAL, 1.0, 2.0, {"k": 1}, (), None, ())
    return rng.choice([(TASK, "not a trace", 3), (STEP,), (9, TRACE)])


def test_the_one_pass_encoding_is_the_two_pass_one() -> None:
    rng = random.Random(16)
    for _ in range(300):
        batch = [_random_item(rng) for _ in range(rng.randint(0, 40))]
        spans, malformed = rows(batch)
        expected, left_out = encode(spans, {"service.name": "s"}, ("scope", "1"))
        assert encode_batch(batch, {"service.name": "s"}, ("scope", "1")) == (
            expected,
            left_out + malformed,
        ), batch


def test_spans_reach_the_collector_and_a_dead_exporter_process_is_started_again(
    otlp: OtlpReceiver,
) -> None:
    sink = PipeSink(otlp.traces_url, service_name="engine", resource_attributes={"a": "b"})
    try:
        sink.emit(_span("first", 1))
        sink.emit(_span("unsampled", 2, sampled=False))
        assert sink.flush(5.0)
        otlp.wait_for(lambda spans: len(spans) >= 1)
        first = sink.process
        assert first is not None
        first.kill()
        first.wait(5)
        sink.emit(_span("second", 3, parent=1, error=("E", "")))
        assert sink.flush(5.0)
        spans = otlp.wait_for(lambda spans: len(spans) >= 2)
    finally:
        sink.close()
    assert [s["name"] for s in spans] == ["first", "second"]
    assert sink.restarts == 1 and sink.process is not first
    assert spans[0]["resource"]["service.name"] == "engine"
    assert spans[0]["resource"]["a"] == "b"
    assert spans[1]["status"] == {"code": "ERROR", "message": "E"}
    assert sink.process is not None
    assert sink.process.wait(10) == 0  # its stdin closed: it sent the rest and ended


def test_an_exporter_that_does_not_read_costs_dropped_spans_never_a_wait() -> None:
    # A process that never reads its stdin: the pipe fills, the feeding thread blocks on it.
    stuck = [sys.executable, "-c", "import time; time.sleep(60)"]
    sink = PipeSink(
        "http://127.0.0.1:9/v1/traces", service_name="s", max_queue_size=4, command=stuck
    )
    big = {"padding": "x" * 100_000}  # one batch is more than a pipe holds
    for n in range(400):
        sink.emit(_span(f"s{n}", n + 1, attributes=big))
    assert sink.dropped >= 392  # four may wait; everything else was dropped at once
    assert not sink.flush(0.1)
    sink.close()
    assert sink.process is not None
    sink.process.kill()  # the feeding thread, unblocked, drops the rest and ends
    assert _wait_until(lambda: not sink._thread.is_alive())
    assert sink.restarts == 0


def _gone(pid: int) -> bool:
    """Whether a process has ended (a zombie no one reaps has ended too)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_the_exporter_process_ends_with_the_engines_process() -> None:
    engine = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from relayflow_otel.pipe import PipeSink\n"
            "sink = PipeSink('http://127.0.0.1:9/v1/traces', service_name='s')\n"
            "print(sink.process.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert engine.stdout is not None
        exporter = int(engine.stdout.readline())
        assert not _gone(exporter)
    finally:
        engine.kill()  # no atexit, no close: only the pipe's end tells the exporter
        engine.wait()
    assert _wait_until(lambda: _gone(exporter))


def test_a_burst_of_engine_records_keeps_what_the_queue_holds_and_drops_the_rest() -> None:
    stuck = [sys.executable, "-c", "import time; time.sleep(60)"]
    sink = PipeSink(
        "http://127.0.0.1:9/v1/traces", service_name="s", max_queue_size=600, command=stuck
    )
    record = (STEP, TRACE, 2, 1, 10.0, 11.0, "f", "e", "a", None, 0)
    try:
        sink.emit_records([record] * 1_000)  # one transaction's records, at once
        sink.flush(0.1)  # handed over: what fits in the queue, the rest dropped
        assert sink.dropped == 400
    finally:
        sink.close()


def test_engine_records_reach_the_collector_as_spans(otlp: OtlpReceiver) -> None:
    sink = PipeSink(otlp.traces_url, service_name="engine")
    base = ("f", "e", "a")
    try:
        sink.emit_records(
            [
                (TASK, TRACE, 3, 2, 10.5, 10.75, *base, None, 0, "r", "sync", 1, ()),
                (STEP, TRACE, 2, 1, 10.0, 11.0, *base, None, 0),
                (ROOT, TRACE, 1, 9.0, 12.0, "f", "e", "Succeeded", None, None, None),
            ]
        )
        assert sink.flush(5.0)
        spans = otlp.wait_for(lambda spans: len(spans) >= 3)
    finally:
        sink.close()
    task, step, root = spans
    assert (task["name"], step["name"], root["name"]) == ("task a", "step a", "execution f")
    assert task["span_id"] == f"{span_id(TRACE, 3):016x}"
    assert task["parent_span_id"] == step["span_id"] == f"{span_id(TRACE, 2):016x}"
    assert step["parent_span_id"] == root["span_id"] == f"{span_id(TRACE, 1):016x}"
    assert task["attributes"]["relayflow.attempt"] == 1


def test_span_times_round_as_the_history_does() -> None:
    # Times a million that land on .5 in floating point: a hook's float must give the
    # microsecond the history (and the root span's start, from `micros`) gives.
    from relayflow_otel.ids import micros

    when = 1796209886.5447426
    span = ("s", TRACE, 7, 0, KIND_INTERNAL, when, when, {}, (), None, ())
    body, _ = encode([span], {"service.name": "svc"}, ("scope", "1"))
    (got,) = decode(body)
    assert got["start_ns"] == got["end_ns"] == micros(when) * 1000
