"""docs/child-executions.md: its example runs as printed, and what it shows is what the code does.

The Python example runs and prints what the page says; the tree drawn under "The command line"
is what `relayflow executions tree` draws for that family; the causes, the JSON answer and the
limits table are the engine's and the command's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relayflow.cli import executions_tree
from relayflow.engine import family
from relayflow.results import ExecutionInfo
from tests.store.rows import exec_row

DOC = (Path(__file__).resolve().parents[1] / "docs" / "child-executions.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)


def section(title: str) -> str:
    return DOC.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_page_has_its_example() -> None:
    assert len(PYTHON) == 1


@pytest.mark.parametrize(("code", "printed"), PYTHON)
def test_the_python_example_prints_what_the_page_says(
    code: str, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    exec(compile(code, "docs/child-executions.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


def test_the_tree_drawn_is_the_commands_drawing() -> None:
    console = re.search(
        r"```console\n\$ relayflow executions tree (\S+) (\S+)\n(.*?)```", DOC, re.S
    )
    assert console is not None
    flow, name, drawn = console[1], console[2], console[3]
    node = executions_tree.Node
    tree = node(
        "orders",
        "o-7",
        "Stopped",
        children=[
            node("audit", "audit-of-o-7", "Stopped", children=[
                node("ledger", "child-9b1c0d3e", "Stopped")
            ]),
            node("mail", "child-77d0e2a1", "Succeeded"),
        ],
    )  # fmt: skip
    assert "\n".join(executions_tree._lines(tree, (flow, name))) + "\n" == drawn
    # The command's --help draws the same family.
    help_text = executions_tree.executions_tree.help or ""
    assert "\n".join("      " + line for line in drawn.splitlines()) in help_text


def test_the_causes_shown_are_the_engines() -> None:
    shown = re.search(r"```text\n(stopped because .*?)```", DOC, re.S)
    assert shown is not None
    row = exec_row("orders", "o-7")
    expected = [family.stop_cause(row, s) for s in ("Stopped", "Failed", "TimedOut")]
    assert shown[1].splitlines() == expected


def test_the_json_answer_reads_as_the_clients_do() -> None:
    block = re.search(r"```json\n(.*?)```", section("HTTP API"), re.S)
    assert block is not None
    doc = json.loads(block[1])
    info = ExecutionInfo.from_api({**doc, "Input": "{}"})
    assert info.parent is not None and info.parent.to_api() == doc["ParentExecution"]
    assert info.cause == family.stop_cause(exec_row("orders", "o-7"), "Stopped")


def test_the_limits_table_is_the_codes() -> None:
    limits = section("Limits")
    for text, value in [
        ("(`ChildExecutions`) | {:,}, the oldest", family.MAX_CHILDREN_SHOWN),
        ("ends a parent | {:,} |", family.MAX_STOPPED_PER_TRANSACTION),
        ("read in that transaction | {:,} |", family.MAX_LINKS_READ),
        ("(`--max-depth`) | {:,} by default", executions_tree.DEFAULT_DEPTH),
        ("by default, at most {:,} |", executions_tree.MAX_NODES),
    ]:
        assert text.format(value) in limits, text
    assert f"at most {executions_tree.MAX_DEPTH} |" in limits
    assert f"(`--max-nodes`) | {executions_tree.DEFAULT_NODES} by default" in limits


def test_the_command_help_and_options_are_documented() -> None:
    from click.testing import CliRunner

    shown = CliRunner().invoke(executions_tree.executions_tree, ["--help"]).output
    for option in ("--json", "--max-depth", "--max-nodes"):
        assert option in shown and f"`{option}" in section("The command line"), option
