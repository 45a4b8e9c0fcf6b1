"""Schema versions: a store written by the release before them is upgraded and carries on.

`data/release-1.db` was written by relayflow f630f1f (see `data/make_release_1.py`): flows, a
finished execution, one waiting on a timer, one waiting for a callback (its token is in
`data/release-1.json`) and one whose task message was never sent. Each test opens a copy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Submitted, TaskRequest
from relayflow.store import StoreError, open_store, sqlite_file
from relayflow.store.sqlite import SQLiteStore
from relayflow.store.upgrade import look, upgrade
from relayflow.store.versions import (
    SCHEMA_VERSION,
    StoreNewer,
    stored_version,
    upgrade_plan,
)
from relayflow.testing import bounded, eventually, make_engine
from tests.engine.helpers import finished, history, types_of

DATA = Path(__file__).parent / "data"
QUEUE = "acs:mns:::/queues/jobs/messages"
HANG = "acs:mns:::/queues/stuck/messages"


@pytest.fixture
def release_1(tmp_path: Path) -> Path:
    """A copy of the store the release wrote."""
    path = tmp_path / "release-1.db"
    shutil.copyfile(DATA / "release-1.db", path)
    return path


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def shape(path: Path) -> dict[str, Any]:
    """Every table's columns and every index's columns: the schema, whatever its SQL's wording."""
    db = sqlite3.connect(path)
    try:
        found: dict[str, Any] = {}
        names = db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        for kind, name in names.fetchall():
            pragma = "table_info" if kind == "table" else "index_info"
            found[f"{kind} {name}"] = db.execute(f"PRAGMA {pragma}({name})").fetchall()
        return found
    finally:
        db.close()


def meta(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def test_the_release_store_records_no_version_and_reads_as_version_1(release_1: Path) -> None:
    assert "schema_version" not in meta(release_1)
    assert "nonces" not in tables(release_1)
    state = look(url(release_1))
    assert (state.before, state.after, state.release) == (1, 1, SCHEMA_VERSION)
    assert "nonces" not in tables(release_1)  # looking changed nothing


def test_an_upgraded_store_has_the_schema_of_a_new_one(release_1: Path, tmp_path: Path) -> None:
    open_store(url(release_1)).close()
    new = tmp_path / "new.db"
    open_store(url(new)).close()
    assert shape(release_1) == shape(new)
    assert meta(release_1)["schema_version"] == meta(new)["schema_version"] == str(SCHEMA_VERSION)


@bounded(seconds=20)
async def test_a_release_store_is_upgraded_at_start_and_its_executions_carry_on(
    release_1: Path,
) -> None:
    sent: list[TaskRequest] = []

    async def queue(request: TaskRequest) -> Submitted:
        sent.append(request)
        return Submitted({"MessageId": str(request.task_id)})

    token = json.loads((DATA / "release-1.json").read_text())["waiting_token"]
    async with make_engine({QUEUE: queue, HANG: queue}, store=url(release_1)) as engine:
        assert meta(release_1)["schema_version"] == str(SCHEMA_VERSION)
        flows = await engine.list_flows()
        assert [f.name for f in flows.items] == ["greet", "jobs", "nap", "stuck"]
        assert (await engine.describe_flow("nap")).version == 2
        done = await engine.describe_execution("greet", "done")
        assert done.status == "Succeeded" and done.input == {"who": "ada"}
        assert (await types_of(engine, "greet", "done"))[-1] == "ExecutionSucceeded"
        # Its timer was due long ago: it fires, on the definition the execution started with.
        sleeping = await finished(engine, "nap", "sleeping", seconds=10)
        assert sleeping.status == "Succeeded"
        steps = {e.step_name for e in await history(engine, "nap", "sleeping")}
        assert "woke" in steps and "woke-again" not in steps
        # A token the release handed out is still good.
        await engine.report_task_succeeded(token, {"ok": 7})
        waiting = await finished(engine, "jobs", "waiting")
        assert waiting.status == "Succeeded"
        assert "TaskSucceeded" in await types_of(engine, "jobs", "waiting")
        # The message the release never sent is sent now, once.
        request = (await eventually(lambda: sent, what="the task message of `queued`"))[0]
        assert request.input == {"job": 8}
        await engine.report_task_succeeded(request.token, {"ok": 8})
        queued = await finished(engine, "stuck", "queued")
        assert queued.status == "Succeeded" and len(sent) == 1
        assert (await engine.describe_execution("stuck", "queued")).output == {"ok": 8}


def write_version(path: Path, value: str) -> None:
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (value,))
    db.commit()
    db.close()


def test_a_store_written_by_a_newer_relayflow_is_refused_in_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(url(path)).close()
    write_version(path, str(SCHEMA_VERSION + 1))
    with pytest.raises(StoreNewer) as info:
        open_store(url(path))
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0, message
    assert str(path) in message and "newer relayflow" in message, message
    assert f"version {SCHEMA_VERSION + 1}" in message, message
    assert meta(path)["schema_version"] == str(SCHEMA_VERSION + 1)  # untouched
    assert look(url(path)).after == SCHEMA_VERSION + 1  # it can still be looked at
    with pytest.raises(StoreNewer):
        upgrade(url(path))


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_version_no_relayflow_writes_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s.db"
    open_store(url(path)).close()
    write_version(path, value)
    with pytest.raises(StoreError, match="which no relayflow writes"):
        open_store(url(path))


@pytest.fixture
def broken_step(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The upgrade to version 2 fails at its second statement."""
    good = sqlite_file.UPGRADES[2][0]
    monkeypatch.setattr(
        sqlite_file, "UPGRADES", {**sqlite_file.UPGRADES, 2: (good, "CREATE TABLE broken (")}
    )
    yield


def test_an_upgrade_that_fails_midway_leaves_the_store_as_it_was(
    release_1: Path, broken_step: None
) -> None:
    before = shape(release_1)
    with pytest.raises(StoreError) as info:
        open_store(url(release_1))
    message = str(info.value)
    assert "cannot upgrade the store" in message and "left at version 1" in message, message
    assert shape(release_1) == before
    assert "schema_version" not in meta(release_1)


def test_an_upgrade_interrupted_midway_leaves_the_store_as_it_was(
    release_1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plan(found: int, steps: Any, where: str) -> Iterator[str]:
        yield sqlite_file.UPGRADES[2][0]  # the first statement runs, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite_file, "upgrade_plan", plan)
    before = shape(release_1)
    with pytest.raises(KeyboardInterrupt):
        open_store(url(release_1))
    assert shape(release_1) == before
    monkeypatch.undo()
    open_store(url(release_1)).close()  # and it upgrades later
    assert "nonces" in tables(release_1)


CRASHING_UPGRADE = """
import sys, time
from relayflow.store import open_store, sqlite_file

def plan(found, steps, where):
    yield sqlite_file.UPGRADES[2][0]
    print("midway", flush=True)
    time.sleep(60)  # killed here
    yield from ()

sqlite_file.upgrade_plan = plan
open_store(sys.argv[1])
"""


def test_a_process_killed_midway_through_an_upgrade_leaves_the_store_as_it_was(
    release_1: Path,
) -> None:
    before = shape(release_1)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_UPGRADE, url(release_1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "midway\n"
    finally:
        child.kill()
        child.wait(30)
    assert shape(release_1) == before
    assert "schema_version" not in meta(release_1)
    assert upgrade(url(release_1)).sentence() == f"upgraded from version 1 to {SCHEMA_VERSION}"


def test_an_upgrade_waits_for_no_running_engine(release_1: Path) -> None:
    held = sqlite_file.lock(release_1)  # as a server of the release would
    try:
        with pytest.raises(StoreError, match="another relayflow engine is running"):
            open_store(url(release_1))
        assert "nonces" not in tables(release_1)
    finally:
        import os

        os.close(held)
    state = upgrade(url(release_1))
    assert (state.before, state.after) == (1, SCHEMA_VERSION)
    assert state.sentence() == f"upgraded from version 1 to {SCHEMA_VERSION}"
    again = upgrade(url(release_1))
    assert again.sentence() == f"already at version {SCHEMA_VERSION}"


def test_a_new_store_records_this_version(tmp_path: Path) -> None:
    store = open_store(url(tmp_path / "s.db"))
    assert isinstance(store, SQLiteStore)
    assert (store.schema_version, store.upgraded_from) == (SCHEMA_VERSION, None)
    with store.reader() as tx:
        assert tx.get_meta("schema_version") == str(SCHEMA_VERSION)
    store.close()
    memory = open_store("memory://")
    with memory.reader() as tx:
        assert tx.get_meta("schema_version") == str(SCHEMA_VERSION)
    memory.close()


def test_an_opening_that_upgrades_says_from_which_version(
    release_1: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="relayflow.store"):
        store = open_store(url(release_1))
    assert isinstance(store, SQLiteStore)
    assert (store.schema_version, store.upgraded_from) == (SCHEMA_VERSION, 1)
    store.close()
    assert caplog.messages == [
        f"upgraded the store {release_1} from schema version 1 to {SCHEMA_VERSION}"
    ]


def test_upgrade_plans_run_every_step_above_the_store_in_order() -> None:
    steps = {v: (f"step {v}",) for v in range(2, SCHEMA_VERSION + 1)}
    assert upgrade_plan(1, steps, "s") == [f"step {v}" for v in range(2, SCHEMA_VERSION + 1)]
    assert upgrade_plan(SCHEMA_VERSION, steps, "s") == []
    with pytest.raises(StoreError, match="no step for it"):
        upgrade_plan(1, {}, "s")
    with pytest.raises(StoreNewer):
        upgrade_plan(SCHEMA_VERSION + 1, steps, "s")
    assert stored_version(None, "s") == 1
    assert stored_version("2", "s") == 2
