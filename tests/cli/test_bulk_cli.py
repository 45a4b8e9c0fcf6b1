"""`relayflow executions stop|redrive FLOW --filters` and `list`'s filters, on a real server.

The session's `relayflow server` (SQLite) serves every test; each test has flows of its own.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relayflow.cli import executions_bulk
from relayflow.cli.executions_bulk import parse_when
from tests.api_server import KEYS, ApiServer, config_text, serving, start_server, stop_server
from tests.cli.remote_cli import Run, remote_cli

PARKED = "version: v1\ntype: flow\nsteps:\n  - type: wait\n    name: nap\n    duration: 3600\n"
# Parks at `first` or `second` by input; without `second` below (ONE_NAP).
TWO_NAPS = """version: v1
type: flow
steps:
  - type: choice
    name: route
    choices:
      - condition: $.where == "second"
        goto: second
    default:
      goto: first
  - type: wait
    name: first
    duration: 3600
    end: true
  - type: wait
    name: second
    duration: 3600
"""
ONE_NAP = "version: v1\ntype: flow\nsteps:\n  - type: wait\n    name: first\n    duration: 3600\n"


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the session's server (the admin key)."""
    return runner_for(api_server, tmp_path, monkeypatch)


def runner_for(server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for ``server`` (the admin key)."""
    return remote_cli(server, tmp_path, monkeypatch, "admin")


def parked(api_server: ApiServer, names: list[str], definition: str = PARKED) -> str:
    """A new flow with running executions of these names (input `{"where": <name's head>}`)."""
    flow = "bulk_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": definition, "Type": "FDL"})
    for name in names:
        where = "second" if name.startswith("second") else "first"
        api_server.ok(
            {
                "Action": "StartExecution",
                "FlowName": flow,
                "ExecutionName": name,
                "Input": json.dumps({"where": where}),
            }
        )
    return flow


def statuses(api_server: ApiServer, flow: str, names: list[str]) -> list[str]:
    return [api_server.describe(flow, n)["Status"] for n in names]


def stops(api_server: ApiServer, flow: str, name: str) -> int:
    return sum(e["Type"] == "ExecutionStopped" for e in api_server.history(flow, name))


def test_stop_asks_first_refuses_without_a_terminal_and_dry_run_acts_on_nothing(
    run: Run, api_server: ApiServer
) -> None:
    names = ["a-1", "a-2", "b-1"]
    flow = parked(api_server, names)

    refused = run("executions", "stop", flow, "--name-prefix", "a-")
    assert refused.exit_code == 2
    assert refused.output == (
        f"relayflow: ConfirmationRequired: 2 executions of {flow} match: give --yes (-y) to "
        "stop them without a terminal to confirm on, or --dry-run to list them\n"
    )
    dry = run("executions", "stop", flow, "--name-prefix", "a-", "--dry-run")
    assert dry.exit_code == 0
    assert (
        dry.output == f"2 executions of {flow} match; nothing was stopped (--dry-run)\na-1\na-2\n"
    )
    dry_json = json.loads(run("executions", "stop", flow, "--dry-run", "--json").stdout)
    assert dry_json == {"Matched": 3, "DryRun": True, "Executions": names}
    assert statuses(api_server, flow, names) == ["Running"] * 3

    # On a terminal, the question; "n" leaves everything as it was.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(executions_bulk, "interactive", lambda: True)
        declined = run("executions", "stop", flow, "--name-prefix", "a-", input="n\n")
        assert declined.exit_code == 1 and f"Stop 2 executions of {flow}? [y/N]" in declined.output
        assert statuses(api_server, flow, names) == ["Running"] * 3
        agreed = run("executions", "stop", flow, "--name-prefix", "a-", input="y\n")
        assert agreed.exit_code == 0, agreed.output
    assert agreed.output.endswith("stopped 2 of 2 matching\n")
    assert statuses(api_server, flow, names) == ["Stopped", "Stopped", "Running"]

    nothing = run("executions", "stop", flow, "--name-prefix", "a-", "--yes")
    assert (nothing.exit_code, nothing.output) == (0, f"no executions of {flow} match\n")


def test_stop_with_yes_and_json_then_list_by_the_same_filters(
    run: Run, api_server: ApiServer
) -> None:
    names = ["n-1", "n-2", "n-3"]
    flow = parked(api_server, names)
    done = run(
        "executions", "stop", flow, "--started-after", "1h", "--yes", "--json", "--error", "Bulk"
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "Matched": 3,
        "Done": names,
        "Skipped": [],
        "Failed": [],
        "Interrupted": False,
    }
    assert api_server.describe(flow, "n-2")["Error"] == "Bulk"

    listed = run("executions", "list", flow, "--status", "stopped", "--started-after", "1h")
    assert [line.split()[:2] for line in listed.output.splitlines()] == [
        ["NAME", "STATUS"],
        *[[n, "Stopped"] for n in names],
    ]
    later = run("executions", "list", flow, "--started-before", "2000-01-01")
    assert later.output == "no executions\n"
    doc = json.loads(run("executions", "list", flow, "--name-prefix", "n-3", "--json").stdout)
    assert [e["Name"] for e in doc["Executions"]] == ["n-3"]


def test_an_interrupted_bulk_stop_run_again_stops_each_once(
    run: Run, api_server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"i-{n}" for n in range(5)]
    flow = parked(api_server, names)
    monkeypatch.setattr(executions_bulk, "PAGE", 2)
    monkeypatch.setattr(executions_bulk, "on_terminal", lambda: True)
    shown = executions_bulk.BulkRun._show_progress
    pressed: list[bool] = []

    def ctrl_c_after_the_first_page(self: executions_bulk.BulkRun) -> None:
        shown(self)
        if not pressed:
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, while the page is shown

    monkeypatch.setattr(executions_bulk.BulkRun, "_show_progress", ctrl_c_after_the_first_page)
    first = run("executions", "stop", flow, "--yes")
    assert first.exit_code == 130, first.output
    assert "stop: [" in first.stderr and "2/5" in first.stderr
    assert "stopping after the page under way" in first.stderr
    assert "interrupted: 2 stopped before Ctrl-C" in first.stderr
    assert "run the same command again to go on" in first.stderr
    assert first.stdout == "stopped 2 of 5 matching\n"
    assert statuses(api_server, flow, names) == ["Stopped"] * 2 + ["Running"] * 3

    again = run("executions", "stop", flow, "--yes")
    assert again.exit_code == 0, again.output
    assert again.stdout == "stopped 3 of 3 matching\n"
    assert [stops(api_server, flow, n) for n in names] == [1] * 5


def test_bulk_redrive_reports_each_failure_and_exits_1(run: Run, api_server: ApiServer) -> None:
    names = ["first-1", "first-2", "second-1"]
    flow = parked(api_server, names, TWO_NAPS)
    assert run("executions", "stop", flow, "--yes").exit_code == 0
    api_server.ok({"Action": "UpdateFlow", "Name": flow, "Definition": ONE_NAP, "Type": "FDL"})

    dry = run("executions", "redrive", flow, "--status", "Stopped", "--dry-run", "--json")
    assert json.loads(dry.stdout)["Executions"] == names
    result = run("executions", "redrive", flow, "--status", "Stopped", "--definition", "current")
    assert result.exit_code == 2  # no terminal, no --yes
    result = run(
        "executions", "redrive", flow, "--status", "Stopped", "--definition", "current", "--yes"
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["redriven 2 of 3 matching", "failed on 1:", lines[2]]
    assert lines[2].split() == ["NAME", "CODE", "MESSAGE"]
    assert lines[3].split()[:2] == ["second-1", "ExecutionNotRedrivable"]
    assert statuses(api_server, flow, names) == ["Running", "Running", "Stopped"]

    kept = run("executions", "redrive", flow, "--status", "stopped", "--yes", "--json")
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.stdout)["Done"] == ["second-1"]

    # One by name: refused while it runs, then redriven onto the current definition.
    running = run("executions", "redrive", flow, "first-1")
    assert running.exit_code == 1 and "ExecutionNotRedrivable" in running.output
    assert run("executions", "stop", flow, "first-1").output == "first-1: Stopped\n"
    one = run("executions", "redrive", flow, "first-1", "--definition", "current", "--json")
    assert one.exit_code == 0, one.output
    doc = json.loads(one.stdout)
    assert (doc["Name"], doc["Status"], doc["RedriveCount"]) == ("first-1", "Running", 2)


def test_bad_filters_and_mixed_forms_get_one_sentence(run: Run, api_server: ApiServer) -> None:
    flow = parked(api_server, [])
    bad_time = run("executions", "stop", flow, "--started-after", "yesterday")
    assert bad_time.exit_code == 2
    assert "'yesterday' is neither an RFC 3339 time nor a time ago" in bad_time.output
    bad_status = run("executions", "list", flow, "--status", "Paused")
    assert bad_status.exit_code == 2 and "Invalid value for '--status'" in bad_status.output
    not_stoppable = run("executions", "stop", flow, "--status", "Failed")
    assert not_stoppable.exit_code == 2
    both = run("executions", "stop", flow, "x-1", "--name-prefix", "x")
    assert both.exit_code == 2
    assert both.output == (
        "relayflow: InvalidArgument: give the execution NAME (x-1) or filters, not both: "
        "--name-prefix applies only without NAME\n"
    )
    no_status = run("executions", "redrive", flow, "--yes")
    assert no_status.exit_code == 2 and "--status Failed, TimedOut or Stopped" in no_status.output
    bad_prefix = run("executions", "stop", flow, "--name-prefix", "a b", "--yes")
    assert bad_prefix.exit_code == 1
    assert bad_prefix.output == (
        "relayflow: InvalidArgument: ExecutionNamePrefix must be at most 128 letters, digits, _ "
        "and -\n"
    )
    no_flow = run("executions", "stop", "no_such_flow", "--yes")
    assert no_flow.exit_code == 1
    assert no_flow.output == "relayflow: FlowNotExists: Flow 'no_such_flow' does not exist\n"


def test_times_are_rfc_3339_or_a_time_ago() -> None:
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert parse_when("2h", now) == "2026-12-02T06:00:00.000Z"
    assert parse_when("1d12h", now) == "2026-11-30T20:00:00.000Z"
    assert parse_when("2026-12-01T08:00:00+02:00") == "2026-12-01T06:00:00.000Z"
    assert parse_when("2026-12-01T08:00:00z") == "2026-12-01T08:00:00.000Z"
    assert parse_when("2026-12-01 08:30") == "2026-12-01T08:30:00.000Z"
    assert parse_when("2026-12-01") == "2026-12-01T00:00:00.000Z"
    for wrong in ("", "soon", "2h ago", "400d", "2026-13-01"):
        with pytest.raises(ValueError):
            parse_when(wrong, now)


def test_a_server_going_away_mid_run_is_reported_and_running_again_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"g-{n}" for n in range(5)]
    monkeypatch.setattr(executions_bulk, "PAGE", 2)
    monkeypatch.setattr(executions_bulk, "on_terminal", lambda: True)
    shown = executions_bulk.BulkRun._show_progress
    (tmp_path / "one").mkdir()
    with serving(tmp_path / "one", config_text(keys=KEYS)) as server:
        flow = parked(server, names)
        run = runner_for(server, tmp_path, monkeypatch)

        def server_goes_away(self: executions_bulk.BulkRun) -> None:
            shown(self)
            stop_server(server.process)  # SIGTERM: it finishes what it was doing, then exits

        monkeypatch.setattr(executions_bulk.BulkRun, "_show_progress", server_goes_away)
        first = run("executions", "stop", flow, "--yes")
        monkeypatch.setattr(executions_bulk.BulkRun, "_show_progress", shown)
    assert first.exit_code == 1, first.output
    progress, refusal = first.stderr.rstrip("\n").split("\n")
    assert progress.endswith("stop: [############..................] 2/5")
    assert refusal.startswith("relayflow: ConnectionFailed: cannot reach the server at ")
    assert refusal.endswith(
        "; 2 were stopped before it and 0 failed: run the same command again to go on"
    )
    # The same store, served again: the command goes on with the three left.
    process, port = start_server(tmp_path / "one")
    try:
        again = ApiServer(tmp_path / "one", port, process)
        run = runner_for(again, tmp_path, monkeypatch)
        second = run("executions", "stop", flow, "--yes")
        assert (second.exit_code, second.stdout) == (0, "stopped 3 of 3 matching\n")
        assert [stops(again, flow, n) for n in names] == [1] * 5
        again.http.close()
    finally:
        assert stop_server(process) == 0
