"""`relayflow config show` and friends: settings that cannot work are named, exit 2."""

from __future__ import annotations

from click.testing import CliRunner

from relayflow.cli import main


def test_config_show_names_a_setting_that_cannot_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "fc.toml"
    config.write_text('[integrations.fc.functions]\n"s/f" = "nomodule_here:handler"\n')
    result = CliRunner().invoke(main, ["config", "show", "--config", str(config)])
    assert result.exit_code == 2
    assert "[integrations.fc.functions]" in result.stdout  # the configuration is still shown
    said = result.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith("relayflow: InvalidConfig: ")
    assert "nomodule_here" in said[0]


def test_config_show_of_settings_that_work_is_exit_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.py").write_text("def handler(event, context):\n    return {}\n")
    config = tmp_path / "fc.toml"
    config.write_text('[integrations.fc.functions]\n"s/f" = "jobs:handler"\n')
    result = CliRunner().invoke(main, ["config", "show", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
