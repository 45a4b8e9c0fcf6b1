"""The SQLite store driver's own behaviour: files, options, URLs, the engine lock.

What every driver must do is tested once for all of them by the conformance suite in
tests/store/.
"""

from __future__ import annotations

import pytest

from relayflow.store import StoreError, open_store
from tests.store.rows import event, exec_row, flow_row, read, write

# ---------------------------------------------------------------------------------------------
# Opening


def test_schema_creation_is_idempotent(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    first = open_store(url)
    write(first, lambda tx: tx.put_flow(flow_row()))
    second = open_store(url)  # while the first is open
    assert read(second, lambda tx: tx.get_flow("f")) == flow_row()
    second.close()
    first.close()
    third = open_store(url)
    assert read(third, lambda tx: tx.get_flow("f")) == flow_row()
    assert read(third, lambda tx: tx.flow_definition("f", 1)) == "def-1"
    third.close()


def test_commits_survive_reopening(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    s = open_store(url)
    write(s, lambda tx: tx.set_meta("token_secret", "abc"))
    execution_id = write(s, lambda tx: tx.insert_execution(exec_row()))
    write(s, lambda tx: tx.append_events(execution_id, [event(1), event(2)]))
    s.close()
    again = open_store(url)
    assert read(again, lambda tx: tx.get_meta("token_secret")) == "abc"
    assert [e.event_id for e in read(again, lambda tx: tx.list_events(execution_id, 0, 10))] == [
        1,
        2,
    ]
    again.close()


def test_relative_path_and_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///rel.db?synchronous=normal")
    write(s, lambda tx: tx.set_meta("k", "v"))
    s.close()
    assert (tmp_path / "rel.db").exists()
    upper = open_store("sqlite:///rel.db?synchronous=FULL")
    assert read(upper, lambda tx: tx.get_meta("k")) == "v"
    upper.close()


def test_memory_stores_are_private():
    a, b = open_store("memory://"), open_store("memory://")
    write(a, lambda tx: tx.put_flow(flow_row()))
    assert read(b, lambda tx: tx.get_flow("f")) is None
    assert read(a, lambda tx: tx.get_flow("f")) == flow_row()
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "mysql://u:pw@db/x",
            ["no store driver", "mysql://", "memory://", "postgresql://", "sqlite://"],
        ),
        ("relayflow.db", ["must be a URL", "known"]),
        ("sqlite:///x.db?bogus=1", ["unknown option", "bogus", "synchronous"]),
        ("sqlite:///x.db?synchronous=off", ["synchronous=off", "full or normal"]),
        ("sqlite://", ["needs a path"]),
        ("sqlite:///", ["needs a path"]),
        ("sqlite:////no/such/folder/anywhere/x.db", ["folder", "does not exist"]),
    ],
)
def test_bad_urls_give_a_clear_store_error(url, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    assert "pw" not in message


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a SQLite database, not even close" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        open_store("sqlite:///" + str(path))


def test_engine_lock(tmp_path):
    url = "sqlite:///" + str(tmp_path / "s.db")
    a, b = open_store(url), open_store(url)
    a.acquire_engine_lock()
    a.acquire_engine_lock()  # again by its holder: fine
    with pytest.raises(StoreError, match="another relayflow engine"):
        b.acquire_engine_lock()
    a.close()
    b.acquire_engine_lock()
    b.close()
    memory = open_store("memory://")
    memory.acquire_engine_lock()
    memory.acquire_engine_lock()
    memory.close()
