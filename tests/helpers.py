"""Paths shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "contrib" / "examples"


def corpus_dir() -> Path:
    """The public sample flows: ../shared/fdl-corpus beside the checkout, or $RELAYFLOW_CORPUS."""
    return Path(os.environ.get("RELAYFLOW_CORPUS", ROOT.parent / "shared" / "fdl-corpus"))


def corpus_files() -> list[Path]:
    files = sorted(corpus_dir().glob("*.yaml"))
    if not files and os.environ.get("RELAYFLOW_REQUIRE_CORPUS"):
        raise RuntimeError(f"the FDL corpus is required but {corpus_dir()} has no flows")
    return files
