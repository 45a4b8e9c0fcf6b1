"""docs/bulk-actions.md: its Python example, its shell sessions and its HTTP example all run.

The shell sessions run, in order, against a server of their own with the flow the page
describes (`orders`, five running executions); times in the output are compared as `<time>`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from tests.api_server import KEYS, ApiServer, config_text, serving

DOC = (Path(__file__).resolve().parents[1] / "docs" / "bulk-actions.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)
SESSIONS = re.findall(r"```console\n(.*?)```", DOC, re.S)
HTTP = re.findall(r"```json\n(.*?)```\n\nanswers\n\n```json\n(.*?)```", DOC, re.S)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
PARKED = "version: v1\ntype: flow\nsteps:\n  - type: wait\n    name: nap\n    duration: 3600\n"


def test_the_page_has_its_examples() -> None:
    assert (len(PYTHON), len(SESSIONS), len(HTTP)) == (1, 3, 1)
    assert "## HTTP API" in DOC


@pytest.mark.parametrize(("code", "printed"), PYTHON)
def test_python_example_runs(code: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs/bulk-actions.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of its own whose flow `orders` has the page's five running executions."""
    with serving(tmp_path_factory.mktemp("bulk-docs"), config_text(keys=KEYS)) as server:
        server.ok({"Action": "CreateFlow", "Name": "orders", "Definition": PARKED, "Type": "FDL"})
        for name in ("order-1", "order-2", "order-3", "test-1", "test-2"):
            server.ok({"Action": "StartExecution", "FlowName": "orders", "ExecutionName": name})
        yield server


def _commands(session: str) -> list[tuple[str, str]]:
    """The session's commands, each with the output the page shows for it."""
    found: list[tuple[str, str]] = []
    for line in session.splitlines(keepends=True):
        if line.startswith("$ "):
            found.append((line[2:].strip(), ""))
        else:
            command, output = found[-1]
            found[-1] = (command, output + line)
    return found


def test_shell_sessions_print_what_the_page_shows(
    orders: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RELAYFLOW_CONFIG", "RELAYFLOW_CLIENT__ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    key_id, secret = KEYS["admin"]
    config = tmp_path / "client.toml"
    config.write_text(
        f'[client]\nendpoint = "{orders.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n'
    )
    runner = CliRunner()
    for session in SESSIONS:
        for command, shown in _commands(session):
            args = shlex.split(command)
            assert args[0] == "relayflow", command
            result = runner.invoke(main, [*args[1:], "--config", str(config)])
            assert TIME.sub("<time>", result.output) == TIME.sub("<time>", shown), command


def test_the_http_example_answers_what_the_page_shows(orders: ApiServer) -> None:
    [(request, answer)] = HTTP
    assert orders.ok(json.loads(request)) == json.loads(answer)


def test_the_error_codes_listed_are_the_engines() -> None:
    from relayflow.errors import CODES

    for code in ("MissingParameter", "InvalidArgument", "FlowNotExists"):
        status = CODES.get(code, 400)  # MissingParameter is the API's own, 400
        assert re.search(rf"\| `{code}` \| {status} \|", DOC), code
