"""`relayflow executions tree` against the session's real server, as whole processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.api_server import ApiServer
from tests.cli.remote_cli import client_config
from tests.test_family_api import make_family

EXE = str(Path(sys.executable).with_name("relayflow"))


def tree(server: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    config = client_config(server, server.folder, "reader")
    return subprocess.run(
        [EXE, "executions", "tree", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_tree_starts_at_the_root_and_marks_the_one_asked_for(api_server: ApiServer) -> None:
    family = make_family(api_server)
    shown = tree(api_server, *family["grandchild"].split("/", 1))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{family['parent']}  Running"
    mid = next(i for i, line in enumerate(lines) if family["sync_kid"] in line)
    assert lines[mid].startswith(("|-- ", "`-- ")) and lines[mid].endswith("Running")
    assert lines[mid + 1].endswith(f"{family['grandchild']}  Running   <- this one")
    assert lines[mid + 1].startswith(("|   `-- ", "    `-- "))
    assert len(lines) == 5 and sum(line.startswith("`-- ") for line in lines) == 1

    doc = json.loads(tree(api_server, *family["parent"].split("/", 1), "--json").stdout)
    assert doc["Truncated"] is False
    root = doc["Tree"]
    assert f"{root['FlowName']}/{root['Name']}" == family["parent"]
    kids = {f"{c['FlowName']}/{c['Name']}": c for c in root["Children"]}
    assert set(kids) == {family[r] for r in ("sync_kid", "callback_kid", "rr_kid")}
    assert [c["Name"] for c in kids[family["sync_kid"]]["Children"]] == [
        family["grandchild"].split("/", 1)[1]
    ]


def test_a_bounded_walk_says_what_it_left_out(api_server: ApiServer) -> None:
    family = make_family(api_server)
    shown = tree(api_server, *family["parent"].split("/", 1), "--max-nodes", "2", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["Truncated"] is True and len(doc["Tree"]["Children"]) == 1
    assert doc["Tree"]["MoreChildren"].startswith("2 more children not shown")
    text = tree(api_server, *family["grandchild"].split("/", 1), "--max-depth", "1").stdout
    assert text.startswith("(the root is more than 1 levels up: showing from here)\n")
    assert text.splitlines()[1] == f"{family['sync_kid']}  Running"


def test_bad_input_gets_one_sentence(api_server: ApiServer) -> None:
    unknown = tree(api_server, "no-such-flow", "nobody")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == (
        "relayflow: ExecutionNotExists: Execution 'nobody' does not exist in flow 'no-such-flow'\n"
    )
    bad = tree(api_server, "f", "e", "--max-depth", "0")
    assert bad.returncode == 2 and "--max-depth" in bad.stderr and "Traceback" not in bad.stderr
