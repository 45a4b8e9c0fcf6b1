"""`[engine]` for PostgreSQL: store URLs pass validation and never show their password, and an
unset `lease_seconds` means the store's own default (10 s on PostgreSQL, 30 s on SQLite)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from relayflow.cli import main
from relayflow.config import ConfigError, load_config
from relayflow.engine import Engine
from relayflow.masking import mask_text
from relayflow.store import open_store

PASSWORD = "hunter2-not-for-logs"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://relayflow:{PASSWORD}@db.internal:5432/relayflow",
        f"postgres://relayflow:{PASSWORD}@db.internal/relayflow?sslmode=require",
        f"postgresql://relayflow@db.internal/relayflow?password={PASSWORD}",
    ],
)
def test_a_postgresql_url_is_accepted_and_its_password_masked(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relayflow.toml").write_text(f'[engine]\nstore = "{url}"\n')
    assert load_config().engine.store == url
    assert PASSWORD not in mask_text(url)
    for extra in ([], ["--json"]):
        shown = CliRunner().invoke(main, ["config", "show", *extra])
        assert shown.exit_code == 0, shown.output
        assert PASSWORD not in shown.output
        assert "db.internal" in shown.output


def test_an_environment_reference_in_the_url_is_kept_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = "postgresql://relayflow:${PGPASSWORD}@db.internal/relayflow"
    (tmp_path / "relayflow.toml").write_text(f'[engine]\nstore = "{url}"\n')
    assert load_config().engine.store == url  # the driver reads the variable, not the config
    shown = CliRunner().invoke(main, ["config", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["engine"]["store"] == url


def test_a_wrong_key_beside_the_url_is_refused_without_quoting_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relayflow.toml").write_text(
        f'[engine]\nstore = "postgresql://u:{PASSWORD}@h/db"\nlease_seconds = 0\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config()
    assert "lease_seconds" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_lease_seconds_defaults_to_the_stores_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config().engine.lease_seconds is None
    store = open_store("memory://")
    store.default_lease_seconds = 7.0  # as a driver with its own default would say
    engine = Engine(store)
    try:
        assert engine._runtime.applier.lease_seconds == 7.0
    finally:
        store.close()
    chosen = Engine(open_store("memory://"), lease_seconds=4.0)
    try:
        assert chosen._runtime.applier.lease_seconds == 4.0
    finally:
        chosen.store.close()
