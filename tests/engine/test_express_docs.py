"""docs/express.md: its Python example runs, and its refusal sentences are the engine's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "express.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_python_examples_run(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "Succeeded {'decision': 'review'}" in out
    assert re.search(r"order-7:[0-9a-f-]{36}", out)


def test_the_refusals_are_spelled_as_the_engine_spells_them() -> None:
    from relayflow.engine.express import refuse_express_history, refuse_express_start
    from relayflow.errors import EngineError
    from relayflow.store import FlowRow

    text = DOC.read_text()
    flow = FlowRow("f", "id", "", "", "FDL", "", 1, 0.0, 0.0, "Express")
    for refuse in (lambda: refuse_express_start(flow), lambda: refuse_express_history(flow, "x")):
        with pytest.raises(EngineError) as caught:
            refuse()
        assert f"| `{caught.value.code}` | 400 | `{caught.value.message}` |" in text
