"""Meta-tests for docs/api.md: its current-SDK examples run and print what the page says, and its
table of actions is the server's, with the roles the server enforces.

A fenced ```python block right after the marker `<!-- runs: current-sdk -->` is one step of the
example; the steps run in order in one namespace against a real server that has the page's own
access keys, with the page's endpoint `127.0.0.1:8765` replaced by the server's. What each step
prints must be the ```text block that follows it.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.api.actions import ACTIONS, SERVICE_ACTIONS
from relayflow.api.auth import READ_ACTIONS, REPORT_ACTIONS
from tests.api_server import ApiServer, config_text, serving
from tests.test_docs import split_markdown

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"
MARKER = "<!-- runs: current-sdk -->"
DOC_KEYS = {
    "admin": ("admin-key", "admin-secret-change-me"),
    "worker": ("worker-key", "worker-secret-change-me"),
    "reader": ("reader-key", "reader-secret-change-me"),
}
TEXT = API_MD.read_text(encoding="utf-8")
DOC = split_markdown(TEXT)


def _steps() -> list[tuple[int, str, str]]:
    """(line, code, expected output) of each runnable step, in the page's order."""
    lines = TEXT.splitlines()
    steps = []
    for index, block in enumerate(DOC.blocks):
        before = lines[block.line - 2].strip() if block.line >= 2 else ""
        if before != MARKER:
            continue
        assert block.info == "python", f"api.md:{block.line}: a runnable block must be python"
        after = DOC.blocks[index + 1]
        assert after.info == "text", f"api.md:{after.line}: a runnable block needs its output"
        steps.append((block.line, block.text, after.text))
    return steps


STEPS = _steps()


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory) -> Iterator[ApiServer]:
    folder = tmp_path_factory.mktemp("api-docs")
    with serving(folder, config_text(keys=DOC_KEYS, plugin=False)) as server:
        yield server


def test_the_page_has_runnable_current_sdk_examples():
    assert len(STEPS) >= 2


def test_the_current_sdk_examples_run_and_print_what_the_page_says(docs_server):
    namespace: dict[str, object] = {"__name__": "api_md_example"}
    for line, code, expected in STEPS:
        code = code.replace("127.0.0.1:8765", docs_server.endpoint)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile("\n" * (line - 1) + code, str(API_MD), "exec"), namespace)
        assert out.getvalue() == expected, f"api.md:{line}: the example printed otherwise"


def _action_rows() -> dict[str, str]:
    """The page's table of actions: action -> its roles cell."""
    section = TEXT[TEXT.index("\n## Actions\n") :]
    section = section[: section.index("\n### ")]
    rows = re.findall(r"^\| \[(\w+)\]\(#[\w-]+\) \| [^|]+ \| ([\w, ]+) \|$", section, re.M)
    return dict(rows)


def test_the_table_of_actions_is_the_servers():
    rows = _action_rows()
    assert sorted(rows) == sorted(ACTIONS)
    assert len(SERVICE_ACTIONS) == 29  # Serverless Workflow's; the others are relayflow's own


def test_the_roles_column_is_what_the_server_enforces():
    for action, roles in _action_rows().items():
        expected = ["admin"]
        if action in READ_ACTIONS:
            expected.append("reader")
        if action in REPORT_ACTIONS:
            expected.append("worker")
        assert sorted(roles.split(", ")) == sorted(expected), action


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_action_is_described_where_its_row_links():
    sections: dict[str, str] = {}
    headings = [(line, text) for line, _level, text in DOC.headings()]
    lines = TEXT.splitlines()
    for (start, text), (end, _) in zip(
        headings, [*headings[1:], (len(lines) + 1, "")], strict=True
    ):
        sections[_slug(text)] = "\n".join(lines[start - 1 : end - 1])
    section = TEXT[TEXT.index("\n## Actions\n") :]
    links = dict(re.findall(r"^\| \[(\w+)\]\(#([\w-]+)\)", section, re.M))
    assert sorted(links) == sorted(ACTIONS)
    for action, anchor in links.items():
        assert anchor in sections, f"{action} links to #{anchor}, which no heading makes"
        assert action in sections[anchor], f"#{anchor} does not describe {action}"
