"""docs/console.md: its configuration, its shell sessions and its table of commands all run.

- The TOML example turns the console off on a real server: `/console/` is then not found while
  the API answers; its `console_session_minutes` is read, and a value out of range refused.
- `relayflow console token` prints what the page shows (token and time aside), and the token
  signs in at `POST /console/session` of the shared test server (tests/api_server.py).
- Each line of the commands block names a real command whose `--help` lists every option used.
- Every picture the page shows exists in docs/images, and every console picture there is shown.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.api_server import EXE, KEYS, ApiServer, config_text, server_env, serving

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "console.md").read_text(encoding="utf-8")
TOML = re.findall(r"```toml\n(.*?)```", DOC, re.S)
SESSIONS = re.findall(r"```console\n(.*?)```", DOC, re.S)
COMMANDS = re.findall(r"```text\n(.*?)```", DOC, re.S)
IMAGES = re.findall(r"!\[[^\]]+\]\((images/[^)]+)\)", DOC)


def test_the_page_has_its_examples() -> None:
    assert (len(TOML), len(SESSIONS), len(COMMANDS)) == (1, 2, 1)
    assert "## Compared with other consoles" in DOC


def test_every_picture_is_there_and_shown() -> None:
    for image in IMAGES:
        assert (ROOT / "docs" / image).is_file(), f"docs/console.md shows {image}, which is missing"
    taken = {f"images/{p.name}" for p in (ROOT / "docs" / "images").glob("console-*.png")}
    assert taken == set(IMAGES), f"pictures not shown: {taken - set(IMAGES)}"


def _server_keys(toml: str) -> dict[str, int | float]:
    """The doc's [server] keys as config_text's extra keys (TOML text of each value)."""
    table = tomllib.loads(toml)["server"]
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in table.items()}


def test_the_configuration_turns_the_console_off(tmp_path: Path) -> None:
    from relayflow.config import ConfigError, load_config

    path = tmp_path / "check.toml"
    path.write_text(TOML[0], encoding="utf-8")
    settings = load_config(str(path)).server
    assert (settings.console, settings.console_session_minutes) == (False, 60)
    path.write_text(TOML[0].replace("= 60", "= 4"), encoding="utf-8")
    with pytest.raises(ConfigError, match="console_session_minutes"):
        load_config(str(path))

    with serving(tmp_path, config_text(keys=KEYS, server=_server_keys(TOML[0]))) as server:
        for path_ in ("/console/", "/console/session", "/console/static/console.js"):
            answer = server.http.get(path_)
            assert answer.status_code == 404, (path_, answer.status_code, answer.text)
            assert answer.json()["Code"] == "NotFound", answer.text
        assert server.ok({"Action": "ListFlows"})["Flows"] == []


def _shape(text: str) -> str:
    """Output with the parts that change from run to run (token, port, time) made fixed."""
    text = re.sub(r"^eyJ[\w.-]+(\.\.\.)?$", "<token>", text, flags=re.M)
    text = re.sub(r"http://127\.0\.0\.1:\d+/", "http://127.0.0.1:<port>/", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    return re.sub(r"access key [\w-]+\)", "access key <id>)", text)


def test_a_console_token_signs_in(api_server: ApiServer, tmp_path: Path) -> None:
    key_id, secret = KEYS["admin"]
    config = tmp_path / "relayflow.toml"
    config.write_text(
        f'[client]\nendpoint = "{api_server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n',
        encoding="utf-8",
    )
    session = SESSIONS[0]
    command = session.splitlines()[0].removeprefix("$ ")
    expected = session.split("\n", 1)[1]
    done = subprocess.run(
        [EXE, *shlex.split(command)[1:], "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=server_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The token alone on stdout (for a pipe), the sentence on stderr: a terminal shows both.
    assert done.stdout.count("\n") == 1, done.stdout
    assert _shape(done.stdout + done.stderr) == _shape(expected)
    token = done.stdout.splitlines()[0]
    origin = api_server.url
    answer = api_server.http.post(
        "/console/session", json={"token": token}, headers={"Origin": origin}
    )
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["signedIn"], doc["role"], doc["keyId"]) == (True, "admin", key_id)
    assert "relayflow_console" in answer.cookies
    again = api_server.http.post(
        "/console/session", json={"token": token}, headers={"Origin": origin}
    )
    assert again.status_code == 401, "a console token signs in once"


def _help(words: list[str]) -> str:
    """`relayflow WORDS --help`, run in this process (click's runner) to keep the test quick."""
    from relayflow.cli import main

    done = CliRunner().invoke(main, [*words, "--help"])
    assert done.exit_code == 0, f"relayflow {' '.join(words)} --help: {done.output}"
    return done.output


@pytest.mark.parametrize("line", COMMANDS[0].strip().splitlines() if COMMANDS else [])
def test_each_command_of_the_table_exists(line: str) -> None:
    words = shlex.split(line.split("relayflow", 1)[1])
    group_and_command = words[:2]
    text = _help(group_and_command)
    for option in (w for w in words if w.startswith("--")):
        assert option in text, f"relayflow {' '.join(group_and_command)} has no {option}"


def test_the_read_commands_exist() -> None:
    named = re.findall(r"`relayflow (\w+ \w+) [A-Z]", DOC.split("## Every action")[1])
    assert len(named) >= 4, named
    for command in named:
        _help(command.split())


def test_the_screenshot_command_names_the_browser_tests() -> None:
    line = SESSIONS[1].strip().removeprefix("$ ")
    assert line.startswith("RELAYFLOW_SCREENSHOTS=1 pytest"), line
    test_file = line.split()[-1]
    assert (ROOT / test_file).is_file(), test_file
