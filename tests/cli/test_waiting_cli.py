"""`relayflow executions waiting` against the session's real server: table, --json, exit codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.cli.executions_waiting import human_duration, parse_duration
from tests.api_server import QUEUE_ARN, TOKEN_FLOW, ApiServer
from tests.cli.remote_cli import Run, remote_cli


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the session's server (the reader's key)."""
    return remote_cli(api_server, tmp_path, monkeypatch, "reader")


@pytest.fixture
def flow(api_server: ApiServer) -> Iterator[str]:
    """A flow with two executions waiting for their callbacks; stopped afterwards."""
    name = "cliwait_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": TOKEN_FLOW})
    for execution in ("one", "two"):
        api_server.ok({"Action": "StartExecution", "FlowName": name, "ExecutionName": execution})
        api_server.wait_messages(name, execution)
    yield name
    for execution in ("one", "two"):
        api_server.ok({"Action": "StopExecution", "FlowName": name, "ExecutionName": execution})


def test_the_table_and_json(run: Run, flow: str) -> None:
    shown = run("executions", "waiting", flow)
    assert shown.exit_code == 0, shown.output
    header, *rows = shown.output.splitlines()
    assert header.split() == [
        "FLOW",
        "EXECUTION",
        "STEP",
        "KIND",
        "RESOURCE",
        "ATTEMPT",
        "WAITING",
        "TIMES",
        "OUT",
        "IN",
    ]
    assert [r.split()[:6] for r in rows] == [
        [flow, "one", "job", "task", QUEUE_ARN, "1"],
        [flow, "two", "job", "task", QUEUE_ARN, "1"],
    ]
    assert all(r.split()[-2:] == ["6d", "23h"] for r in rows)  # the default 7 days, less a bit

    doc = json.loads(run("executions", "waiting", flow, "--json").stdout)
    assert [w["ExecutionName"] for w in doc["Waiting"]] == ["one", "two"]
    assert doc["Waiting"][0]["TimeoutSeconds"] == 604800

    everything = json.loads(run("executions", "waiting", "--json").stdout)["Waiting"]
    assert [w["ExecutionName"] for w in everything if w["FlowName"] == flow] == ["one", "two"]

    old = run("executions", "waiting", flow, "--older-than", "1h")
    assert (old.exit_code, old.output) == (0, "nothing is waiting that long\n")
    assert json.loads(
        run("executions", "waiting", flow, "--older-than", "1d", "--json").output
    ) == {"Waiting": []}


def test_bad_input_and_refusals(run: Run, flow: str) -> None:
    bad = run("executions", "waiting", flow, "--older-than", "soon")
    assert bad.exit_code == 2 and "'soon' is not a duration" in bad.output
    long = run("executions", "waiting", "--older-than", "400d")
    assert long.exit_code == 2 and "longer than 366 days" in long.output
    missing = run("executions", "waiting", flow + "_none")
    assert missing.exit_code == 1
    assert missing.output.startswith("relayflow: FlowNotExists: ")
    helped = run("executions", "waiting", "--help")
    assert helped.exit_code == 0 and "relayflow executions waiting --older-than 2h" in helped.output


def test_durations_read_and_written() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "2h", "1d", "1h30m", "45", " 2H ")] == [
        90,
        1800,
        7200,
        86400,
        5400,
        45,
        7200,
    ]
    for text in ("", "h", "1x", "-5s", "1.5h", "1h 30m", "s1"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(text)
    assert [human_duration(s) for s in (-1, 0, 59, 60, 3599, 3600, 3660, 86400, 90000)] == [
        "-",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "1h 1m",
        "1d",
        "1d 1h",
    ]
