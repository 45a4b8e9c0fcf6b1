"""docs/waiting.md: its Python example prints what the page says, and its other examples and
tables match the code (the configuration, the command's columns, the limits, the codes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relayflow.api.auth import READ_ACTIONS
from relayflow.cli.executions_waiting import COLUMNS, MAX_OLDER_THAN
from relayflow.config import load_config
from relayflow.engine import waiting
from relayflow.errors import CODES
from relayflow.results import WaitingWork

DOC = (Path(__file__).resolve().parents[1] / "docs" / "waiting.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)


def test_the_page_has_its_example() -> None:
    assert len(BLOCKS) == 1


@pytest.mark.parametrize(("code", "printed"), BLOCKS)
def test_python_examples_run(code: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs/waiting.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


def test_the_configuration_example_is_read_as_the_page_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (toml,) = re.findall(r"```toml\n(.*?)```", DOC, re.S)
    path = tmp_path / "relayflow.toml"
    path.write_text(toml, encoding="utf-8")
    monkeypatch.delenv("RELAYFLOW_ENGINE__DEFAULT_CALLBACK_TIMEOUT_SECONDS", raising=False)
    assert load_config(str(path)).engine.limits().default_callback_timeout_seconds == 86400
    monkeypatch.setenv("RELAYFLOW_ENGINE__DEFAULT_CALLBACK_TIMEOUT_SECONDS", "0")
    assert load_config(str(path)).engine.limits().default_callback_timeout_seconds == 0


def test_the_fields_and_columns_are_the_codes() -> None:
    sample = WaitingWork("f", "e", "s", "task", timeout_seconds=1, due=None)
    for key in [*sample.to_api(), "Due"]:
        assert f"| `{key}` |" in DOC, key
    console = re.search(r"```console\n\$ relayflow executions waiting.*?\n(.*?)\n", DOC, re.S)
    assert console is not None
    assert console[1].split() == " ".join(COLUMNS).split()


def test_the_limits_and_codes_are_the_engines() -> None:
    assert waiting.MAX_WAITING_PAGE == 1000 and waiting.DEFAULT_WAITING_PAGE == 100
    assert waiting.SCAN_BUDGET == 1000 and waiting.MAX_TOKEN_CHARS == 1024
    assert waiting.MAX_OLDER_THAN_SECONDS == MAX_OLDER_THAN == 31622400
    assert "from 0 to 31622400 (366 days)" in DOC
    assert "ListWaitingWork" in READ_ACTIONS
    for code in ("InvalidArgument", "FlowNotExists"):
        assert re.search(rf"\| `{code}` \| {CODES[code]} \|", DOC), code
