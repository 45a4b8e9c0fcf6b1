"""`relayflow executions describe` shows what issue 15 adds: waiting work, redrives, the parent."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.api_server import TOKEN_FLOW, ApiServer
from tests.cli.remote_cli import Run, remote_cli


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    return remote_cli(api_server, tmp_path, monkeypatch, "admin")


def test_describe_shows_waiting_work_and_redrives(api_server: ApiServer, run: Run) -> None:
    flow = "cli_desc_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": TOKEN_FLOW, "Type": "FDL"})
    api_server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "e"})

    shown = run("executions", "describe", flow, "e", "--waiting")
    assert shown.exit_code == 0, shown.output
    assert "Waiting:" in shown.output and "  job: task acs:mns:" in shown.output
    assert "Redrives:" not in shown.output and "Parent:" not in shown.output

    assert run("executions", "stop", flow, "e").exit_code == 0
    stopped = run("executions", "describe", flow, "e", "--waiting")
    assert "Waiting: nothing" in stopped.output, stopped.output

    assert run("executions", "redrive", flow, "e").exit_code == 0
    again = run("executions", "describe", flow, "e", "--waiting", "--json")
    doc = json.loads(again.stdout)
    assert doc["Status"] == "Running" and doc["RedriveCount"] == 1
    assert [w["StepName"] for w in doc["Waiting"]] == ["job"]
    plain = run("executions", "describe", flow, "e")
    assert (
        "Redrives: 1" in plain.output
        and "Status:   Running" in plain.output
        and "Waiting:" not in plain.output
    )
