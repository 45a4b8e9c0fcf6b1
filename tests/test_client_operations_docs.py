"""docs/api.md's example of the client's methods for relayflow's own actions runs as printed.

The fenced python block after `<!-- runs: client-operations -->` runs against the session's
server (its endpoint and admin key put in for the page's), and must print the text block that
follows it.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from tests.api_server import KEYS, ApiServer
from tests.test_docs import split_markdown

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"
MARKER = "<!-- runs: client-operations -->"


def test_the_client_operations_example_prints_what_the_page_says(api_server: ApiServer) -> None:
    text = API_MD.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = split_markdown(text).blocks
    found = [i for i, b in enumerate(blocks) if lines[b.line - 2].strip() == MARKER]
    assert len(found) == 1, "api.md has one client-operations example"
    code, expected = blocks[found[0]], blocks[found[0] + 1]
    assert (code.info, expected.info) == ("python", "text")
    source = (
        code.text.replace("127.0.0.1:8765", api_server.endpoint)
        .replace('"admin-key"', repr(KEYS["admin"][0]))
        .replace('"admin-secret-change-me"', repr(KEYS["admin"][1]))
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n" * (code.line - 1) + source, str(API_MD), "exec"), {"__name__": "doc"})
    assert out.getvalue() == expected.text
