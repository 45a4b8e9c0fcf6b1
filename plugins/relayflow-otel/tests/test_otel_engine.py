"""Spans of a real engine on SQLite, received by a real OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver, Span

from relayflow.engine import Engine, Failed, Submitted, Succeeded, TaskRequest
from relayflow.plugins import PluginManager
from relayflow.testing import bounded, fdl, make_engine
from relayflow_otel import enable
from relayflow_otel.config import OtelSettings, resolve
from relayflow_otel.engine_spans import EngineTracer
from relayflow_otel.ids import micros
from tests.engine.helpers import sqlite_or_postgres

FN = "acs:fc:::services/s/functions/work"
QUEUE = "acs:mns:::/queues/jobs/messages"

NESTED = fdl(f"""
- type: task
  name: first
  resourceArn: {FN}
- type: parallel
  name: both
  branches:
    - steps:
        - type: task
          name: left
          resourceArn: {FN}
    - steps:
        - type: foreach
          name: each
          iterationMapping:
            collection: $.items
            item: item
          steps:
            - type: pass
              name: inner
""")

FAILING = fdl(f"""
- type: task
  name: boom
  resourceArn: {FN}
""")

CALLBACK = fdl(f"""
- type: task
  name: ask
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: pass
  name: done
""")

PARENT = fdl("""
- type: task
  name: spawn
  resourceArn: acs:fnf:::flow/kid
  pattern: sync
""")

KID = fdl("""
- type: pass
  name: play
""")


class Traced:
    """A plugin manager with relayflow-otel's engine hooks, exporting to a receiver."""

    def __init__(self, endpoint: str, **table: Any) -> None:
        self.plugins = PluginManager()
        self.tracer: EngineTracer = enable(
            resolve(OtelSettings(endpoint=endpoint, **table), {}), self.plugins
        )
        self.requests: list[TaskRequest] = []

    def engine(self, store: str, outcome: Any = None) -> Engine:
        async def work(request: TaskRequest) -> Any:
            self.requests.append(request)
            if outcome is not None:
                return outcome
            return Submitted({}) if request.pattern == "waitForCallback" else Succeeded({"n": 1})

        return make_engine({FN: work, QUEUE: work}, store=store, plugins=self.plugins)

    def close(self) -> None:
        self.tracer.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def traced(otlp: OtlpReceiver) -> Iterator[Traced]:
    made = Traced(otlp.endpoint)
    yield made
    made.close()


def _of(spans: list[Span], execution: str) -> dict[str, Span]:
    """One execution's spans by name (each name once in these flows)."""
    mine = [s for s in spans if s["attributes"].get("relayflow.execution") == execution]
    by_name = {s["name"]: s for s in mine}
    assert len(by_name) == len(mine), [s["name"] for s in mine]
    return by_name


def _trace(spans: list[Span], execution: str, count: int) -> bool:
    return len([s for s in spans if s["attributes"].get("relayflow.execution") == execution]) >= (
        count
    )


def _header_ids(request: TaskRequest) -> tuple[str, str, str]:
    version, trace, span, flags = request.headers["traceparent"].split("-")
    assert version == "00"
    return trace, span, flags


@bounded(seconds=20)
async def test_one_trace_per_execution_with_spans_nested_as_the_flow(
    traced: Traced, otlp: OtlpReceiver, sqlite_url: str
) -> None:
    async with traced.engine(sqlite_url) as engine:
        await engine.create_flow("nested", NESTED)
        for name in ("n-1", "n-2"):
            await engine.start_execution("nested", {"items": [1]}, name=name)
            info = await engine.describe_execution("nested", name, wait_seconds=10)
            assert info.status == "Succeeded"
        await traced.tracer.drain()
    spans = otlp.wait_for(lambda got: _trace(got, "n-1", 8) and _trace(got, "n-2", 8))
    one, two = _of(spans, "n-1"), _of(spans, "n-2")
    assert set(one) == {
        "execution nested",
        "step first",
        "task first",
        "step both",
        "step left",
        "task left",
        "step each",
        "step inner",
    }
    assert len({s["trace_id"] for s in one.values()}) == 1
    assert one["step first"]["trace_id"] != two["step first"]["trace_id"]

    def parent(child: str) -> str:
        return {s["span_id"]: n for n, s in one.items()}.get(one[child]["parent_span_id"], "")

    assert one["execution nested"]["parent_span_id"] == ""
    assert parent("step first") == "execution nested"
    assert parent("task first") == "step first"
    assert parent("step both") == "execution nested"
    assert parent("step left") == "step both"
    assert parent("task left") == "step left"
    assert parent("step each") == "step both"
    assert parent("step inner") == "step each"

    task = one["task first"]
    assert task["attributes"] == {
        "relayflow.flow": "nested",
        "relayflow.execution": "n-1",
        "relayflow.step": "first",
        "relayflow.resource": FN,
        "relayflow.pattern": "requestResponse",
        "relayflow.task_id": task["attributes"]["relayflow.task_id"],
        "relayflow.attempt": task["attributes"]["relayflow.attempt"],
    }
    assert task["resource"]["service.name"] == "relayflow"
    root = one["execution nested"]
    assert root["start_ns"] <= task["start_ns"] <= task["end_ns"] <= root["end_ns"]
    assert root["attributes"]["relayflow.status"] == "Succeeded"
    assert root["status"]["code"] == "UNSET"
    # What the integration received names the task attempt's span, sampled.
    first = next(r for r in traced.requests if r.execution_name == "n-1" and r.step_name == "first")
    assert _header_ids(first) == (task["trace_id"], task["span_id"], "01")


@bounded(seconds=20)
async def test_a_failed_task_and_execution_are_errors(otlp: OtlpReceiver, sqlite_url: str) -> None:
    traced = Traced(otlp.endpoint)
    try:
        async with traced.engine(sqlite_url, Failed("Boom", "it broke")) as engine:
            await engine.create_flow("failing", FAILING)
            await engine.start_execution("failing", {}, name="f-1")
            info = await engine.describe_execution("failing", "f-1", wait_seconds=10)
            assert info.status == "Failed"
    finally:
        traced.close()
    spans = _of(otlp.wait_for(lambda got: _trace(got, "f-1", 3)), "f-1")
    task, step, root = spans["task boom"], spans["step boom"], spans["execution failing"]
    assert task["status"] == {"code": "ERROR", "message": "Boom: it broke"}
    assert task["attributes"]["relayflow.error"] == "Boom"
    assert task["attributes"]["relayflow.cause"] == "it broke"
    assert step["status"]["code"] == "ERROR"
    assert root["status"]["code"] == "ERROR"
    assert root["attributes"]["relayflow.status"] == "Failed"
    assert root["attributes"]["relayflow.error"] == "Boom"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from sqlite_or_postgres(request, "otel_", f"sqlite:///{tmp_path / 'r.db'}")


@bounded(seconds=25)
async def test_a_restart_in_the_middle_stays_in_one_trace(
    otlp: OtlpReceiver, store_url: str
) -> None:
    before = Traced(otlp.endpoint)
    try:
        async with before.engine(store_url) as engine:
            await engine.create_flow("cb", CALLBACK)
            await engine.start_execution("cb", {}, name="c-1")
            while not before.requests:
                await asyncio.sleep(0.02)
    finally:
        before.close()
    (request,) = before.requests
    trace, task_span, _flags = _header_ids(request)
    after = Traced(otlp.endpoint)  # another process, as far as the plugin can tell
    try:
        async with after.engine(store_url) as engine:
            await engine.report_task_succeeded(request.token, {"answer": 42})
            info = await engine.describe_execution("cb", "c-1", wait_seconds=10)
            assert info.status == "Succeeded"
            history = await engine.get_execution_history("cb", "c-1")
            await after.tracer.drain()
    finally:
        after.close()
    spans = _of(otlp.wait_for(lambda got: _trace(got, "c-1", 4)), "c-1")
    assert set(spans) == {"execution cb", "step ask", "task ask", "step done"}
    assert {s["trace_id"] for s in spans.values()} == {trace}
    root, step, task = spans["execution cb"], spans["step ask"], spans["task ask"]
    assert task["span_id"] == task_span
    assert task["parent_span_id"] == step["span_id"]
    assert step["parent_span_id"] == root["span_id"]
    assert spans["step done"]["parent_span_id"] == root["span_id"]
    assert root["parent_span_id"] == ""
    # Starts come from the history, not from the second process's clock.
    started = history.items[0]
    assert started.type == "ExecutionStarted" and started.time is not None
    assert root["start_ns"] == micros(started.time) * 1000
    assert [e for e in task["attributes"] if e == "relayflow.start_unknown"] == []
    assert root["start_ns"] <= step["start_ns"] <= task["start_ns"] < task["end_ns"]


@bounded(seconds=20)
async def test_a_child_execution_links_to_its_parent_task(
    traced: Traced, otlp: OtlpReceiver, sqlite_url: str
) -> None:
    async with traced.engine(sqlite_url) as engine:
        await engine.create_flow("kid", KID)
        await engine.create_flow("parent", PARENT)
        await engine.start_execution("parent", {}, name="p-1")
        info = await engine.describe_execution("parent", "p-1", wait_seconds=10)
        assert info.status == "Succeeded"
        (child,) = info.children
        await traced.tracer.drain()
    spans = otlp.wait_for(lambda got: _trace(got, "p-1", 3) and _trace(got, child.name, 2))
    parent, kid = _of(spans, "p-1"), _of(spans, child.name)
    task, root = parent["task spawn"], kid["execution kid"]
    assert root["trace_id"] != task["trace_id"]
    assert root["parent_span_id"] == ""
    assert root["links"] == [
        {
            "trace_id": task["trace_id"],
            "span_id": task["span_id"],
            "attributes": {"relayflow.link": "parent"},
        }
    ]
    assert root["attributes"]["relayflow.parent.execution"] == "p-1"
    assert kid["step play"]["parent_span_id"] == root["span_id"]


@bounded(seconds=20)
async def test_unsampled_executions_export_nothing_and_say_so_downstream(
    otlp: OtlpReceiver, sqlite_url: str
) -> None:
    traced = Traced(otlp.endpoint, sampling_ratio=0.0)
    try:
        async with traced.engine(sqlite_url) as engine:
            await engine.create_flow("failing", FAILING)
            await engine.start_execution("failing", {}, name="u-1")
            await engine.describe_execution("failing", "u-1", wait_seconds=10)
    finally:
        traced.close()
    (request,) = traced.requests
    assert _header_ids(request)[2] == "00"
    assert otlp.spans == []


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: every export is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@bounded(seconds=20)
async def test_an_unreachable_collector_does_not_stop_the_engine(
    closed_port: str, sqlite_url: str
) -> None:
    traced = Traced(closed_port, max_queue_size=4, timeout_seconds=30)
    try:
        async with traced.engine(sqlite_url) as engine:
            await engine.create_flow("nested", NESTED)
            names = [f"x-{i}" for i in range(12)]
            for name in names:
                await engine.start_execution("nested", {"items": [1, 2]}, name=name)
            for name in names:
                info = await engine.describe_execution("nested", name, wait_seconds=10)
                assert info.status == "Succeeded"
    finally:
        traced.close()  # returns though the exporter's thread is stuck retrying


TWO_CALLBACKS = fdl(f"""
- type: task
  name: one
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: task
  name: two
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[str]:
    from tests.services import fresh_database

    with fresh_database(postgres_url, "otel_replicas") as url:
        yield url


@bounded(seconds=25)
async def test_replicas_taking_turns_export_one_nested_trace(
    otlp: OtlpReceiver, postgres_store: str
) -> None:
    a, b = Traced(otlp.endpoint), Traced(otlp.endpoint)  # two processes, as far as it can tell
    try:
        async with a.engine(postgres_store) as first, b.engine(postgres_store) as second:
            await first.create_flow("turns", TWO_CALLBACKS)
            await first.start_execution("turns", {}, name="t-1")
            while not a.requests:
                await asyncio.sleep(0.02)
            # B records task one's report and dispatches task two; A records task two's report.
            await second.report_task_succeeded(a.requests[0].token, {})
            while not b.requests:
                await asyncio.sleep(0.02)
            await first.report_task_succeeded(b.requests[0].token, {})
            info = await first.describe_execution("turns", "t-1", wait_seconds=10)
            assert info.status == "Succeeded"
            await a.tracer.drain()
            await b.tracer.drain()
    finally:
        a.close()
        b.close()
    spans = _of(otlp.wait_for(lambda got: _trace(got, "t-1", 5)), "t-1")
    assert set(spans) == {"execution turns", "step one", "task one", "step two", "task two"}
    assert len({s["trace_id"] for s in spans.values()}) == 1
    root = spans["execution turns"]
    for step in ("one", "two"):
        assert spans[f"step {step}"]["parent_span_id"] == root["span_id"]
        assert spans[f"task {step}"]["parent_span_id"] == spans[f"step {step}"]["span_id"]
        assert "relayflow.start_unknown" not in spans[f"task {step}"]["attributes"]
    # B dispatched task two while it was still reading the history: the header is there only
    # if the read won the race, and then it names task two's span.
    if "traceparent" in b.requests[0].headers:
        assert _header_ids(b.requests[0])[1] == spans["task two"]["span_id"]
    assert _header_ids(a.requests[0])[1] == spans["task one"]["span_id"]
    assert spans["task two"]["start_ns"] < spans["task two"]["end_ns"]


@bounded(seconds=20)
async def test_a_stopped_execution_ends_what_it_left_open(
    traced: Traced, otlp: OtlpReceiver, sqlite_url: str
) -> None:
    async with traced.engine(sqlite_url) as engine:
        await engine.create_flow("cb", CALLBACK)
        await engine.start_execution("cb", {}, name="s-1")
        while not traced.requests:
            await asyncio.sleep(0.02)
        await engine.stop_execution("cb", "s-1", "Halt", "enough")
        await traced.tracer.drain()
    spans = _of(otlp.wait_for(lambda got: _trace(got, "s-1", 3)), "s-1")
    assert set(spans) == {"execution cb", "step ask", "task ask"}
    root = spans["execution cb"]
    assert root["status"] == {"code": "ERROR", "message": "Halt: enough"}
    assert root["attributes"]["relayflow.status"] == "Stopped"
    for name in ("step ask", "task ask"):
        assert spans[name]["attributes"]["relayflow.abandoned"] is True
        assert spans[name]["end_ns"] == root["end_ns"]
    assert spans["task ask"]["parent_span_id"] == spans["step ask"]["span_id"]


@bounded(seconds=20)
async def test_a_name_used_again_after_a_deletion_makes_another_trace(
    traced: Traced, otlp: OtlpReceiver, sqlite_url: str
) -> None:
    async with traced.engine(sqlite_url) as engine:
        for _ in range(2):
            await engine.create_flow("again", KID)
            await engine.start_execution("again", {}, name="same")
            await engine.describe_execution("again", "same", wait_seconds=10)
            await engine.delete_flow("again")
    spans = otlp.wait_for(lambda got: _trace(got, "same", 4))
    roots = [s for s in spans if s["name"] == "execution again"]
    assert len(roots) == 2 and roots[0]["trace_id"] != roots[1]["trace_id"]


FLAKY = fdl(f"""
- type: pass
  name: before
- type: task
  name: flaky
  resourceArn: {FN}
""")


@bounded(seconds=20)
async def test_a_redriven_execution_goes_on_in_its_trace(
    otlp: OtlpReceiver, sqlite_url: str
) -> None:
    traced = Traced(otlp.endpoint)
    calls: list[TaskRequest] = []

    async def flaky(request: TaskRequest) -> Any:
        calls.append(request)
        return Failed("Flaky", "first try") if len(calls) == 1 else Succeeded({})

    try:
        engine = make_engine({FN: flaky}, store=sqlite_url, plugins=traced.plugins)
        async with engine:
            await engine.create_flow("flaky", FLAKY)
            await engine.start_execution("flaky", {}, name="d-1")
            assert (await engine.describe_execution("flaky", "d-1", wait_seconds=10)).done
            await engine.redrive_execution("flaky", "d-1")
            info = await engine.describe_execution("flaky", "d-1", wait_seconds=10)
            assert info.status == "Succeeded"
            await traced.tracer.drain()
    finally:
        traced.close()
    spans = otlp.wait_for(lambda got: _trace(got, "d-1", 7))
    assert len({s["trace_id"] for s in spans}) == 1
    tasks = [s for s in spans if s["name"] == "task flaky"]
    assert [t["status"]["code"] for t in tasks] == ["ERROR", "UNSET"]
    # The redriven attempt was named to its integration at once.
    assert [_header_ids(call)[1] for call in calls] == [t["span_id"] for t in tasks]
    roots = [s for s in spans if s["name"] == "execution flaky"]
    assert [r["attributes"]["relayflow.status"] for r in roots] == ["Failed", "Succeeded"]
