"""The Python examples in docs/engine.md run, and the codes it lists are the engine's."""

import re
from pathlib import Path

import pytest

from relayflow.errors import CODES

DOC = Path(__file__).resolve().parents[1] / "docs" / "engine.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_python_examples_run(code, capsys):
    exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    assert "Succeeded" in capsys.readouterr().out


def test_every_report_code_is_documented():
    text = DOC.read_text()
    for code in (
        "TaskAlreadyCompleted",
        "TaskExpired",
        "ExecutionNotRunning",
        "TaskTokenMalformed",
        "TaskTokenInvalid",
        "ExecutionNotExists",
        "InvalidArgument",
    ):
        assert f"`{code}` | {CODES[code]} |" in text, code
