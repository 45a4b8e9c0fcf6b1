"""`relayflow tasks succeed|fail --flow F --key K` against the session's real server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from tests.api_server import QUEUE_ARN, ApiServer
from tests.cli.remote_cli import Run, remote_cli

KEYED = f"""version: v1
type: flow
steps:
  - type: task
    name: pay
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    correlationKey: $.orderId
"""


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the session's server (the worker key)."""
    return remote_cli(api_server, tmp_path, monkeypatch, "worker")


@pytest.fixture
def flow(api_server: ApiServer) -> str:
    name = "cli_corr_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": KEYED, "Type": "FDL"})
    return name


def start(server: ApiServer, flow: str, name: str, order: str) -> None:
    params = {"Action": "StartExecution", "FlowName": flow, "ExecutionName": name}
    server.ok({**params, "Input": json.dumps({"orderId": order})})
    server.wait_messages(flow, name)


def status(server: ApiServer, flow: str, name: str) -> dict[str, str]:
    params = {"FlowName": flow, "ExecutionName": name, "WaitTimeSeconds": "10"}
    return server.ok({"Action": "DescribeExecution", **params})


def test_succeed_and_fail_by_key(run: Run, api_server: ApiServer, flow: str) -> None:
    start(api_server, flow, "one", "o-1")
    start(api_server, flow, "two", "o-2")
    done = run("tasks", "succeed", "--flow", flow, "--key", "o-1", "--output", '{"paid": true}')
    assert done.exit_code == 0, done.output
    assert done.output.startswith("reported TaskSucceeded (event ")
    assert json.loads(status(api_server, flow, "one")["Output"]) == {"paid": True}

    failed = run("tasks", "fail", "--flow", flow, "--key", "o-2", "--error", "Declined", "--json")
    assert failed.exit_code == 0, failed.output
    assert json.loads(failed.stdout)["EventId"] > 0
    assert status(api_server, flow, "two")["Error"] == "Declined"

    again = run("tasks", "succeed", "--flow", flow, "--key", "o-1", "--output", "{}")
    assert again.exit_code == 1
    assert again.output.startswith("relayflow: CorrelationKeyNotExists: ")


@pytest.mark.parametrize(
    "target",
    [
        ["tok", "--flow", "f", "--key", "k"],
        ["tok", "--key", "k"],
        ["--flow", "f"],
        ["--key", "k"],
        [],
    ],
)
def test_one_way_to_name_the_task(run: Run, target: list[str]) -> None:
    for command in (["succeed", "--output", "{}"], ["fail", "--error", "E"]):
        result = run("tasks", command[0], *target, *command[1:])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("relayflow: InvalidArgument: ")
        assert "--flow" in result.output and "--key" in result.output


def test_help_shows_the_key_form() -> None:
    for command in ("succeed", "fail"):
        shown = CliRunner().invoke(main, ["tasks", command, "--help"])
        assert shown.exit_code == 0
        assert "--flow FLOW" in shown.output and "--key KEY" in shown.output
        assert "--flow orders --key order-7" in shown.output
    group = CliRunner().invoke(main, ["tasks", "--help"])
    assert "CorrelationKeyNotExists" in group.output
