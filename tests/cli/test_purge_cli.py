"""`relayflow executions purge` and `relayflow flows delete --force` against a real server.

A server of this module's own: a purge of every flow would take the ended executions of other
modules from the session's shared server. Checked: what each command prints, its --json, the
question it asks (and refuses without a terminal), and its exit codes (1 for the server's
refusals, 2 for a mistake caught here).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api_server import KEYS, TOKEN_FLOW, ApiServer, config_text, serving
from tests.cli.remote_cli import Run, remote_cli

PASS = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serving(tmp_path_factory.mktemp("purge-cli"), config_text(keys=KEYS)) as running:
        yield running


@pytest.fixture
def run(server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the module's server (the admin key)."""
    return remote_cli(server, tmp_path, monkeypatch, "admin")


def ended_flow(server: ApiServer, count: int) -> tuple[str, str]:
    """A pass flow with ``count`` ended executions; and a time just after the last ended."""
    name = "pcli_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": name, "Definition": PASS, "Type": "FDL"})
    latest = ""
    for i in range(count):
        server.ok({"Action": "StartExecution", "FlowName": name, "ExecutionName": f"e{i}"})
        doc = server.ok(
            {
                "Action": "DescribeExecution",
                "FlowName": name,
                "ExecutionName": f"e{i}",
                "WaitTimeSeconds": "5",
            }
        )
        latest = max(latest, doc["StoppedTime"])
    moment = datetime.fromisoformat(latest.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return name, moment.astimezone(UTC).isoformat(timespec="milliseconds")


def listed(server: ApiServer, flow: str) -> int:
    doc = server.ok({"Action": "ListExecutions", "FlowName": flow, "Limit": "99"})
    return len(doc["Executions"])


def test_dry_run_then_purge_with_yes(run: Run, server: ApiServer) -> None:
    flow, cut = ended_flow(server, 3)
    dry = run("executions", "purge", "--ended-before", cut, "--flow", flow, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("3 executions that ended before ")
    assert dry.output.rstrip().endswith(f"in flow {flow} would be deleted (dry run: none was)")
    doc = json.loads(
        run(
            "executions", "purge", "--ended-before", cut, "--flow", flow, "--dry-run", "--json"
        ).stdout
    )
    assert (doc["Count"], doc["Deleted"], doc["DryRun"], doc["FlowName"]) == (3, 0, True, flow)
    assert listed(server, flow) == 3

    done = run("executions", "purge", "--ended-before", cut, "--flow", flow, "--yes", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert (doc["Count"], doc["Deleted"], doc["Remaining"], doc["DryRun"]) == (3, 3, 0, False)
    assert doc["EndedBefore"].endswith("Z")  # sent to the server in UTC
    assert listed(server, flow) == 0

    again = run("executions", "purge", "--ended-before", cut, "--flow", flow, "--yes")
    assert again.exit_code == 0
    assert again.output.startswith("no execution that ended before ")


def test_asks_first_and_refuses_without_a_terminal(run: Run, server: ApiServer) -> None:
    flow, cut = ended_flow(server, 2)
    # CliRunner's stdin is not a terminal: no question can be asked.
    refused = run("executions", "purge", "--ended-before", cut, "--flow", flow)
    assert refused.exit_code == 2
    assert "relayflow: ConfirmationRequired: purging deletes 2 executions" in refused.output
    assert "give --yes (-y)" in refused.output
    assert listed(server, flow) == 2


def test_asks_on_a_terminal(run: Run, server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from relayflow.cli import executions_purge

    monkeypatch.setattr(executions_purge, "interactive", lambda: True)
    monkeypatch.setattr(executions_purge, "on_terminal", lambda: True)
    flow, cut = ended_flow(server, 2)
    kept = run("executions", "purge", "--ended-before", cut, "--flow", flow, input="n\n")
    assert kept.exit_code == 1 and "Delete 2 executions that ended before" in kept.output
    assert listed(server, flow) == 2
    gone = run("executions", "purge", "--ended-before", cut, "--flow", flow, input="y\n")
    assert gone.exit_code == 0 and "deleted 2 executions that ended before" in gone.output
    assert "\rdeleting executions: 2/2 (100 %)\n" in gone.output  # progress, on stderr
    assert listed(server, flow) == 0


def test_a_time_ago_and_bad_input(run: Run, server: ApiServer) -> None:
    flow, _cut = ended_flow(server, 1)
    # They ended moments ago: none ended more than a day ago.
    ago = run("executions", "purge", "--ended-before", "1d", "--flow", flow, "--dry-run")
    assert ago.exit_code == 0 and ago.output.startswith("0 executions that ended before ")
    bad = run("executions", "purge", "--ended-before", "last week", "--yes")
    assert bad.exit_code == 2 and "neither an RFC 3339 time nor a time ago" in bad.output
    missing = run("executions", "purge", "--yes")
    assert missing.exit_code == 2 and "--ended-before" in missing.output
    unknown = run("executions", "purge", "--ended-before", "1d", "--flow", "ghost", "--yes")
    assert unknown.exit_code == 1
    assert unknown.output.startswith("relayflow: FlowNotExists: Flow 'ghost' does not exist")


def test_help_teaches_with_examples(run: Run) -> None:
    text = run("executions", "purge", "--help").output
    assert "relayflow executions purge --ended-before 30d --dry-run" in text
    assert "--yes" in text and "exit 130" in text
    assert "--force" in run("flows", "delete", "--help").output


def test_flows_delete_refused_while_running_unless_force(run: Run, server: ApiServer) -> None:
    flow = "pbusy_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": flow, "Definition": TOKEN_FLOW, "Type": "FDL"})
    server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "w"})
    server.wait_messages(flow, "w")
    refused = run("flows", "delete", flow, "--yes")
    assert refused.exit_code == 1
    assert refused.output == (
        f"relayflow: FlowHasRunningExecutions: Flow '{flow}' has 1 running execution; stop it "
        f"first, or delete the flow with force (`relayflow flows delete {flow} --force`, "
        "DeleteFlow with Force=true), which stops it\n"
    )
    forced = run("flows", "delete", flow, "--force", "--yes")
    assert forced.exit_code == 0 and forced.output == f"deleted flow {flow}\n"
    gone = server.rpc({"Action": "DescribeFlow", "Name": flow})
    assert gone.json()["Code"] == "FlowNotExists"
