"""The audit log fed by a real engine run: the lines it writes, where its settings come from."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import relayflow_audit

from relayflow.config import ConfigError, load_config
from relayflow.engine import Engine, Failed, FunctionIntegration, Submitted, TaskRequest
from relayflow.plugins import PluginManager
from relayflow.plugins.events import HOOK_FOR_EVENT
from relayflow.store import open_store
from relayflow.store.records import HistoryEvent

HERE = Path(__file__).resolve().parents[1]

CALLBACK_FLOW = """\
version: v1
type: flow
steps:
  - type: pass
    name: prepare
  - type: task
    name: ask
    resourceArn: acs:mns:::/queues/jobs/messages
    pattern: waitForCallback
"""

FAILING_FLOW = """\
version: v1
type: flow
steps:
  - type: task
    name: boom
    action: test:Fail
"""

PASS_FLOW = """\
version: v1
type: flow
steps:
  - type: pass
    name: only
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts in its own directory, with no configuration and a fresh log."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYFLOW_CONFIG", raising=False)
    monkeypatch.delenv(relayflow_audit.ENV_PATH, raising=False)
    relayflow_audit.configure()
    yield
    relayflow_audit.configure()


def manager() -> PluginManager:
    plugins = PluginManager()
    plugins.register(relayflow_audit)
    return plugins


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def run_flows() -> dict[str, list[HistoryEvent]]:
    """Run a callback task to success and a failing task; return both histories."""
    tokens: list[str] = []

    async def send(request: TaskRequest) -> Submitted:
        tokens.append(request.token)
        return Submitted({"MessageId": "m-1"})

    async def fail(request: TaskRequest) -> Failed:
        return Failed("Boom", "it broke")

    integration = FunctionIntegration({"acs:mns:::/queues/jobs/messages": send, "test:Fail": fail})
    histories: dict[str, list[HistoryEvent]] = {}
    async with Engine(
        open_store("memory://"), integrations=[integration], plugins=manager()
    ) as engine:
        await engine.create_flow("jobs", CALLBACK_FLOW)
        await engine.create_flow("broken", FAILING_FLOW)
        await engine.start_execution("jobs", {"id": 7}, name="job-7")
        await engine.start_execution("broken", {}, name="b-1")
        while not tokens:
            await asyncio.sleep(0.01)
        await engine.report_task_succeeded(tokens[0], {"done": True})
        for flow, name in (("jobs", "job-7"), ("broken", "b-1")):
            run = await engine.describe_execution(flow, name, wait_seconds=10)
            assert run.done
            page = await engine.get_execution_history(flow, name, limit=100)
            histories[name] = page.events
    return histories


async def run_pass_flow() -> None:
    async with Engine(open_store("memory://"), plugins=manager()) as engine:
        await engine.create_flow("tiny", PASS_FLOW)
        await engine.start_execution("tiny", {}, name="t-1")
        await engine.describe_execution("tiny", "t-1", wait_seconds=10)


def test_every_lifecycle_event_of_a_real_run_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    relayflow_audit.configure(log)
    histories = asyncio.run(run_flows())
    lines = read_lines(log)

    job = [line for line in lines if line["execution"] == "job-7"]
    assert [(x["type"], x["step"], x["event_id"]) for x in job] == [
        ("ExecutionStarted", None, 1),
        ("StepEntered", "prepare", 2),
        ("StepExited", "prepare", 4),
        ("StepEntered", "ask", 5),
        ("TaskScheduled", "ask", 6),
        ("TaskSubmitted", "ask", 8),
        ("TaskSucceeded", "ask", 9),
        ("StepExited", "ask", 11),
        ("ExecutionSucceeded", None, 12),
    ]
    assert {x["flow"] for x in job} == {"jobs"}
    assert [x["status"] for x in job if "status" in x] == ["Running", "Succeeded"]
    assert [x["task_id"] for x in job if "task_id" in x] == [6, 6, 6]

    broken = [line for line in lines if line["execution"] == "b-1"]
    assert broken[-1]["type"] == "ExecutionFailed"
    assert broken[-1]["status"] == "Failed"
    assert broken[-1]["error"] == "Boom"
    assert [x["error"] for x in broken if x["type"] == "TaskFailed"] == ["Boom"]

    # Exactly the events the hooks cover, each once, in the order of the history.
    for name, events in histories.items():
        expected = [(e.type, e.event_id) for e in events if e.type in HOOK_FOR_EVENT]
        mine = [(x["type"], x["event_id"]) for x in lines if x["execution"] == name]
        assert mine == expected
        for event, line in zip(
            (e for e in events if e.type in HOOK_FOR_EVENT),
            (x for x in lines if x["execution"] == name),
            strict=True,
        ):
            stamp = datetime.fromisoformat(line["time"])
            assert abs(stamp.timestamp() - event.time) < 0.001


def test_the_audit_table_of_relayflow_toml_sets_the_path(tmp_path: Path) -> None:
    (tmp_path / "relayflow.toml").write_text('[audit]\npath = "logs/audit.jsonl"\n')
    asyncio.run(run_pass_flow())
    lines = read_lines(tmp_path / "logs" / "audit.jsonl")
    assert [x["type"] for x in lines] == [
        "ExecutionStarted",
        "StepEntered",
        "StepExited",
        "ExecutionSucceeded",
    ]
    assert relayflow_audit.current().path == tmp_path / "logs" / "audit.jsonl"


def test_without_a_table_the_default_file_is_used(tmp_path: Path) -> None:
    asyncio.run(run_pass_flow())
    assert len(read_lines(tmp_path / relayflow_audit.DEFAULT_PATH)) == 4


def test_relayflow_config_and_the_environment_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "conf" / "relayflow.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('[audit]\npath = "from-file.jsonl"\n')
    monkeypatch.setenv("RELAYFLOW_CONFIG", str(elsewhere))
    asyncio.run(run_pass_flow())
    assert (tmp_path / "from-file.jsonl").is_file()

    monkeypatch.setenv(relayflow_audit.ENV_PATH, str(tmp_path / "from-env.jsonl"))
    relayflow_audit.configure()
    asyncio.run(run_pass_flow())
    assert len(read_lines(tmp_path / "from-env.jsonl")) == 4


def test_the_table_is_checked_and_shown_by_relayflow(tmp_path: Path) -> None:
    plugins = manager()
    (tmp_path / "relayflow.toml").write_text('[audit]\npath = "a.jsonl"\n')
    config = load_config()
    plugins.check_config(config)
    settings = plugins.settings(config, "audit")
    assert isinstance(settings, relayflow_audit.AuditSettings)
    assert settings.path == "a.jsonl"

    (tmp_path / "relayflow.toml").write_text('[audit]\npth = "a.jsonl"\n')
    with pytest.raises(ConfigError, match=r"relayflow.toml: unknown key 'audit.pth'"):
        plugins.check_config(load_config())


def test_relayflow_run_writes_the_log_through_plugins_modules(tmp_path: Path) -> None:
    (tmp_path / "relayflow.toml").write_text(
        '[engine]\nstore = "memory://"\n\n'
        '[plugins]\nmodules = ["relayflow_audit"]\n\n'
        '[audit]\npath = "cli.jsonl"\n'
    )
    (tmp_path / "flow.yaml").write_text(PASS_FLOW)
    env = {"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", "from relayflow.cli import main; main()", "run", "flow.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = read_lines(tmp_path / "cli.jsonl")
    assert lines[0]["type"] == "ExecutionStarted"
    assert lines[-1]["type"] == "ExecutionSucceeded"
    assert {x["flow"] for x in lines} == {"flow"}
