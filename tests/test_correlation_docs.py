"""docs/correlation.md: its flows load, its Python example prints what the page says, and its
messages, codes and command lines are the ones relayflow gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from relayflow.errors import CODES
from relayflow.fdl import DefinitionError, load_flow

DOC = (Path(__file__).resolve().parents[1] / "docs" / "correlation.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```\n\nprints\n\n```text\n(.*?)```", DOC, re.S)
YAML = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def test_the_page_has_its_examples() -> None:
    assert len(PYTHON) == 1 and len(YAML) == 2


@pytest.mark.parametrize("text", YAML)
def test_its_flows_load(text: str) -> None:
    step = load_flow(text).steps[0]
    assert step.correlation_key is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("code", "printed"), PYTHON)
def test_the_python_example_runs(code: str, printed: str, capsys: pytest.CaptureFixture[str]):
    exec(compile(code, "docs/correlation.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == printed


def test_the_definition_errors_shown_are_relayflows() -> None:
    shown = re.search(
        r"created, with the line of `correlationKey`:\n\n```text\n(.*?)```", DOC, re.S
    )
    assert shown is not None
    quick = YAML[0]
    variants = [
        quick.replace("pattern: waitForCallback", "pattern: requestResponse"),
        quick.replace("correlationKey: $.orderId", "correlationKey: $local.orderId"),
        quick.replace("correlationKey: $.orderId", "correlationKey: $.items[*]"),
    ]
    for text, line in zip(variants, shown.group(1).splitlines(), strict=True):
        with pytest.raises(DefinitionError) as info:
            load_flow(text, "orders")
        assert str(info.value) == line


def test_the_codes_listed_are_the_engines() -> None:
    for code in (
        "CorrelationKeyNotExists",
        "FlowNotExists",
        "InvalidArgument",
        "ExecutionNotRunning",
    ):
        assert f"| `{code}` | {CODES[code]} |" in DOC, code


def test_the_command_line_refusal_shown_is_the_clis() -> None:
    result = CliRunner().invoke(
        main, ["tasks", "succeed", "tok", "--flow", "orders", "--key", "A-1001", "--output", "{}"]
    )
    assert result.exit_code == 2
    assert f"$ echo $?\n{result.exit_code}" in DOC
    assert result.output.strip() in DOC


def test_its_links_lead_somewhere() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    anchors = {
        re.sub(r"[^\w\- ]", "", title).strip().lower().replace(" ", "-")
        for title in re.findall(r"^#+ (.+)$", DOC, re.M)
    }
    for target in re.findall(r"\]\(([^)]+)\)", DOC):
        page, _, anchor = target.partition("#")
        if page:
            assert (docs / page).is_file(), target
        else:
            assert anchor in anchors, target
    fdl = (docs / "fdl.md").read_text()
    assert "#### A callback by correlation key" in fdl and "(correlation.md)" in fdl
