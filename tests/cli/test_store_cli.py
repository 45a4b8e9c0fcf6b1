"""`relayflow store version|upgrade|copy`: what they print, how they refuse, what they hide."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from relayflow.cli import main
from relayflow.store import open_store
from relayflow.store.versions import SCHEMA_VERSION
from tests.cli.test_imports import HEAVY, SERVER_SIDE, among, loaded
from tests.services import free_port, fresh_database

RELEASE_1 = Path(__file__).parents[1] / "store" / "data" / "release-1.db"
EXE = str(Path(sys.executable).with_name("relayflow"))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line(result: Result, code: str) -> str:
    """The single line a refusal prints on stderr, checked to carry ``code``."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"relayflow: {code}: "), lines[0]
    return lines[0]


@pytest.fixture
def old_store(tmp_path: Path) -> str:
    """The URL of a copy of a store written by the release before schema versions."""
    path = tmp_path / "old.db"
    shutil.copyfile(RELEASE_1, path)
    return f"sqlite:///{path}"


@pytest.fixture
def newer_store(tmp_path: Path) -> str:
    path = tmp_path / "newer.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def test_upgrade_says_what_it_did(old_store: str) -> None:
    version = run("store", "version", "--store", old_store)
    assert version.exit_code == 0, version.output
    assert "schema:  version 1" in version.stdout and "relayflow store upgrade" in version.stdout
    first = run("store", "upgrade", "--store", old_store)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{old_store}: upgraded from version 1 to {SCHEMA_VERSION}\n"
    again = run("store", "upgrade", "--store", old_store, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "store": old_store,
        "store_version": SCHEMA_VERSION,
        "previous_version": SCHEMA_VERSION,
        "release_version": SCHEMA_VERSION,
        "upgraded": False,
    }


def test_the_store_comes_from_the_configuration(old_store: str, tmp_path: Path) -> None:
    config = tmp_path / "relayflow.toml"
    config.write_text(f'[engine]\nstore = "{old_store}"\n')
    result = run("store", "upgrade", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "upgraded from version 1" in result.stdout
    both = run("store", "upgrade", "--config", str(config), "--store", old_store)
    assert both.exit_code == 2
    one_line(both, "InvalidArgument")


def test_a_newer_store_is_refused_in_one_sentence(newer_store: str) -> None:
    result = run("store", "upgrade", "--store", newer_store)
    assert result.exit_code == 2
    line = one_line(result, "StoreTooNew")
    assert "newer relayflow" in line and f"version {SCHEMA_VERSION + 1}" in line
    shown = run("store", "version", "--store", newer_store, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["store_version"] == SCHEMA_VERSION + 1


def test_a_server_refuses_a_newer_store_in_one_line(newer_store: str, tmp_path: Path) -> None:
    config = tmp_path / "relayflow.toml"
    config.write_text(f'[engine]\nstore = "{newer_store}"\n[server]\nport = {free_port()}\n')
    done = subprocess.run(
        [EXE, "server", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("relayflow: ") and "written by a newer relayflow" in last, last


def test_a_missing_store_is_not_made_by_looking(tmp_path: Path) -> None:
    result = run("store", "version", "--store", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2
    assert "there is no store at" in one_line(result, "StoreUnavailable")
    assert not (tmp_path / "none.db").exists()


def test_copy_prints_its_summary_and_refuses_a_full_destination(
    old_store: str, tmp_path: Path
) -> None:
    destination = f"sqlite:///{tmp_path / 'new.db'}"
    result = run("store", "copy", old_store, destination)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "copied 4 flows, 4 executions (3 running), 16 events, 3 timers, 1 outbox rows\n"
    )
    assert result.stderr == ""  # no progress line off a terminal
    again = run("store", "copy", old_store, destination, "--json")
    assert again.exit_code == 2
    assert "already has flows or executions" in one_line(again, "StoreNotEmpty")
    counted = run("store", "copy", old_store, f"sqlite:///{tmp_path / 'other.db'}", "--json")
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout)["running"] == 3


def test_passwords_in_store_urls_are_never_shown(old_store: str) -> None:
    secret_url = f"postgresql://rf:s3cr3t-pw@127.0.0.1:{free_port()}/rf"
    for args in (
        ("store", "copy", old_store, secret_url),
        ("store", "version", "--store", secret_url),
        ("store", "upgrade", "--store", secret_url),
    ):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "s3cr3t-pw" not in result.output, result.output
        one_line(result, "StoreUnavailable")


def test_progress_is_a_line_redrawn_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from relayflow.cli.store import _Progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = _Progress()
    for done in range(1, 4):
        progress(done, 3)
    progress.end()
    err = capsys.readouterr().err
    assert err.startswith("\rcopying executions: 1/3 (33 %)")
    assert err.endswith("\rcopying executions: 3/3 (100 %)\n")


def test_store_help_loads_nothing_heavy() -> None:
    assert among(loaded("store", "--help"), SERVER_SIDE + HEAVY) == []


def test_ctrl_c_during_a_copy_exits_130_in_one_line(
    old_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayflow.store import copy as store_copy

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_copy, "copy_urls", interrupted)
    result = run("store", "copy", old_store, f"sqlite:///{tmp_path / 'new.db'}")
    assert result.exit_code == 130
    assert "nothing was written" in one_line(result, "Interrupted")


def test_a_release_store_moves_to_postgresql_from_the_command_line(
    old_store: str, postgres_url: str
) -> None:
    with fresh_database(postgres_url, "rf_store_cli") as target:
        copied = run("store", "copy", old_store, target, "--json")
        assert copied.exit_code == 0, copied.output
        assert json.loads(copied.stdout)["executions"] == 4
        shown = run("store", "version", "--store", target, "--json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["store_version"] == SCHEMA_VERSION
        upgraded = run("store", "upgrade", "--store", target)
        assert upgraded.stdout.endswith(f": already at version {SCHEMA_VERSION}\n")
        # Copying upgraded the source first, as a server would have.
        source = run("store", "version", "--store", old_store).stdout
        assert f"schema:  version {SCHEMA_VERSION}\n" in source
