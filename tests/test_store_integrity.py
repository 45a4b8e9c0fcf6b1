"""A damaged, empty or foreign store file is refused at start, in one sentence; a healthy one opens.

Real store files are damaged the ways disks, copies and mistakes damage them (random bytes over
the last page, truncated to nothing or to half, a garbage header, another program's database, a
write-ahead log without its database), then opened through `open_store` and through the real
`relayflow server` and `relayflow run` commands, which must exit 2 with one line naming the file.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relayflow.store import StoreError, open_store
from relayflow.store.sqlite import SQLiteStore
from tests.test_store import event, exec_row

EXE = str(Path(sys.executable).with_name("relayflow"))
PAGE = 4096
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: p\n"


def url(path: Path, options: str = "") -> str:
    return f"sqlite:///{path}{options}"


def make_store(path: Path, executions: int = 60) -> None:
    """A closed store with some executions and events (several pages, no write-ahead log)."""
    store = open_store(url(path))
    with store.transaction() as tx:
        tx.set_meta("token_secret", "ab" * 32)
        for i in range(executions):
            execution_id = tx.insert_execution(exec_row(name=f"e{i}"))
            tx.append_events(
                execution_id, [event(j, detail={"pad": "x" * 300}) for j in range(1, 6)]
            )
    store.close()
    assert not Path(f"{path}-wal").exists()


def overwrite(path: Path, offset: int, size: int, seed: int = 7) -> None:
    noise = random.Random(seed)
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(bytes(noise.randrange(256) for _ in range(size)))


def refused(path: Path, options: str = "") -> str:
    with pytest.raises(StoreError) as info:
        open_store(url(path, options))
    message = str(info.value)
    assert str(path.resolve()) in message, message
    assert "\n" not in message
    return message


def test_a_new_store_is_made_whole_and_marked_as_relayflow_s(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = open_store(url(path))
    store.close()
    assert path.stat().st_size > 0
    assert path.stat().st_mode & 0o077 == 0  # it will hold the task-token secret
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == SQLiteStore.APPLICATION_ID
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]  # no temporary file left


def test_a_healthy_store_opens_again_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    store = open_store(url(path))
    with store.reader() as tx:
        assert tx.get_meta("token_secret") == "ab" * 32
        assert tx.get_execution("f", "e59") is not None
    store.close()


def test_a_store_from_before_the_mark_opens_and_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_store(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.commit()
    db.close()
    open_store(url(path)).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == SQLiteStore.APPLICATION_ID
    db.close()


def test_random_bytes_over_the_last_page_are_found(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    overwrite(path, path.stat().st_size - PAGE, PAGE)
    message = refused(path)
    assert "is damaged" in message and "restore it from a backup" in message, message
    # Asked not to check, the store opens (at the user's risk).
    open_store(url(path, "?check=off")).close()


def test_damage_in_the_middle_is_found(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    pages = path.stat().st_size // PAGE
    overwrite(path, (pages // 2) * PAGE, PAGE, seed=11)
    assert "is damaged" in refused(path)


def test_an_empty_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    path.write_bytes(b"")
    message = refused(path)
    assert "empty file" in message and "delete it to start a new store" in message, message
    assert path.stat().st_size == 0  # no new store, no new token secret written into it
    path.unlink()
    open_store(url(path)).close()  # deleted: a new store, as the message says


def test_a_truncated_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    assert "is damaged" in refused(path)


def test_a_garbage_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    make_store(path)
    overwrite(path, 0, 100)
    message = refused(path)
    assert "not a SQLite database" in message, message


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    message = refused(path)
    assert "not a relayflow store" in message, message
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    db.close()
    assert tables == ["customers"]  # untouched: no relayflow tables written into it


def test_a_write_ahead_log_without_its_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(url(path))
    with store.transaction() as tx:
        tx.set_meta("k", "v")
    wal = Path(f"{path}-wal")
    saved = wal.read_bytes()  # while the store is open its last commits are in the log
    store.close()
    path.unlink()
    wal.write_bytes(saved)
    message = refused(path)
    assert f"{path.resolve()}-wal" in message and "delete" in message, message


def test_the_check_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="check=maybe"):
        open_store(url(tmp_path / "s.db", "?check=maybe"))
    for value in ("quick", "full", "off"):
        open_store(url(tmp_path / f"{value}.db", f"?check={value}")).close()


# -- through the real commands ----------------------------------------------------------------


def _damage(kind: str, path: Path) -> None:
    make_store(path, executions=20)
    if kind == "last page":
        overwrite(path, path.stat().st_size - PAGE, PAGE)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "header":
        overwrite(path, 0, 100)


@pytest.mark.parametrize("kind", ["last page", "empty", "header"])
def test_server_and_run_exit_2_with_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "store.db"
    _damage(kind, path)
    config = tmp_path / "relayflow.toml"
    config.write_text(f'[engine]\nstore = "{url(path)}"\n[server]\nport = 0\n')
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    env = {"PATH": os.environ.get("PATH", ""), "RELAYFLOW_DISABLE_PLUGINS": "fc,http,mns,sql"}
    commands = [["server", "--config", str(config)], ["run", str(flow), "--config", str(config)]]
    with ThreadPoolExecutor(2) as pool:
        done = list(
            pool.map(
                lambda args: subprocess.run(
                    [EXE, *args], capture_output=True, text=True, timeout=60, env=env
                ),
                commands,
            )
        )
    for args, result in zip(commands, done, strict=True):
        said = [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)]
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert len(said) == 1 and said[0].startswith("relayflow: "), result.stderr
        assert str(path) in said[0] and "Traceback" not in result.stderr
    if kind == "empty":
        assert path.stat().st_size == 0
