"""The worker's hooks: a real `relayflow_mns.worker.Worker` on kombu's in-process broker.

Plugin objects are registered on a `WorkerPlugins` given to the worker, as `relayflow worker`
does with the ones it loads. Reports go to a reporter that notes them (the hooks are what is
tested here, not the API). One plugin raises in every hook: the messages must go through all
the same, and the worker must keep running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kombu import Connection, Producer, Queue

from relayflow.cli._common import Invalid
from relayflow.plugins import hookimpl
from relayflow.worker import hooks as worker_hooks
from relayflow.worker.hooks import MODULES_ENV, WorkerInfo, WorkerMessage, WorkerPlugins
from relayflow_mns import cli
from relayflow_mns.worker import TOKEN_HEADER, Worker
from relayflow_mns.worker._consumer import MAX_PLUGIN_HEADERS, plugin_headers

MEMORY = "memory://"


def publish(queue: str, body: Any, headers: dict[str, Any]) -> None:
    with Connection(MEMORY) as connection:
        Producer(connection.default_channel).publish(
            json.dumps(body),
            routing_key=queue,
            declare=[Queue(queue, routing_key=queue)],
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            headers=headers,
        )


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


class Reporter:
    """Notes reports, and whether a plugin's message context was open when each came."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.calls: list[tuple[str, str, bool]] = []

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> None:
        self.calls.append(("succeeded", token, self.watcher.inside))

    def report_task_failed(self, token: str, error: str, cause: str) -> None:
        self.calls.append(("failed", token, self.watcher.inside))


class Watcher:
    """Records every worker hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.inside = False
        self.lock = threading.Lock()

    def note(self, name: str, value: Any) -> None:
        with self.lock:
            self.calls.append((name, value))

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return [value for kind, value in self.calls if kind == name]

    @hookimpl
    def relayflow_worker_started(self, worker: WorkerInfo) -> None:
        self.note("started", worker)

    @hookimpl
    def relayflow_worker_message(self, message: WorkerMessage) -> Any:
        @contextmanager
        def span() -> Iterator[None]:
            self.inside = True
            try:
                yield
            finally:
                self.inside = False
                self.note("left", message.step)

        self.note("message", message)
        return span()

    @hookimpl
    def relayflow_worker_message_handled(
        self, message: WorkerMessage, outcome: str, seconds: float
    ) -> None:
        self.note("handled", (message.step, outcome, seconds))

    @hookimpl
    def relayflow_worker_stopping(self, worker: WorkerInfo) -> None:
        self.note("stopping", worker)


class Failing:
    """Raises in every worker hook, or hands a context manager that raises on the way out.

    Marked with `relayflow.worker.hooks.hookimpl`, where `Watcher` uses `relayflow.plugins`':
    both are the same marker.
    """

    @worker_hooks.hookimpl
    def relayflow_worker_started(self, worker: WorkerInfo) -> None:
        raise RuntimeError("broken plugin")

    @worker_hooks.hookimpl
    def relayflow_worker_serve_metrics(self, host: str, port: int) -> bool:
        raise OSError("address already in use")

    @worker_hooks.hookimpl
    def relayflow_worker_message(self, message: WorkerMessage) -> Any:
        @contextmanager
        def broken() -> Iterator[None]:
            yield
            raise RuntimeError("broken plugin")

        return broken()

    @worker_hooks.hookimpl
    def relayflow_worker_message_handled(
        self, message: WorkerMessage, outcome: str, seconds: float
    ) -> None:
        raise RuntimeError("broken plugin")

    @worker_hooks.hookimpl
    def relayflow_worker_stopping(self, worker: WorkerInfo) -> None:
        raise RuntimeError("broken plugin")


def handle(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}


def test_each_message_reaches_the_plugins_beside_a_failing_one() -> None:
    queue = f"q-{uuid.uuid4().hex[:10]}"
    watcher, plugins = Watcher(), WorkerPlugins()
    plugins.register(Failing(), "failing")
    plugins.register(watcher, "watcher")
    reporter = Reporter(watcher)
    worker = Worker(
        queue,
        handle,
        transport_url=MEMORY,
        reporter=reporter,
        poll_interval=0.05,
        transport_options={"polling_interval": 0.01},
        plugins=plugins,
    )
    base = {"x-relayflow-flow": "f", "x-relayflow-execution": "run-1"}
    publish(
        queue,
        {"n": 1},
        {**base, "x-relayflow-step": "one", TOKEN_HEADER: "tok-1", "traceparent": "00-ab-cd-01"},
    )
    publish(queue, {"fail": True}, {**base, "x-relayflow-step": "two", TOKEN_HEADER: "tok-2"})
    worker.start()
    try:
        assert watcher.of("started") == [WorkerInfo((queue,), 1, "memory")]
        wait_for(lambda: len(watcher.of("handled")) == 2)
    finally:
        assert worker.stop(timeout=3)
    worker.stop(timeout=3)  # a second stop tells nobody again
    assert worker.error is None and worker.running is False
    assert (worker.stats.succeeded, worker.stats.failed) == (1, 1)
    # Each report came inside the plugin's context, which was left before the next message.
    assert reporter.calls == [("succeeded", "tok-1", True), ("failed", "tok-2", True)]
    assert watcher.of("left") == ["one", "two"]
    first, second = watcher.of("message")
    assert (first.queue, first.flow, first.execution, first.step) == (queue, "f", "run-1", "one")
    assert first.headers["traceparent"] == "00-ab-cd-01"
    assert TOKEN_HEADER not in first.headers and TOKEN_HEADER not in second.headers
    handled = watcher.of("handled")
    assert [(step, outcome) for step, outcome, _ in handled] == [
        ("one", "succeeded"),
        ("two", "failed"),
    ]
    assert all(seconds >= 0 for _, _, seconds in handled)
    assert watcher.of("stopping") == [WorkerInfo((queue,), 1, "memory")]


def test_plugins_see_headers_as_bounded_text_without_the_token() -> None:
    headers: dict[str, Any] = {f"h{i:03}": i for i in range(100)}
    headers = {TOKEN_HEADER: "secret", "long": "v" * 5000, "raw": b"\xffbytes", **headers}
    seen = plugin_headers(headers)
    assert len(seen) == MAX_PLUGIN_HEADERS and TOKEN_HEADER not in seen
    assert seen["long"] == "v" * 1000 and seen["raw"] == "\ufffdbytes" and seen["h000"] == "0"
    assert all(isinstance(v, str) for v in seen.values())


def test_metrics_need_a_plugin_that_serves_them() -> None:
    class Serving:
        def __init__(self) -> None:
            self.asked: list[tuple[str, int]] = []

        @hookimpl
        def relayflow_worker_serve_metrics(self, host: str, port: int) -> bool:
            self.asked.append((host, port))
            return True

    with pytest.raises(Invalid) as none:
        cli.serve_metrics(WorkerPlugins(), "127.0.0.1", 9464)
    assert none.value.code == "MetricsUnavailable"
    assert "needs a worker plugin that serves metrics, such as relayflow-prometheus" in str(
        none.value.message
    )
    failing = WorkerPlugins()
    failing.register(Failing())
    with pytest.raises(Invalid) as broken:
        cli.serve_metrics(failing, "127.0.0.1", 9464)
    assert "no worker plugin could serve metrics on 127.0.0.1:9464" in broken.value.message
    serving, plugin = WorkerPlugins(), Serving()
    serving.register(plugin)
    cli.serve_metrics(serving, "0.0.0.0", 9464)
    assert plugin.asked == [("0.0.0.0", 9464)]
    for host in ("", "local host", "h" * 254):
        with pytest.raises(Invalid, match="--metrics-host must be a host name"):
            cli.serve_metrics(serving, host, 9464)
    assert plugin.asked == [("0.0.0.0", 9464)]  # a bad host never reaches a plugin


def test_the_worker_command_documents_and_checks_its_metrics_options() -> None:
    runner = CliRunner()
    shown = runner.invoke(cli.worker, ["--help"], prog_name="relayflow worker")
    assert "--metrics-port PORT" in shown.output and "relayflow-prometheus" in shown.output
    bad = runner.invoke(
        cli.worker, ["q", "--handler", "x:y", "--metrics-port", "70000"], prog_name="w"
    )
    assert bad.exit_code == 2 and "70000 is not in the range 1<=x<=65535" in bad.output


def test_modules_named_in_the_environment_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_worker_plugin.py").write_text(
        "from relayflow.plugins import hookimpl\n\n"
        "STARTED = []\n\n"
        "@hookimpl\n"
        "def relayflow_worker_started(worker):\n"
        "    STARTED.append(worker.queues)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(MODULES_ENV, " my_worker_plugin , missing_worker_plugin_xyz")
    plugins = WorkerPlugins.load()
    plugins.started(WorkerInfo(("a",), 1, "redis"))
    assert sys.modules["my_worker_plugin"].STARTED == [("a",)]


def test_the_worker_runtime_loads_neither_the_engine_nor_the_configuration() -> None:
    code = (
        "import json, sys, relayflow_mns.worker, relayflow.worker.hooks, relayflow_mns.cli\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    heavy = ("relayflow.engine", "relayflow.plugins", "relayflow.config", "pydantic_settings")
    assert [m for m in json.loads(done.stdout) if m.startswith(heavy)] == []
