"""Make `release-1.db`: a store written by the release before schema versions (f630f1f).

The store holds what an upgrade must carry over:

- flow `greet` and its finished execution `done`;
- flow `nap`, in two versions, and its execution `sleeping`, started on version 1 and waiting
  on a timer that is due 20 seconds after the store was made (long past when a test opens it);
- flow `jobs` and its execution `waiting`, waiting for the callback of task `job`, whose task
  token is kept in `release-1.json`;
- flow `stuck` and its execution `queued`, whose task message was never sent: the engine was
  stopped while its integration hung, which leaves the outbox row for the next engine.

`tests/store/test_upgrade.py` opens a copy with today's engine. Made from a checkout of the
release, with this repository's virtual environment, from the repository's root:

    git worktree add /tmp/rel f630f1f
    PYTHONPATH=/tmp/rel/core .venv/bin/python tests/store/data/make_release_1.py
    git worktree remove /tmp/rel

It refuses to run on a relayflow that records schema versions, and writes next to itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from relayflow.engine import Submitted, TaskRequest
from relayflow.testing import eventually, fdl, make_engine, run_to_end

HERE = Path(__file__).resolve().parent
QUEUE = "acs:mns:::/queues/jobs/messages"
HANG = "acs:mns:::/queues/stuck/messages"

GREET = fdl("""
- type: pass
  name: hello
""")
NAP = fdl("""
- type: wait
  name: nap
  duration: 20
- type: pass
  name: woke
""")
# The second version of `nap`: `sleeping` keeps the first, whose last step is `woke`.
NAP_V2 = fdl("""
- type: wait
  name: nap
  duration: 20
- type: pass
  name: woke-again
""")
JOBS = fdl(
    f"""
    - type: task
      name: job
      resourceArn: {QUEUE}
      pattern: waitForCallback
    - type: pass
      name: after
    """,
    head="timeoutSeconds: 31536000",
)
STUCK = fdl(
    f"""
    - type: task
      name: stuck
      resourceArn: {HANG}
      pattern: waitForCallback
    """,
    head="timeoutSeconds: 31536000",
)


async def make(folder: Path) -> dict[str, str]:
    """Write `release-1.db` in ``folder``; return the task token of `waiting`."""
    sent: list[TaskRequest] = []
    hung = asyncio.Event()

    async def enqueue(request: TaskRequest) -> Submitted:
        sent.append(request)
        return Submitted({"MessageId": "m-1"})

    async def hang(request: TaskRequest) -> Submitted:
        hung.set()
        await asyncio.sleep(3600)  # cancelled when the engine closes: its outbox row stays
        raise AssertionError("unreachable")

    engine = make_engine({QUEUE: enqueue, HANG: hang}, store=f"sqlite:///{folder / 'release-1.db'}")
    await engine.start()
    try:
        await engine.create_flow("greet", GREET)
        await run_to_end(engine, "greet", {"who": "ada"}, name="done")
        await engine.create_flow("nap", NAP)
        await engine.start_execution("nap", {"n": 1}, name="sleeping")
        await engine.update_flow("nap", NAP_V2)
        await engine.create_flow("jobs", JOBS)
        await engine.start_execution("jobs", {"job": 7}, name="waiting")
        await eventually(lambda: sent, what="the message of `waiting`")
        await engine.create_flow("stuck", STUCK)
        await engine.start_execution("stuck", {"job": 8}, name="queued")
        await asyncio.wait_for(hung.wait(), 5)
        info = await engine.describe_execution("nap", "sleeping")
        assert info.status == "Running", info
    finally:
        await engine.close(grace_seconds=0.1)
    return {"waiting_token": sent[0].token}


def main() -> None:
    """Make the store in a temporary folder, check it, and copy it next to this script."""
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        facts = asyncio.run(make(folder))
        db = sqlite3.connect(folder / "release-1.db")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file, nothing in a log
            db.execute("PRAGMA journal_mode=DELETE")
            keys = {r[0] for r in db.execute("SELECT key FROM meta")}
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            timers = db.execute("SELECT count(*) FROM timers").fetchone()[0]
        finally:
            db.close()
        if "schema_version" in keys or "nonces" in tables:
            raise SystemExit("this relayflow records schema versions: run the release's")
        if outbox != 1 or timers < 1:
            raise SystemExit(f"expected one outbox row and a timer, found {outbox} and {timers}")
        shutil.copyfile(folder / "release-1.db", HERE / "release-1.db")
    (HERE / "release-1.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"wrote {HERE / 'release-1.db'} and {HERE / 'release-1.json'}")


if __name__ == "__main__":
    main()
