"""`relayflow flows publish|versions|delete-version`, `relayflow aliases ...` and --qualifier.

Against the session's real server: what each command prints, its --json, and its exit codes
(1 for the server's refusals, 2 for a mistake caught here).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.api_server import ApiServer
from tests.cli.remote_cli import Run, remote_cli

ONE = """version: v1
type: flow
steps:
  - type: pass
    name: one
    outputMappings:
      - target: ran
        source: "one"
"""
TWO = ONE.replace("one", "two")


@pytest.fixture
def run(api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`relayflow <args>` with a [client] table for the session's server (the admin key)."""
    return remote_cli(api_server, tmp_path, monkeypatch, "admin")


@pytest.fixture
def flow(api_server: ApiServer) -> str:
    name = "cliv_" + uuid.uuid4().hex[:10]
    api_server.ok({"Action": "CreateFlow", "Name": name, "Definition": ONE, "Type": "FDL"})
    return name


def test_publish_list_describe_and_delete_versions(
    run: Run, flow: str, api_server: ApiServer
) -> None:
    made = run("flows", "publish", flow, "--description", "first")
    assert made.exit_code == 0 and made.output == f"published version 1 of {flow}\n"
    api_server.ok({"Action": "UpdateFlow", "Name": flow, "Definition": TWO})
    second = json.loads(run("flows", "publish", flow, "--json").stdout)
    assert second["Version"] == "2" and second["FlowName"] == flow

    listed = run("flows", "versions", flow).output.splitlines()
    assert listed[0].split() == ["VERSION", "CREATED", "DESCRIPTION"]
    assert [line.split()[0] for line in listed[1:]] == ["1", "2"]
    assert listed[1].split()[-1] == "first" and listed[2].split()[-1] == "-"
    doc = json.loads(run("flows", "versions", flow, "--json").stdout)
    assert [v["Version"] for v in doc["FlowVersions"]] == ["1", "2"]

    old = run("flows", "describe", flow, "--version", "1")
    assert old.exit_code == 0 and "name: one" in old.output
    assert "Version:     1 (as published)" in old.output
    assert "name: two" in run("flows", "describe", flow).output

    gone = run("flows", "delete-version", flow, "1")
    assert gone.exit_code == 0 and gone.output == f"deleted version 1 of {flow}\n"
    again = run("flows", "delete-version", flow, "1")
    assert again.exit_code == 1
    assert again.output == (
        f"relayflow: FlowVersionNotExists: Flow version '1' does not exist in flow '{flow}'\n"
    )


def test_aliases_route_starts_and_executions_show_their_version(run: Run, flow: str) -> None:
    assert run("flows", "publish", flow).exit_code == 0
    assert run("flows", "publish", flow).exit_code == 0
    made = run("aliases", "create", flow, "prod", "--route", "1=0", "--route", "2=100")
    assert made.exit_code == 0 and made.output == f"created alias prod of {flow} (1=0 2=100)\n"

    started = run("executions", "start", flow, "--name", "r1", "--qualifier", "prod")
    assert started.exit_code == 0 and started.output == "r1 (version 2)\n"
    shown = run("executions", "describe", flow, "r1", "--wait", "10")
    assert "Version: 2\n" in shown.output
    doc = json.loads(run("executions", "describe", flow, "r1", "--json").stdout)
    assert doc["FlowVersion"] == "2"
    assert run("executions", "start", flow, "--name", "r0").output == "r0\n"

    listed = run("executions", "list", flow).output.splitlines()
    assert listed[0].split() == ["NAME", "STATUS", "VERSION", "STARTED", "STOPPED"]
    assert [line.split()[:3:2] for line in listed[1:]] == [["r0", "-"], ["r1", "2"]]
    only = run("executions", "list", flow, "--qualifier", "2").output.splitlines()
    assert [line.split()[0] for line in only[1:]] == ["r1"]

    described = run("aliases", "describe", flow, "prod")
    assert "Routes:      1=0 2=100\n" in described.output
    moved = run("aliases", "update", flow, "prod", "--route", "1", "--description", "back")
    assert moved.exit_code == 0 and moved.output == f"updated alias prod of {flow} (1=100)\n"
    table = run("aliases", "list", flow).output.splitlines()
    assert table[0].split() == ["NAME", "ROUTES", "DESCRIPTION"]
    assert table[1].split() == ["prod", "1=100", "back"]
    as_json = json.loads(run("aliases", "list", flow, "--json").stdout)
    assert as_json["Aliases"][0]["RoutingConfigurations"] == [{"Version": "1", "Weight": 100}]

    in_use = run("flows", "delete-version", flow, "1")
    assert in_use.exit_code == 1 and in_use.output.startswith("relayflow: FlowVersionInUse: ")
    assert "'prod'" in in_use.output
    assert run("aliases", "delete", flow, "prod").output == f"deleted alias prod of {flow}\n"
    assert run("aliases", "list", flow).output == f"no aliases for {flow}\n"


def test_refusals_exit_1_and_local_mistakes_exit_2(run: Run, flow: str) -> None:
    assert run("flows", "publish", flow).exit_code == 0
    uneven = run("aliases", "create", flow, "p", "--route", "1=60")
    assert uneven.exit_code == 1
    assert uneven.output == (
        "relayflow: InvalidArgument: the Weights in RoutingConfigurations must add up to 100, "
        "they add up to 60\n"
    )
    nothing = run("executions", "start", flow, "--qualifier", "blue")
    assert nothing.exit_code == 1
    assert nothing.output == (
        f"relayflow: FlowAliasNotExists: Qualifier 'blue' names no version or alias of flow "
        f"'{flow}'\n"
    )
    bad = run("aliases", "create", flow, "p", "--route", "one=100")
    assert bad.exit_code == 2 and "--route 'one=100' must be VERSION=WEIGHT" in bad.output
    idle = run("aliases", "update", flow, "p")
    assert idle.exit_code == 2 and idle.output.startswith("relayflow: MissingParameter: ")
    missing = run("aliases", "describe", flow, "nope")
    assert missing.exit_code == 1
    assert "FlowAliasNotExists: Flow alias 'nope' does not exist" in missing.output
