"""docs/redrive.md: its examples run as printed, and its tables are the engine's and the API's.

The two Python examples run and print what the page says; the HTTP parameters of the page are
sent to the session's server and its answer has the fields of the JSON shown; the keys of
ExecutionRedriven's detail, the limits and the refusal codes are the engine's own.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from relayflow.engine.redrive import MAX_REDRIVES
from relayflow.errors import CODES
from relayflow.limits import Limits
from relayflow.results import ExecutionInfo
from tests.api_server import ApiServer

DOC = (Path(__file__).resolve().parents[1] / "docs" / "redrive.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)


def section(title: str) -> str:
    return DOC.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_column(text: str) -> list[str]:
    """The first cell of each row of the tables in ``text``, without backquotes."""
    rows = re.findall(r"^\| `?([^|`]+)`? +\|", text, re.M)
    return [r for r in rows if r not in {"key", "parameter", "code", "limit"} and "---" not in r]


def test_the_page_has_its_examples() -> None:
    assert len(PYTHON) == 2


@pytest.mark.parametrize(("code", "printed"), PYTHON, ids=["original", "current"])
def test_the_python_examples_print_what_the_page_says(
    code: str, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    exec(compile(code, "docs/redrive.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


def test_the_detail_keys_listed_are_the_events() -> None:
    shown = re.search(r"^\d+ (\{'redriveCount'.*\})$", PYTHON[0][1], re.M)
    assert shown is not None
    detail_keys = re.findall(r"'(\w+)': ", shown[1])
    assert first_column(section("The history")) == detail_keys


def test_the_http_parameters_and_answer_are_the_servers(api_server: ApiServer) -> None:
    http = section("HTTP API")
    params = first_column(http)
    assert params == ["FlowName", "ExecutionName", "UseCurrentDefinition"]
    block = re.search(r"```json\n(.*?)```", http, re.S)
    assert block is not None
    shown = json.loads(block[1])
    info = ExecutionInfo.from_api(shown)
    assert (info.status, info.redrive_count) == ("Running", 1)

    # The page's flow on the test server, which serves no shop:Reserve: it fails, and goes on.
    flow = "doc_" + uuid.uuid4().hex[:8]
    api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": info.flow_definition})
    api_server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "o-7"})
    ended = {"Action": "DescribeExecution", "FlowName": flow, "ExecutionName": "o-7"}
    assert api_server.ok({**ended, "WaitTimeSeconds": "10"})["Status"] == "Failed"
    answer = api_server.rpc(
        {
            "Action": "RedriveExecution",
            "FlowName": flow,
            "ExecutionName": "o-7",
            "UseCurrentDefinition": "false",
        }
    ).json()
    assert sorted(answer) == sorted(shown)
    assert (answer["Status"], answer["RedriveCount"], answer["Input"]) == ("Running", 1, "{}")


def test_the_limits_and_refusals_are_the_engines() -> None:
    limits = section("Limits and refusals")
    assert f"| redrives of one execution | {MAX_REDRIVES:,} |" in limits
    assert f"| history events | `engine.max_events` ({Limits().max_events:,}) |" in limits
    for code in ("ExecutionNotExists", "ExecutionNotRedrivable", "InvalidArgument"):
        assert re.search(rf"\| `{code}` \| {CODES[code]} \|", limits), code
    assert "| `MissingParameter` | 400 |" in limits  # the API's own (relayflow.api.params)
