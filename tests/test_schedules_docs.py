"""docs/schedules.md: its Python example runs and prints what the page says it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[1] / "docs" / "schedules.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)


def test_the_page_has_its_example() -> None:
    assert len(BLOCKS) == 1


@pytest.mark.parametrize(("code", "printed"), BLOCKS)
def test_python_examples_run(code: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs/schedules.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


def test_the_error_codes_listed_are_the_engines() -> None:
    from relayflow.errors import CODES

    for code in ("FlowNotExists", "ScheduleAlreadyExists", "ScheduleNotExists", "InvalidArgument"):
        assert re.search(rf"\| `{code}` +\| {CODES[code]} +\|", DOC), code
