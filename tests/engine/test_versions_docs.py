"""docs/versions.md: its Python example prints what its comments say, its tables are the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relayflow.engine import version_records, versions
from relayflow.errors import CODES

DOC = Path(__file__).resolve().parents[2] / "docs" / "versions.md"
TEXT = DOC.read_text(encoding="utf-8")


def test_the_example_prints_what_its_comments_say(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", TEXT, re.S)
    exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out.splitlines()
    # One line per print(); a print with a `# ...` comment says what it prints.
    promised = [
        line.split("  # ", 1)[1] if "  # " in line else None
        for line in code.splitlines()
        if line.strip().startswith("print(")
    ]
    assert len(printed) == len(promised) and any(promised)
    for said, expected in zip(printed, promised, strict=True):
        if expected is not None:
            assert said == expected
    assert printed[2] == "{'price': '12'}"  # the execution pinned to version 2


@pytest.mark.parametrize(
    "code",
    [
        "FlowNotExists",
        "FlowVersionNotExists",
        "FlowAliasNotExists",
        "FlowAliasAlreadyExists",
        "FlowVersionInUse",
        "InvalidArgument",
    ],
)
def test_every_code_is_listed_with_its_status(code: str) -> None:
    assert f"| `{code}` | {CODES[code]} |" in TEXT


def test_the_limits_are_the_codes() -> None:
    assert f"| published versions kept per flow | {versions.MAX_VERSIONS:,} |" in TEXT
    assert f"| aliases per flow | {versions.MAX_ALIASES} |" in TEXT
    assert f"| versions per alias | {version_records.MAX_ROUTES} |" in TEXT
    assert f"{version_records.MAX_DESCRIPTION_CHARS:,} characters" in TEXT
    assert f"{version_records.MAX_ROUTING_CHARS:,} characters" in TEXT
    assert f"with a `Qualifier` | {versions.MAX_QUALIFIED_SCAN:,} |" in TEXT
