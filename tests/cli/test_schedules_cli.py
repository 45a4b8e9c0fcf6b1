"""`relayflow schedules ...` against the session's real server: output, --json, exit codes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from tests.api_server import ApiServer
from tests.cli.remote_cli import Run, remote_cli

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: hello\n"
YEARLY = "0 0 0 1 1 *"


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the session's server (the admin key)."""
    return remote_cli(api_server, tmp_path, monkeypatch, "admin")


@pytest.fixture
def flow(api_server: ApiServer) -> str:
    name = "cli_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": PASS_FLOW, "Type": "FDL"})
    return name


def test_create_describe_list_update_delete(run: Run, flow: str) -> None:
    made = run("schedules", "create", flow, "nightly", "--cron", YEARLY, "--payload", '{"a": 1}')
    assert made.exit_code == 0, made.output
    assert made.output == f"created schedule nightly of {flow} (enabled)\n"

    shown = run("schedules", "describe", flow, "nightly")
    assert shown.exit_code == 0, shown.output
    assert f"Cron:        {YEARLY}\n" in shown.output and "Enabled:     yes\n" in shown.output
    doc = json.loads(run("schedules", "describe", flow, "nightly", "--json").stdout)
    assert doc["Payload"] == '{"a":1}' and "RequestId" not in doc

    paused = run("schedules", "update", flow, "nightly", "--disable", "--description", "off")
    assert paused.exit_code == 0 and paused.output == f"updated schedule nightly of {flow}\n"
    listed = run("schedules", "list", flow)
    assert listed.output.splitlines()[0].split() == ["NAME", "CRON", "ENABLED", "DESCRIPTION"]
    assert listed.output.splitlines()[1].split()[-2:] == ["no", "off"]
    names = json.loads(run("schedules", "list", flow, "--json").stdout)["Schedules"]
    assert [s["ScheduleName"] for s in names] == ["nightly"]

    gone = run("schedules", "delete", flow, "nightly")
    assert gone.exit_code == 0 and gone.output == f"deleted schedule nightly of {flow}\n"
    assert run("schedules", "list", flow).output == f"no schedules for {flow}\n"


def test_the_servers_refusals_exit_1_and_local_mistakes_exit_2(run: Run, flow: str) -> None:
    five = run("schedules", "create", flow, "s", "--cron", "*/5 * * * *")
    assert five.exit_code == 1
    assert five.output.startswith("relayflow: InvalidArgument: CronExpression '*/5 * * * *' has 5")
    missing = run("schedules", "describe", flow, "nope")
    assert missing.exit_code == 1
    assert missing.output == (
        f"relayflow: ScheduleNotExists: Schedule 'nope' does not exist in flow '{flow}'\n"
    )
    no_flow = run("schedules", "list", "no_such_flow")
    assert no_flow.output == "relayflow: FlowNotExists: Flow 'no_such_flow' does not exist\n"
    bad_json = run("schedules", "create", flow, "s", "--cron", YEARLY, "--payload", "[1]")
    assert bad_json.exit_code == 2 and "InvalidJSON" in bad_json.output
    both = run(
        "schedules", "create", flow, "s", "--cron", YEARLY, "--payload", "{}", "--payload-file", "-"
    )
    assert both.exit_code == 2


def test_help_teaches() -> None:
    result = CliRunner().invoke(main, ["schedules", "create", "--help"])
    assert result.exit_code == 0
    assert "seconds first" in result.output and "--payload-file" in result.output
