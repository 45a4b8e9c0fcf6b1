"""docs/retention.md: its configuration, Python example, shell sessions and HTTP example all run.

The shell sessions run, in order, against a server of their own with the flows the page
describes: `reports`, whose three executions ended 40 days ago (their end is moved back in the
server's SQLite file), and `orders`, with two executions waiting for a worker. Times in the
output are compared as `<time>`.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from tests.api_server import KEYS, TOKEN_FLOW, ApiServer, config_text, serving

DOC = (Path(__file__).resolve().parents[1] / "docs" / "retention.md").read_text()
TOML = re.findall(r"```toml\n(.*?)```", DOC, re.S)
PYTHON = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)
SESSIONS = re.findall(r"```console\n(.*?)```", DOC, re.S)
HTTP = re.findall(r"```json\n(.*?)```\n\nanswers\n\n```json\n(.*?)```", DOC, re.S)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
PASS = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"
DAY = 86_400


def test_the_page_has_its_examples() -> None:
    assert (len(TOML), len(PYTHON), len(SESSIONS), len(HTTP)) == (1, 1, 2, 1)
    assert "## HTTP API" in DOC


def test_the_configuration_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from relayflow.config import ConfigError, load_config

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "relayflow.toml"
    path.write_text(TOML[0])
    assert tomllib.loads(TOML[0])["engine"]["retention_days"] == 30
    assert load_config(str(path)).engine.retention_days == 30
    path.write_text(TOML[0].replace("= 30", "= 0"))
    with pytest.raises(ConfigError, match="retention_days"):
        load_config(str(path))


@pytest.mark.parametrize(("code", "printed"), PYTHON)
def test_python_example_runs(code: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs/retention.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serving(tmp_path_factory.mktemp("retention-docs"), config_text(keys=KEYS)) as running:
        yield running


def ended(server: ApiServer, flow: str, count: int, stopped_at: str) -> None:
    """``count`` ended executions of a new pass flow, their end moved to ``stopped_at`` (SQL)."""
    server.ok({"Action": "CreateFlow", "Name": flow, "Definition": PASS, "Type": "FDL"})
    for n in range(count):
        name = f"{flow}-{n}"
        server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": name})
        doc = server.ok(
            {
                "Action": "DescribeExecution",
                "FlowName": flow,
                "ExecutionName": name,
                "WaitTimeSeconds": "5",
            }
        )
        assert doc["Status"] == "Succeeded", doc
    with sqlite3.connect(server.folder / "relayflow.db", timeout=30) as db:
        db.execute(f"UPDATE executions SET stopped = {stopped_at} WHERE flow_name = ?", (flow,))
    db.close()


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
    server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended(server, "reports", 3, f"stopped - {40 * DAY}")
    server.ok({"Action": "CreateFlow", "Name": "orders", "Definition": TOKEN_FLOW, "Type": "FDL"})
    for name in ("order-1", "order-2"):
        server.ok({"Action": "StartExecution", "FlowName": "orders", "ExecutionName": name})
        server.wait_messages("orders", name)
    for name in ("RELAYFLOW_CONFIG", "RELAYFLOW_CLIENT__ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    key_id, secret = KEYS["admin"]
    config = tmp_path / "client.toml"
    config.write_text(
        f'[client]\nendpoint = "{server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n'
    )
    runner = CliRunner()
    for session in SESSIONS:
        for command, shown in _commands(session):
            args = shlex.split(command)
            assert args[0] == "relayflow", command
            result = runner.invoke(main, [*args[1:], "--config", str(config)])
            assert "Traceback" not in result.output, result.output
            assert TIME.sub("<time>", result.output) == TIME.sub("<time>", shown), command


def test_the_http_example_answers_what_the_page_shows(server: ApiServer) -> None:
    ended(server, "audit", 2, "978307200 + id")  # in 2001
    [(request, answer)] = HTTP
    assert server.ok(json.loads(request)) == json.loads(answer)


def test_the_error_codes_listed_are_the_engines() -> None:
    from relayflow.errors import CODES

    for code in (
        "MissingParameter",
        "InvalidArgument",
        "FlowNotExists",
        "FlowHasRunningExecutions",
    ):
        status = CODES.get(code, 400)  # MissingParameter is the API's own, 400
        assert re.search(rf"\| `{code}` \| {status} \|", DOC), code


def test_the_limits_on_the_page_are_the_code_s() -> None:
    from relayflow.cli.executions_purge import PAGE
    from relayflow.engine.retention import (
        DEFAULT_PURGE_LIMIT,
        FORCE_ROUNDS,
        LOOP_RATE,
        MAX_PURGE_LIMIT,
        PURGE_BATCH,
        RetentionOperations,
    )

    assert f"at most {PURGE_BATCH} executions per transaction" in DOC
    assert f"no more than {LOOP_RATE:,.0f}\nexecutions a second" in DOC
    assert f"| `Limit` | {DEFAULT_PURGE_LIMIT} | 1 to {MAX_PURGE_LIMIT:,} |" in DOC
    assert f"{PAGE:,} executions at a time" in DOC
    assert FORCE_ROUNDS == 5 and "up to five rounds" in DOC
    assert RetentionOperations.retention_check_seconds == 60 and "every minute" in DOC
