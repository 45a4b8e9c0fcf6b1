"""relayflow_mns.worker's consumer: a lost broker is reconnected to, a bug stops the worker."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from kombu import Connection, Producer, Queue

from relayflow_mns.worker import Worker, _consumer

MEMORY = "memory://"
FAST = {"polling_interval": 0.01}


class Reporter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> Any:
        self.calls.append(("succeeded", token, output))

    def report_task_failed(self, token: str, error: str, cause: str) -> Any:
        self.calls.append(("failed", token, error, cause))


def publish(queue: str, body: dict[str, Any], token: str) -> None:
    with Connection(MEMORY) as connection:
        Producer(connection.default_channel).publish(
            json.dumps(body),
            routing_key=queue,
            declare=[Queue(queue, routing_key=queue)],
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            headers={"x-relayflow-task-token": token},
        )


def worker(queue: str | list[str], reporter: Reporter) -> Worker:
    return Worker(
        queue,
        lambda body: {"n": body["n"]},
        transport_url=MEMORY,
        reporter=reporter,
        transport_options=FAST,
        poll_interval=0.05,
    )


def test_a_bug_stops_the_worker_and_is_not_taken_for_a_lost_broker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    def broken(message: Any) -> Any:
        calls.append(message)
        raise RuntimeError("a bug in decoding")

    monkeypatch.setattr(_consumer, "decode_message", broken)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    publish(queue, {"n": 1}, "tok")
    reporter = Reporter()
    running = worker(queue, reporter)
    with caplog.at_level(logging.WARNING, logger="relayflow_mns.worker"):
        running.start()
        assert running.wait(10), "the worker did not stop by itself"
        assert running.stop(10)
    assert isinstance(running.error, RuntimeError)
    assert len(calls) == 1 and reporter.calls == []
    text = caplog.text
    assert "this is a bug, not the broker" in text and "a bug in decoding" in text
    assert "lost the broker" not in text


def test_a_lost_broker_is_reconnected_to(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = Worker._consume
    failures: list[str] = []

    def flaky(self: Worker, connection: Any) -> None:
        if not failures:
            failures.append("once")
            raise connection.connection_errors[0]("the broker went away")
        real(self, connection)

    monkeypatch.setattr(Worker, "_consume", flaky)
    first, second = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    publish(first, {"n": 1}, "tok-a")
    publish(second, {"n": 2}, "tok-b")
    reporter = Reporter()
    running = worker([first, second], reporter)
    with caplog.at_level(logging.INFO, logger="relayflow_mns.worker"), running:
        deadline = 200
        while len(reporter.calls) < 2 and deadline:
            running.wait(0.05)
            deadline -= 1
    assert running.error is None
    assert sorted(reporter.calls) == [
        ("succeeded", "tok-a", {"n": 1}),
        ("succeeded", "tok-b", {"n": 2}),
    ]
    assert "lost the broker at memory://" in caplog.text
    assert f"queue={first} " in caplog.text and f"queue={second} " in caplog.text


def test_the_command_says_a_bug_in_one_line_after_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from relayflow_mns import cli

    def broken(message: Any) -> Any:
        raise RuntimeError("a bug in decoding")

    monkeypatch.setattr(_consumer, "decode_message", broken)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bug_jobs.py").write_text("def handle(body):\n    return {}\n")
    (tmp_path / "w.toml").write_text(
        '[integrations.mns]\ntransport = "memory://"\n'
        "transport_options = { polling_interval = 0.01 }\n\n"
        '[client]\nendpoint = "http://127.0.0.1:9"\ntimeout_seconds = 1\n'
    )
    queue = f"q-{uuid.uuid4().hex[:8]}"
    publish(queue, {"n": 1}, "tok")
    result = CliRunner().invoke(
        cli.worker, [queue, "--handler", "bug_jobs:handle", "--config", "w.toml"]
    )
    assert result.exit_code == 1, result.output
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "relayflow: WorkerFailed: the worker stopped on an unexpected error (RuntimeError: a bug"
        )
    )


def test_local_workers_import_every_handler_before_starting_any(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import asyncio
    import threading

    import relayflow_mns
    from relayflow.importing import ImportTargetError
    from relayflow_mns import MnsIntegration, MnsSettings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "local_jobs.py").write_text("def handle(body):\n    return {}\n")
    mns = MnsIntegration(MnsSettings(transport=MEMORY, transport_options=FAST))
    name = f"lw-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        with pytest.raises(ImportTargetError, match="has no attribute 'missing'"):
            relayflow_mns.relayflow_start_local_workers(
                [(name, "local_jobs:handle"), ("other", "local_jobs:missing")], object(), [mns]
            )
        assert not [t for t in threading.enumerate() if name in t.name]
        stop = relayflow_mns.relayflow_start_local_workers(
            [(f"{name},{name}-2", "local_jobs:handle")], object(), [mns]
        )
        assert stop is not None
        assert [t for t in threading.enumerate() if f"{name},{name}-2" in t.name]
        stop()

    asyncio.run(main())
