"""The worker runtime: report first, then delete; duplicates, outages, concurrency and stops.

Most tests run a `Worker` in-process on kombu's `memory://` transport, which is shared by every
connection of the process, with a fake reporter that records its calls; each test uses its own
queue name. The embedded `relayflow-sqlite` transport gets the tests that depend on MNS
semantics (a message stays in the queue until deleted; visibility extension). The Redis tests
start a real `redis-server` on a free loopback port and run workers in-process and as separate
processes (`relayflow_mns.cli`), reporting over HTTP to a tiny fake of the API; they are skipped
only when `redis-server` is not installed. Every wait is bounded, and no test takes more than
a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import kombu.message
import pytest
from click.testing import CliRunner
from kombu import Connection, Producer, Queue

from relayflow.client import ClientError
from relayflow.config import load_config
from relayflow.engine import Engine, FunctionIntegration, Submitted, TaskRequest
from relayflow.errors import EngineError
from relayflow.store import open_store
from relayflow.worker import CHECK_TOKEN
from relayflow_mns import cli
from relayflow_mns.worker import (
    INVALID_OUTPUT,
    SETTLED_CODES,
    TOKEN_HEADER,
    EngineReporter,
    Worker,
    WorkerError,
    decode_message,
    run_worker,
    visibility_hook_for,
)

MEMORY = "memory://"
FAST = {"polling_interval": 0.01}  # kombu's memory transport polls once a second by default
SEED = Path(__file__).resolve().parents[3] / "contrib" / "examples" / "seed-three-tasks.yaml"


# -- helpers ---------------------------------------------------------------------------------


def new_queue() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


def publish(
    url: str,
    queue: str,
    body: Any,
    *,
    token: str | None = "token-1",
    headers: dict[str, Any] | None = None,
    content_type: str | None = None,
) -> None:
    """Send a message the way the integration does: default exchange, routing key = queue."""
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers[TOKEN_HEADER] = token
    with Connection(url) as connection:
        Producer(connection.default_channel).publish(
            text,
            routing_key=queue,
            declare=[Queue(queue, routing_key=queue)],
            content_type=content_type
            or ("application/json" if not isinstance(body, str | bytes) else "text/plain"),
            content_encoding="utf-8" if not isinstance(body, bytes) else "binary",
            serializer=None,
            headers=all_headers,
        )


def queue_size(url: str, queue: str) -> int:
    """Messages waiting on ``queue`` (delivered but unacknowledged ones are not counted)."""
    with Connection(url) as connection:
        try:
            declared = connection.default_channel.queue_declare(queue, passive=True)
        except connection.channel_errors:  # Redis drops an empty queue's list
            return 0
        return int(declared.message_count or 0)


# Seconds a `relayflow worker` process gets to start, take a task, report or stop: a bound, not
# a measure; a loaded machine (the suite runs on two workers) starts Python processes slowly.
PROCESS_BOUND = 30.0


def wait_for(check: Callable[[], Any], timeout: float = 3.0, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeReporter:
    """Records every report; ``failures`` are raised, one per call, before reports succeed."""

    def __init__(
        self,
        failures: list[BaseException] | None = None,
        on_report: Callable[[], None] | None = None,
        events: list[Any] | None = None,
    ) -> None:
        self.failures = list(failures or [])
        self.on_report = on_report
        self.events = events if events is not None else []
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def _called(self, call: tuple[Any, ...]) -> None:
        with self.lock:
            self.calls.append(call)
            self.events.append(("report", call[1]))
        if self.on_report is not None:
            self.on_report()
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> int:
        self._called(("succeeded", token, output))
        return len(self.calls)

    def report_task_failed(self, token: str, error: str, cause: str) -> int:
        self._called(("failed", token, error, cause))
        return len(self.calls)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A shared list of ("report", token) and ("ack", tag) events, in the order they happen."""
    log: list[Any] = []
    real_ack = kombu.message.Message.ack

    def ack(self: Any, multiple: bool = False) -> None:
        log.append(("ack", self.delivery_tag))
        real_ack(self, multiple=multiple)

    monkeypatch.setattr(kombu.message.Message, "ack", ack)
    return log


@contextmanager
def running(
    queue: str, handler: Callable[[Any], Any], reporter: Any, **kwargs: Any
) -> Iterator[Worker]:
    """A started in-process worker on `memory://`, stopped at the end."""
    kwargs.setdefault("transport_url", MEMORY)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("transport_options", FAST)
    worker = Worker(queue, handler, reporter=reporter, **kwargs)
    worker.start()
    try:
        yield worker
    finally:
        assert worker.stop(timeout=3), "the worker's threads did not end"


def acks(events: list[Any]) -> list[Any]:
    return [event for event in events if event[0] == "ack"]


# -- the order of things ---------------------------------------------------------------------


def test_success_is_reported_before_the_message_is_deleted(events: list[Any]) -> None:
    queue = new_queue()
    seen: list[Any] = []
    acked_during_report: list[int] = []
    reporter = FakeReporter(
        on_report=lambda: acked_during_report.append(len(acks(events))), events=events
    )
    publish(MEMORY, queue, {"job": "extract", "source": "s3://in.csv"}, token="tok-1")

    def handle(body: Any) -> dict[str, Any]:
        seen.append(body)
        return {"rows": [1, 2, 3]}

    with running(queue, handle, reporter) as worker:
        wait_for(lambda: acks(events), what="the ack")
    assert seen == [{"job": "extract", "source": "s3://in.csv"}]
    assert reporter.calls == [("succeeded", "tok-1", {"rows": [1, 2, 3]})]
    assert acked_during_report == [0]  # nothing was deleted while the report was being made
    assert [event[0] for event in events] == ["report", "ack"]
    assert queue_size(MEMORY, queue) == 0
    stats = worker.stats
    assert (stats.received, stats.succeeded, stats.kept) == (1, 1, 0)


def test_an_exception_is_reported_as_a_failure_then_deleted(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    publish(MEMORY, queue, {"job": "transform"}, token="tok-2")

    def handle(body: Any) -> dict[str, Any]:
        raise ValueError(f"cannot {body['job']} row 3")

    with running(queue, handle, reporter) as worker:
        wait_for(lambda: acks(events), what="the ack")
    assert reporter.calls == [("failed", "tok-2", "ValueError", "cannot transform row 3")]
    assert [event[0] for event in events] == ["report", "ack"]
    assert worker.stats.failed == 1
    assert queue_size(MEMORY, queue) == 0


@pytest.mark.parametrize(
    ("output", "cause"),
    [
        ([1, 2], "the handler returned list, not a dict"),
        (None, "the handler returned NoneType, not a dict"),
        ({"when": {1, 2}}, "the handler's output is not JSON"),
    ],
)
def test_an_output_that_is_not_a_json_object_fails_the_task(
    events: list[Any], output: Any, cause: str
) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    publish(MEMORY, queue, {"job": "load"})
    with running(queue, lambda body: output, reporter):
        wait_for(lambda: acks(events), what="the ack")
    [(kind, token, error, text)] = reporter.calls
    assert (kind, token, error) == ("failed", "token-1", INVALID_OUTPUT)
    assert text.startswith(cause)


# -- refusals and outages --------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(SETTLED_CODES))
@pytest.mark.parametrize("kind", ["client", "engine"])
def test_a_report_refused_as_already_answered_still_deletes(
    events: list[Any], code: str, kind: str
) -> None:
    queue = new_queue()
    refusal = (
        ClientError(code, "the first report won", 409)
        if kind == "client"
        else EngineError(code, "the first report won", 409)
    )
    reporter = FakeReporter([refusal], events=events)
    calls: list[Any] = []
    publish(MEMORY, queue, {"job": "extract"})
    with running(
        queue, lambda body: calls.append(body) or {}, reporter, visibility_timeout=0.3
    ) as worker:
        wait_for(lambda: acks(events), what="the ack")
        time.sleep(0.5)  # longer than the visibility timeout: it must not come back
    assert len(calls) == 1 and len(reporter.calls) == 1
    assert worker.stats.settled == 1
    assert queue_size(MEMORY, queue) == 0


def test_a_report_that_cannot_be_made_leaves_the_message_for_redelivery(
    events: list[Any],
) -> None:
    queue = new_queue()
    acks_at_retry: list[int] = []
    down = ClientError("ConnectionFailed", "cannot reach the server at http://127.0.0.1:1")
    reporter = FakeReporter([down], events=events)
    reporter.on_report = lambda: acks_at_retry.append(len(acks(events)))
    handled: list[float] = []

    def handle(body: Any) -> dict[str, Any]:
        handled.append(time.monotonic())
        return {"n": len(handled)}

    publish(MEMORY, queue, {"job": "extract"}, token="tok-3")
    with running(queue, handle, reporter, visibility_timeout=0.4) as worker:
        wait_for(lambda: acks(events), what="the ack after the second delivery")
    assert acks_at_retry == [0, 0]  # not deleted after the failed report
    assert [call[0] for call in reporter.calls] == ["succeeded", "succeeded"]
    assert reporter.calls[1] == ("succeeded", "tok-3", {"n": 2})
    assert handled[1] - handled[0] >= 0.35  # it came back after the visibility timeout
    assert len(acks(events)) == 1
    assert (worker.stats.kept, worker.stats.succeeded) == (1, 1)
    assert queue_size(MEMORY, queue) == 0


def test_a_message_whose_report_failed_is_back_on_the_queue_after_stop(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter([ConnectionRefusedError(111, "Connection refused")] * 5, events=events)
    publish(MEMORY, queue, {"job": "extract"})
    worker = Worker(
        queue,
        lambda body: {},
        transport_url=MEMORY,
        reporter=reporter,
        visibility_timeout=30,
        poll_interval=0.05,
        transport_options=FAST,
    )
    worker.start()
    wait_for(lambda: reporter.calls, what="the first report")
    started = time.monotonic()
    assert worker.stop(timeout=3)
    assert time.monotonic() - started < 1.0  # stop does not wait out the visibility timeout
    assert acks(events) == []
    assert queue_size(MEMORY, queue) == 1
    assert worker.stats.kept == 1


def test_run_worker_says_it_started_only_once_sigterm_stops_it_gracefully() -> None:
    # `relayflow worker` logs "SIGTERM or Ctrl-C stops it" from `started`; a supervisor may
    # send SIGTERM the moment it reads that, which must find the graceful handler in place.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed on the main thread")
    queue = new_queue()
    publish(MEMORY, queue, {"job": "extract"})
    reporter = FakeReporter()
    seen: list[Any] = []

    def started() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        if not callable(seen[-1]):  # no handler yet: SIGTERM would kill the test run
            raise AssertionError(f"started before SIGTERM was handled ({seen[-1]!r})")
        os.kill(os.getpid(), signal.SIGTERM)

    fallback: list[bool] = []

    def second_sigterm() -> None:  # bounds the test if the first one were lost
        fallback.append(True)
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(15, second_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    timer.start()
    try:
        stats = run_worker(
            queue,
            lambda body: {},
            transport_url=MEMORY,
            reporter=reporter,
            transport_options=FAST,
            started=started,
        )
    finally:
        timer.cancel()
    assert not fallback, "the SIGTERM sent when the worker said it had started was lost"
    assert len(seen) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # put back
    assert stats.received <= 1  # stopped, whether or not the message was taken first


def test_a_stop_asked_for_before_the_start_is_kept() -> None:
    # A SIGTERM while the broker is checked, before the threads start, must not be forgotten.
    worker = Worker(
        new_queue(),
        lambda body: {},
        transport_url=MEMORY,
        reporter=FakeReporter(),
        transport_options=FAST,
    )
    worker.request_stop()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (worker.run(), done.set()), daemon=True)
    thread.start()
    assert done.wait(5), "run() went on after a stop had been asked for"
    assert not worker.running


# -- tokens and bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("from-header", {"job": "a", "taskToken": "from-body"}, "from-header"),
        (None, {"job": "a", "taskToken": "from-body"}, "from-body"),
        (None, {"job": "a"}, None),
    ],
)
def test_the_token_comes_from_the_header_else_the_body(
    events: list[Any], header: str | None, body: dict[str, Any], expected: str | None
) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    handled: list[Any] = []
    publish(MEMORY, queue, body, token=header)
    with running(queue, lambda b: handled.append(b) or {"ok": True}, reporter) as worker:
        wait_for(lambda: acks(events), what="the ack")
    assert handled == [body]  # a message without a token is still handled
    if expected is None:
        assert reporter.calls == []
        assert worker.stats.no_token == 1
    else:
        assert reporter.calls == [("succeeded", expected, {"ok": True})]
    assert queue_size(MEMORY, queue) == 0


def fake_message(body: Any, content_type: str | None = None, **headers: Any) -> Any:
    return SimpleNamespace(
        body=body, headers=headers, content_type=content_type, content_encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (fake_message(b'{"a": 1}', "application/json"), {"a": 1}),
        (fake_message(b"42", "application/json"), 42),
        (fake_message(b"42", "text/plain"), "42"),
        (fake_message(b'{"a": 1}', "text/plain"), {"a": 1}),
        (fake_message(b"[1, 2]", None), [1, 2]),
        (fake_message(b"hello", "text/plain"), "hello"),
        (fake_message(b"{not json", "application/json"), "{not json"),
        (fake_message(b"\xff\xfe", "application/octet-stream"), b"\xff\xfe"),
        (fake_message("already text", "text/plain"), "already text"),
    ],
)
def test_bodies_are_decoded_as_json_else_text(message: Any, body: Any) -> None:
    assert decode_message(message).body == body


def test_decode_reads_the_relayflow_headers() -> None:
    message = fake_message(
        b'{"taskToken": "body-token"}',
        "application/json",
        **{
            TOKEN_HEADER: b"header-token",
            "x-relayflow-flow": "seed",
            "x-relayflow-execution": "run-1",
            "x-relayflow-step": "extract",
            "x-relayflow-message-id": "M1",
        },
    )
    task = decode_message(message)
    assert (task.token, task.flow, task.execution, task.step, task.message_id) == (
        "header-token",
        "seed",
        "run-1",
        "extract",
        "M1",
    )


def test_a_text_message_reaches_the_handler_as_text(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    handled: list[Any] = []
    publish(MEMORY, queue, "resize image 7", token="tok-7")
    with running(queue, lambda b: handled.append(b) or {}, reporter):
        wait_for(lambda: acks(events), what="the ack")
    assert handled == ["resize image 7"]
    assert reporter.calls == [("succeeded", "tok-7", {})]


# -- concurrency, stop, visibility, logs -----------------------------------------------------


def test_concurrency_handles_messages_in_parallel(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    together = threading.Barrier(3, timeout=3)
    threads: set[str] = set()

    def handle(body: Any) -> dict[str, Any]:
        threads.add(threading.current_thread().name)
        together.wait()  # breaks unless all three run at the same time
        return {"n": body["n"]}

    for n in range(3):
        publish(MEMORY, queue, {"n": n}, token=f"tok-{n}")
    with running(queue, handle, reporter, concurrency=3) as worker:
        wait_for(lambda: len(acks(events)) == 3, what="three acks")
    assert sorted(call[0] for call in reporter.calls) == ["succeeded"] * 3
    assert sorted(call[1] for call in reporter.calls) == ["tok-0", "tok-1", "tok-2"]
    assert len(threads) == 3
    assert worker.stats.succeeded == 3


def test_stop_finishes_the_task_in_progress_and_takes_no_more(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    started = threading.Event()
    handled: list[Any] = []

    def handle(body: Any) -> dict[str, Any]:
        started.set()
        time.sleep(0.4)
        handled.append(body)
        return {"done": True}

    publish(MEMORY, queue, {"n": 1})
    worker = Worker(
        queue,
        handle,
        transport_url=MEMORY,
        reporter=reporter,
        poll_interval=0.05,
        transport_options=FAST,
    )
    worker.start()
    assert started.wait(3)
    assert worker.stop(timeout=3)  # returns once the task in progress is reported and deleted
    assert reporter.calls == [("succeeded", "token-1", {"done": True})]
    assert [event[0] for event in events] == ["report", "ack"]
    assert not worker.running
    publish(MEMORY, queue, {"n": 2})
    time.sleep(0.2)
    assert handled == [{"n": 1}]
    assert queue_size(MEMORY, queue) == 1


def test_a_long_task_extends_its_visibility_until_it_ends(events: list[Any]) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    extended: list[tuple[Any, float, float]] = []
    handler_done: list[float] = []

    def hook(channel: Any, delivery_tag: Any, seconds: float) -> None:
        extended.append((delivery_tag, seconds, time.monotonic()))

    def handle(body: Any) -> dict[str, Any]:
        time.sleep(0.5)
        handler_done.append(time.monotonic())
        return {}

    publish(MEMORY, queue, {"job": "long"})
    with running(
        queue, handle, reporter, visibility_timeout=0.4, extend_every=0.1, visibility_hook=hook
    ):
        wait_for(lambda: acks(events), what="the ack")
        time.sleep(0.2)
    assert len(extended) >= 3
    assert {tag for tag, _, _ in extended} == {acks(events)[0][1]}
    assert {seconds for _, seconds, _ in extended} == {0.4}
    assert max(when for _, _, when in extended) <= handler_done[0]  # none after the handler


def test_visibility_hooks_are_found_by_transport() -> None:
    assert visibility_hook_for(Connection(MEMORY)) is None  # nothing to extend in memory
    assert visibility_hook_for(Connection("redis://127.0.0.1:1/0")) is not None


def test_one_log_line_per_task(events: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    queue = new_queue()
    reporter = FakeReporter(events=events)
    headers = {
        "x-relayflow-flow": "seed",
        "x-relayflow-execution": "run-1",
        "x-relayflow-step": "extract",
    }
    publish(MEMORY, queue, {"job": "extract"}, headers=headers)
    with (
        caplog.at_level("INFO", logger="relayflow_mns.worker"),
        running(queue, lambda body: {}, reporter),
    ):
        wait_for(lambda: acks(events), what="the ack")
    lines = [r.getMessage() for r in caplog.records if r.name == "relayflow_mns.worker"]
    assert len(lines) == 1
    assert lines[0].startswith(
        f"queue={queue} flow=seed execution=run-1 step=extract outcome=succeeded duration_ms="
    )


def test_start_fails_at_once_when_the_broker_is_unreachable() -> None:
    worker = Worker(
        "jobs", dict, transport_url=f"redis://127.0.0.1:{free_port()}/0", reporter=FakeReporter()
    )
    started = time.monotonic()
    with pytest.raises(WorkerError, match="cannot reach the broker"):
        worker.start()
    assert time.monotonic() - started < 3
    with pytest.raises(WorkerError, match="cannot load the transport 'nosuch'"):
        Worker("jobs", dict, transport_url="nosuch://x", reporter=FakeReporter()).start()


# -- with the real engine ---------------------------------------------------------------------


def do_work(body: dict[str, Any]) -> dict[str, Any]:
    """The worker of docs/api.md, for the seed flow."""
    if body["job"] == "extract":
        return {"rows": [1, 2, 3]}
    if body["job"] == "transform":
        return {"rows": [row * 10 for row in body["rows"]]}
    return {"count": len(body["rows"])}


def test_the_seed_flow_runs_to_the_end_with_an_engine_reporter() -> None:
    queue = new_queue()

    async def send(request: TaskRequest) -> Submitted:
        body = (request.service_params or {}).get("MessageBody", request.input)
        headers = {
            "x-relayflow-flow": request.flow_name,
            "x-relayflow-execution": request.execution_name,
            "x-relayflow-step": request.step_name,
        }
        await asyncio.to_thread(publish, MEMORY, queue, body, token=request.token, headers=headers)
        return Submitted({"MessageId": str(request.task_id)})

    async def main() -> None:
        integration = FunctionIntegration({"acs:mns:::/queues/fnf-demo/messages": send})
        async with Engine(
            open_store("memory://"), integrations=[integration], poll_seconds=0.1
        ) as engine:
            await engine.create_flow("seed", SEED.read_text())
            reporter = EngineReporter(engine, asyncio.get_running_loop())
            worker = Worker(
                queue,
                do_work,
                transport_url=MEMORY,
                reporter=reporter,
                poll_interval=0.05,
                transport_options=FAST,
            )
            worker.start()
            try:
                await engine.start_execution("seed", {"source": "s3://in.csv"}, name="run-1")
                done = await engine.describe_execution("seed", "run-1", wait_seconds=4)
            finally:
                assert await asyncio.to_thread(worker.stop, 3)
            assert done.status == "Succeeded", (done.error, done.cause)
            assert done.output is not None
            assert done.output["rows"] == [10, 20, 30] and done.output["loaded"] == 3
            assert worker.stats.succeeded == 3
            with pytest.raises(RuntimeError, match="worker thread"):
                reporter.report_task_succeeded("token", {})

    asyncio.run(asyncio.wait_for(main(), 5))


# -- the command line ------------------------------------------------------------------------


def run_cli(args: list[str], cwd: Path) -> Any:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli.worker, args, prog_name="relayflow worker")
    finally:
        os.chdir(old)


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(cli.worker, ["--help"], prog_name="relayflow worker")
    assert result.exit_code == 0
    assert "relayflow worker fnf-demo --handler jobs:handle" in result.output
    assert cli.DEFAULT_TRANSPORT == "relayflow-sqlite:///relayflow-queues.db"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("jobs", "--handler must be MODULE:FUNCTION"),
        ("no_such_module_here:handle", "cannot import module 'no_such_module_here'"),
        ("jobs:missing", "module 'jobs' has no attribute 'missing'"),
        ("jobs:VALUE", "'jobs:VALUE' is an int, not a function"),
    ],
)
def test_cli_bad_handler_is_one_line_and_exit_2(tmp_path: Path, handler: str, message: str) -> None:
    module = f"jobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("VALUE = 1\n\ndef handle(body):\n    return {}\n")
    handler = handler.replace("jobs", module)
    (tmp_path / "relayflow.toml").write_text('[integrations.mns]\ntransport = "memory://"\n')
    result = run_cli(["q", "--handler", handler, "--config", "relayflow.toml"], tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("relayflow: InvalidHandler: ")
    assert message.replace("jobs", module) in lines[0]


def test_cli_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "jobs_ok.py").write_text("def handle(body):\n    return {}\n")
    config = tmp_path / "relayflow.toml"
    config.write_text(f'[integrations.mns]\ntransport = "redis://127.0.0.1:{free_port()}/0"\n')
    result = run_cli(["q", "--handler", "jobs_ok:handle", "--config", str(config)], tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relayflow: BrokerUnreachable: cannot reach")


def test_cli_reads_the_broker_from_integrations_mns(tmp_path: Path) -> None:
    config = tmp_path / "relayflow.toml"
    config.write_text(
        '[integrations.mns]\ntransport = "redis://h:6379/1"\n'
        "transport_options = { visibility_timeout = 5, unacked_restore_throttle = 1 }\n"
    )
    url, options, visibility = cli.broker_settings(load_config(str(config)))
    assert (url, visibility) == ("redis://h:6379/1", 5.0)
    assert options == {"visibility_timeout": 5, "unacked_restore_throttle": 1}
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert cli.broker_settings(load_config(str(empty)))[0] == cli.DEFAULT_TRANSPORT


# -- the embedded SQLite transport -----------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    pytest.importorskip("relayflow_mns.sqlite_transport")
    return f"relayflow-sqlite:///{tmp_path / 'queues.db'}"


def test_sqlite_the_message_stays_queued_until_the_report_is_made(
    sqlite_url: str, tmp_path: Path
) -> None:
    queue = new_queue()
    rows: list[int] = []

    def count_rows() -> None:
        with sqlite3.connect(tmp_path / "queues.db") as db:
            rows.append(db.execute("SELECT COUNT(*) FROM rfmq_messages").fetchone()[0])

    reporter = FakeReporter(on_report=count_rows)
    publish(sqlite_url, queue, {"job": "extract"}, token="tok-s")
    with running(queue, lambda body: {"ok": 1}, reporter, transport_url=sqlite_url):
        wait_for(lambda: reporter.calls and queue_size(sqlite_url, queue) == 0, what="the ack")
    assert rows == [1]  # still in the queue (hidden) while the report was made
    assert reporter.calls == [("succeeded", "tok-s", {"ok": 1})]
    count_rows()
    assert rows[-1] == 0


@pytest.mark.parametrize(("extend_every", "runs"), [(None, 1), (0, 2)])
def test_sqlite_a_long_task_keeps_its_message_hidden_only_while_extended(
    sqlite_url: str, extend_every: float | None, runs: int
) -> None:
    assert long_task_runs(sqlite_url, {}, extend_every) == runs


# -- Redis -----------------------------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server")
# Restore unacked messages on every idle poll, and block in BRPOP for 0.2 s at most, so that
# redelivery and stops are quick.
REDIS_FAST = {"unacked_restore_throttle": 1, "polling_interval": 0.2}


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (CI installs it); Redis tests skipped")
    import redis

    port = free_port()
    server = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, 5, "redis-server to answer PING")
        yield port
    finally:
        server.terminate()
        server.wait(5)


@pytest.fixture
def redis_url(redis_port: int) -> str:
    import redis

    redis.Redis(port=redis_port).flushall()
    return f"redis://127.0.0.1:{redis_port}/0"


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def test_redis_report_happens_while_the_message_is_still_held(redis_url: str) -> None:
    queue = new_queue()
    held: list[int] = []
    r = redis_client(redis_url)
    reporter = FakeReporter(on_report=lambda: held.append(r.hlen("unacked")))
    publish(redis_url, queue, {"job": "extract"}, token="tok-r")
    with running(
        queue,
        lambda body: {"ok": 1},
        reporter,
        transport_url=redis_url,
        transport_options=REDIS_FAST,
    ):
        wait_for(lambda: reporter.calls and r.hlen("unacked") == 0, what="the ack")
    assert held == [1]  # the report came while the message was delivered but not deleted
    assert reporter.calls == [("succeeded", "tok-r", {"ok": 1})]
    assert r.llen(queue) == 0 and r.hlen("unacked") == 0


def long_task_runs(url: str, options: dict[str, Any], extend_every: float | None) -> int:
    """How often a 2 s task runs with two workers on a queue whose visibility is 1 s."""
    queue = new_queue()
    reporter = FakeReporter()
    calls: list[str] = []

    def handle(body: Any) -> dict[str, Any]:
        calls.append(threading.current_thread().name)
        time.sleep(2.0 if len(calls) == 1 else 0)
        return {}

    publish(url, queue, {"job": "long"})
    workers = [
        Worker(
            queue,
            handle,
            reporter=reporter,
            transport_url=url,
            transport_options=options,
            visibility_timeout=1,
            extend_every=extend_every,
            poll_interval=0.2,
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(reporter.calls) >= 1, 4, "the first report")
        time.sleep(0.2)
    finally:
        for worker in workers:
            worker.request_stop()
        assert all(worker.stop(timeout=3) for worker in workers)
    assert queue_size(url, queue) == 0
    return len(calls)


@pytest.mark.parametrize(("extend_every", "runs"), [(None, 1), (0, 2)])
def test_redis_a_long_task_keeps_its_message_hidden_only_while_extended(
    redis_url: str, extend_every: float | None, runs: int
) -> None:
    assert long_task_runs(redis_url, REDIS_FAST, extend_every) == runs
    assert redis_client(redis_url).hlen("unacked") == 0


class FakeApi:
    """Just enough of the HTTP API for reports: the first report on a token wins."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, str]] = []
        self.answered: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                params = dict(parse_qsl(self.rfile.read(length).decode()))
                with api.lock:
                    token = params.get("TaskToken", "")
                    if token == CHECK_TOKEN:  # the worker's credentials check at start
                        status, doc = 400, {"Code": "TaskTokenMalformed", "Message": "no task"}
                    elif token in api.answered:
                        api.attempts.append(params)
                        status, doc = 409, {"Code": "TaskAlreadyCompleted", "Message": "won"}
                    else:
                        api.attempts.append(params)
                        api.answered[token] = params
                        status, doc = 200, {"EventId": len(api.answered)}
                data = json.dumps({**doc, "RequestId": "R"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.close()


JOBS = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path

    def handle(body):
        if body.get("job") == "hang-once":
            marker = Path("started.pid")
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                time.sleep(30)
        return {"job": body["job"], "pid": os.getpid()}
    """
)


@contextmanager
def worker_process(
    tmp_path: Path, queue: str, name: str, concurrency: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    stderr = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from relayflow_mns.cli import worker; worker(prog_name='relayflow worker')",
            queue,
            "--handler",
            "jobs_cli:handle",
            "--concurrency",
            str(concurrency),
            "--config",
            "relayflow.toml",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        stderr.close()


def write_worker_files(tmp_path: Path, redis_url: str, api: FakeApi) -> None:
    (tmp_path / "jobs_cli.py").write_text(JOBS)
    (tmp_path / "relayflow.toml").write_text(
        textwrap.dedent(
            f"""
            [integrations.mns]
            transport = "{redis_url}"
            transport_options = {{ visibility_timeout = 1, unacked_restore_throttle = 1 }}

            [client]
            endpoint = "{api.endpoint}"
            timeout_seconds = 5
            """
        )
    )


def test_redis_worker_process_reports_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str, api: FakeApi
) -> None:
    queue = new_queue()
    write_worker_files(tmp_path, redis_url, api)
    headers = {"x-relayflow-flow": "seed", "x-relayflow-execution": "run-1"}
    for n in range(3):
        publish(redis_url, queue, {"job": f"job-{n}"}, token=f"tok-{n}", headers=headers)
    with worker_process(tmp_path, queue, "worker", concurrency=2) as process:
        wait_for(lambda: len(api.answered) == 3, PROCESS_BOUND, "three reports")
        process.send_signal(signal.SIGTERM)
        assert process.wait(PROCESS_BOUND) == 0
    outputs = {token: json.loads(p["Output"]) for token, p in api.answered.items()}
    assert {token: out["job"] for token, out in outputs.items()} == {
        "tok-0": "job-0",
        "tok-1": "job-1",
        "tok-2": "job-2",
    }
    assert len(api.attempts) == 3
    log = (tmp_path / "worker.log").read_text()
    assert log.count("outcome=succeeded") == 3
    assert f"queue={queue} flow=seed execution=run-1" in log
    r = redis_client(redis_url)
    assert r.llen(queue) == 0 and r.hlen("unacked") == 0


def test_redis_a_worker_killed_mid_task_leaves_the_message_to_another(
    tmp_path: Path, redis_url: str, api: FakeApi
) -> None:
    queue = new_queue()
    write_worker_files(tmp_path, redis_url, api)
    publish(redis_url, queue, {"job": "hang-once"}, token="tok-kill")
    marker = tmp_path / "started.pid"
    with (
        worker_process(tmp_path, queue, "first") as first,
        worker_process(tmp_path, queue, "second") as second,
    ):
        pid = int(
            wait_for(
                lambda: marker.exists() and marker.read_text(), PROCESS_BOUND, "the task to start"
            )
        )
        victim, survivor = (first, second) if first.pid == pid else (second, first)
        victim.send_signal(signal.SIGKILL)
        victim.wait(PROCESS_BOUND)
        wait_for(lambda: api.answered, PROCESS_BOUND, "the report from the other worker")
        time.sleep(0.2)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(PROCESS_BOUND) == 0
    assert len(api.attempts) == 1  # reported exactly once
    output = json.loads(api.answered["tok-kill"]["Output"])
    assert output == {"job": "hang-once", "pid": survivor.pid}
    r = redis_client(redis_url)
    assert r.llen(queue) == 0 and r.hlen("unacked") == 0
