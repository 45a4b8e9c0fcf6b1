"""No secret in what configuration commands print, whatever the shape of the mistake.

The real `relayflow` executable is run with configurations that are wrong in the ways people
get them wrong (an access key written as a table instead of a list, a list of bare secrets, a
wrong type, a misspelt nested key, JSON that does not parse, URLs with passwords), and a marker
secret must never appear on stdout or stderr. A hypothesis property covers random shapes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayflow.cli import main
from relayflow.config import ConfigError, load_config, mask_text, redacted

EXE = str(Path(sys.executable).with_name("relayflow"))
MARK = "MarkerSecret4711"
KEY = {"id": "ops", "secret": MARK, "role": "admin"}
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def relayflow(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, plugins: str = "none"
) -> subprocess.CompletedProcess[str]:
    """Run the real command; `plugins="none"` keeps the entry-point plugins out (faster)."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    if plugins == "none":
        environ["RELAYFLOW_DISABLE_PLUGINS"] = "fc,http,mns,sql"
    environ.update(env or {})
    return subprocess.run(
        [EXE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=environ
    )


# Environment shapes: each is wrong, and carries MARK somewhere a secret lives.
ENV_CASES: list[tuple[str, dict[str, str]]] = [
    ("table instead of a list", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps(KEY)}),
    ("list of bare secrets", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([MARK])}),
    ("wrong role", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([{**KEY, "role": "boss"}])}),
    ("secret of the wrong type", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([{**KEY, "secret": [MARK]}])}),
    ("misspelt nested key", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([{**KEY, "sekret": MARK}])}),
    ("secret as a key", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([{MARK: "admin"}])}),
    ("JSON cut short", {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps([KEY])[:-3]}),
    ("whole table, bad port", {"RELAYFLOW_SERVER": json.dumps({"port": "x", "access_keys": [KEY]})}),
    ("whole table, not JSON", {"RELAYFLOW_SERVER": f"access_keys={MARK}"}),
    ("short token secret", {"RELAYFLOW_ENGINE__TOKEN_SECRET": MARK[:10]}),
]  # fmt: skip

FILE_CASES: list[tuple[str, str]] = [
    ("table instead of a list", f'[server.access_keys]\nid = "ops"\nsecret = "{MARK}"\nrole = "admin"\n'),
    ("list of bare secrets", f'[server]\naccess_keys = ["{MARK}"]\n'),
    ("wrong role", f'[[server.access_keys]]\nid = "ops"\nsecret = "{MARK}"\nrole = "boss"\n'),
    ("a client secret that is a list", f'[client]\naccess_key_secret = ["{MARK}"]\n'),
    ("a token secret that is a table", f'[engine.token_secret]\nvalue = "{MARK}"\n'),
    ("a store URL with a password", f'[engine]\nstore = "sqlite:///s.db?password={MARK}"\n'),
    ("a store URL naming no driver", f'[engine]\nstore = "postgresql://app:{MARK}@db/x"\n'),
    ("a client table that is a URL", f'client = "http://app:{MARK}@h/"\n'),
]  # fmt: skip


def _cases(tmp_path: Path) -> list[tuple[str, list[str], Path, dict[str, str]]]:
    runs = []
    for i, (label, env) in enumerate(ENV_CASES):
        folder = tmp_path / f"env{i}"
        folder.mkdir()
        for command in (["config", "show"], ["server"]):
            runs.append((f"env: {label}: {command[0]}", command, folder, env))
    for i, (label, text) in enumerate(FILE_CASES):
        folder = tmp_path / f"file{i}"
        folder.mkdir()
        (folder / "relayflow.toml").write_text(text)
        for command in (["config", "show"], ["server"]):
            runs.append((f"file: {label}: {command[0]}", command, folder, {}))
    return runs


def _check(label: str, code: int | None, stdout: str, stderr: str) -> None:
    output = stdout + stderr
    assert MARK not in output, f"{label}: {output}"
    if code == 0:  # a store URL is only opened by `server`
        assert "store URL" in label and label.endswith("config"), f"{label}: {output}"
        return
    assert code == 2, f"{label}: exit {code}: {output}"
    # One line for the user, beside any line the server's log writes before it.
    said = [line for line in stderr.splitlines() if not LOG_LINE.match(line)]
    assert len(said) == 1 and said[0].startswith("relayflow: "), f"{label}: {output}"
    assert "Traceback" not in output, label


def test_bad_shapes_never_print_the_secret_from_the_real_command(tmp_path: Path) -> None:
    # The real executable for a few cases (in parallel); the whole matrix runs in-process below.
    runs = [
        case for case in _cases(tmp_path) if case[0].split(": ")[1] == "table instead of a list"
    ]
    assert len(runs) == 4
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda case: relayflow(case[1], case[2], case[3]), runs))
    for (label, _, _, _), result in zip(runs, done, strict=True):
        _check(label, result.returncode, result.stdout, result.stderr)


def test_bad_shapes_never_print_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for label, command, folder, env in _cases(tmp_path):
        monkeypatch.chdir(folder)
        environ = {"RELAYFLOW_DISABLE_PLUGINS": "fc,http,mns,sql", **env}
        result = CliRunner().invoke(main, command, env=environ)
        _check(label, result.exit_code, result.stdout, result.stderr)


def test_the_errors_still_say_what_is_wrong(tmp_path: Path) -> None:
    env = {"RELAYFLOW_SERVER__ACCESS_KEYS": json.dumps(KEY)}
    shown = relayflow(["config", "show"], tmp_path, env).stderr
    assert "$RELAYFLOW_SERVER__ACCESS_KEYS" in shown and "server.access_keys" in shown
    assert "valid list, got a table" in shown, shown
    cut = relayflow(["server"], tmp_path, {"RELAYFLOW_SERVER__ACCESS_KEYS": "[{"}).stderr
    assert "$RELAYFLOW_SERVER__ACCESS_KEYS is not valid JSON" in cut, cut
    port = relayflow(["config", "show"], tmp_path, {"RELAYFLOW_SERVER__PORT": "eighty"}).stderr
    assert "server.port" in port and "got 'eighty'" in port, port  # not a secret: quoted


def test_config_show_masks_passwords_in_urls(tmp_path: Path) -> None:
    (tmp_path / "relayflow.toml").write_text(
        "[engine]\n"
        'store = "memory://"\n'
        "[client]\n"
        f'endpoint = "http://ops:{MARK}@127.0.0.1:8765/?password={MARK}&region=eu"\n'
        "[integrations.sql.databases]\n"
        f'orders = "postgresql+psycopg://app@db.internal/orders?password={MARK}"\n'
        f'billing = "postgresql+psycopg://app:{MARK}@db.internal/billing"\n'
        'audit = "postgresql+psycopg://app:${AUDIT_DB_PASSWORD}@db.internal/audit"\n'
    )
    env = {"RELAYFLOW_DISABLE_PLUGINS": "fc,http,mns"}  # relayflow-sql checks its table
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = relayflow(args, tmp_path, env, plugins="some")
        assert result.returncode == 0, result.stderr
        assert MARK not in result.stdout + result.stderr, result.stdout
    doc = json.loads(result.stdout)
    assert doc["client"]["endpoint"] == "http://ops:***@127.0.0.1:8765/?password=***&region=eu"
    assert doc["integrations"]["sql"]["databases"] == {
        "orders": "postgresql+psycopg://app@db.internal/orders?password=***",
        "billing": "postgresql+psycopg://app:***@db.internal/billing",
        "audit": "postgresql+psycopg://app:${AUDIT_DB_PASSWORD}@db.internal/audit",
    }


def test_a_store_url_with_a_password_is_masked_in_the_server_error(tmp_path: Path) -> None:
    env = {"RELAYFLOW_ENGINE__STORE": f"postgresql://app:{MARK}@db.internal/relayflow"}
    result = relayflow(["server"], tmp_path, env)
    assert result.returncode == 2
    assert MARK not in result.stderr and "postgresql://" in result.stderr
    assert "Could not load" not in result.stderr  # one line: stevedore's own warning is spared


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://u:p4ss@h/x", "https://u:***@h/x"),
        ("https://u@h/x", "https://u@h/x"),
        ("pg://u:a/b@c@h:5/d", "pg://u:***@h:5/d"),
        ("pg://u:${DB_PASSWORD}@h/d", "pg://u:${DB_PASSWORD}@h/d"),
        ("h/d?sslmode=require&password=p4ss&x=1", "h/d?sslmode=require&password=***&x=1"),
        ("h/?access_token=p4ss#frag", "h/?access_token=***#frag"),
        ("host=db user=app password=p4ss", "host=db user=app password=***"),
        ("{'secret': 'p4ss', 'id': 'a'}", "{'secret': '***', 'id': 'a'}"),
        ('{"Password": "p4ss"}', '{"Password": "***"}'),
        ("got 'p4ss' at line 1", "got 'p4ss' at line 1"),  # nothing says it is a secret
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_redacted_hides_whole_secret_values_and_bare_entries_of_key_lists() -> None:
    doc = {
        "server": {"access_keys": [{"id": "a", "secret": "p4ss", "role": "admin"}, "p4ss"]},
        "x": {"secrets": {"one": "p4ss", "two": ["p4ss"]}, "api_token": 5, "none_token": None},
        "url": "https://u:p4ss@h/?token=p4ss",
    }
    assert redacted(doc) == {
        "server": {"access_keys": [{"id": "a", "secret": "***", "role": "admin"}, "***"]},
        "x": {"secrets": "***", "api_token": "***", "none_token": None},
        "url": "https://u:***@h/?token=***",
    }


def test_config_show_in_process_keeps_ids_and_hides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(
        f'[engine]\nstore = "memory://"\n[[server.access_keys]]\nid = "ops"\nsecret = "{MARK}"\n'
        'role = "admin"\n'
    )
    result = CliRunner().invoke(main, ["config", "show", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["server"]["access_keys"] == [
        {"id": "ops", "secret": "***", "role": "admin"}
    ]


# -- the property -----------------------------------------------------------------------------

_KEYS = st.sampled_from(["id", "secret", "role", "password", "token", "x", "access_keys", MARK])
_LEAVES = st.one_of(
    st.just(MARK),
    st.sampled_from(["admin", "worker", "", "ops", f"https://u:{MARK}@h/?password={MARK}"]),
    st.integers(-3, 70000),
    st.booleans(),
    st.none(),
)
_SHAPES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_VARIABLES = st.sampled_from(
    [
        "RELAYFLOW_SERVER__ACCESS_KEYS",
        "RELAYFLOW_SERVER",
        "RELAYFLOW_CLIENT",
        "RELAYFLOW_ENGINE__TOKEN_SECRET",
        "RELAYFLOW_CLIENT__ACCESS_KEY_SECRET",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variable=_VARIABLES, shape=_SHAPES, raw=st.booleans())
def test_no_shape_puts_the_secret_in_an_error(variable: str, shape: Any, raw: bool) -> None:
    value = json.dumps(shape)
    if raw:  # not JSON at all, or JSON cut short
        value = value[: max(1, len(value) // 2)] if len(value) > 2 else f"{{{MARK}"
    saved = os.environ.get(variable)
    os.environ[variable] = value
    try:
        try:
            config = load_config(None)
        except ConfigError as exc:
            assert MARK not in str(exc), str(exc)
            assert "\n" not in str(exc)
            return
        # It loaded: ids and endpoints may be the marker, secrets and URL passwords never.
        shown = redacted(
            {
                "engine": config.engine.model_dump(),
                "server": config.server.model_dump(),
                "client": config.client.model_dump(),
            }
        )
        assert shown["engine"]["token_secret"] in (None, "***")
        assert shown["client"]["access_key_secret"] in (None, "***")
        assert all(key["secret"] == "***" for key in shown["server"]["access_keys"])
        text = json.dumps(shown)
        assert f":{MARK}@" not in text and f"password={MARK}" not in text, text
    finally:
        if saved is None:
            del os.environ[variable]
        else:
            os.environ[variable] = saved
