"""Make `release-2.db`: a store at schema version 2, written by relayflow a58af8a.

It holds what `make_release_1.py` describes (the same flows and executions: a finished one,
one waiting on a timer, one waiting for a callback whose token is kept in `release-2.json`,
one whose task message was never sent), written by the last release before schema version 3
(a flow's objects, its execution mode and environment, an execution's published version).
Made from a checkout of that release, from this repository's root:

    git worktree add /tmp/rel2 a58af8a
    PYTHONPATH=/tmp/rel2/core:. .venv/bin/python tests/store/data/make_release_2.py
    git worktree remove /tmp/rel2

It refuses to run on a relayflow whose stores are not at version 2, and writes next to itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from tests.store.data.make_release_1 import make

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Make the store in a temporary folder, check its version, and copy it next to this."""
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        facts = asyncio.run(make(folder))
        db = sqlite3.connect(folder / "release-1.db")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file, nothing in a log
            db.execute("PRAGMA journal_mode=DELETE")
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            db.close()
        if version != ("2",):
            raise SystemExit(f"this relayflow writes schema version {version}: run a58af8a")
        shutil.copyfile(folder / "release-1.db", HERE / "release-2.db")
    (HERE / "release-2.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"wrote {HERE / 'release-2.db'} and {HERE / 'release-2.json'}")


if __name__ == "__main__":
    main()
