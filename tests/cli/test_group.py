"""The `relayflow` group: built-ins on first use, plugins' commands only when needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import click
from click.testing import CliRunner

from relayflow.cli import RelayflowGroup, main

EXE = str(Path(sys.executable).with_name("relayflow"))
BUILT_IN = {"validate", "outline", "schema", "run", "server", "plugins", "config"}
REMOTE = {"flows", "executions", "tasks"}


def fresh_group() -> RelayflowGroup:
    @click.group(cls=RelayflowGroup)
    def group() -> None:
        pass

    assert isinstance(group, RelayflowGroup)
    return group


def test_the_built_in_groups_are_all_there():
    assert set(main.list_commands(click.Context(main))) >= BUILT_IN | REMOTE


def test_a_declared_command_is_listed_without_being_imported(tmp_path, monkeypatch):
    (tmp_path / "late_command.py").write_text(
        textwrap.dedent("""
        import click
        IMPORTED = True

        @click.command()
        def hello():
            '''Say hello from a plugin.'''
            click.echo("hello from a plugin")
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = fresh_group()
    entry = EntryPoint("hello", "late_command:hello", "relayflow.commands")
    group._declared = {"hello": entry}
    help_text = CliRunner().invoke(group, ["--help"]).stdout
    assert (
        "hello" in help_text and "Installed by a plugin; see relayflow hello --help." in help_text
    )
    assert "late_command" not in sys.modules
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and result.stdout == "hello from a plugin\n"
    assert "late_command" in sys.modules


def test_a_declared_command_that_does_not_load_is_one_line():
    group = fresh_group()
    group._declared = {"broken": EntryPoint("broken", "no_such_module_x:cmd", "relayflow.commands")}
    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 2
    assert result.stderr.startswith("relayflow: PluginFailed: the command broken of ")


def test_a_command_only_the_hook_adds_still_runs(tmp_path):
    (tmp_path / "my_commands.py").write_text(
        textwrap.dedent("""
        import click
        from relayflow.plugins import hookimpl

        @click.command()
        def greet():
            '''Greet from a local plugin.'''
            click.echo("greetings")

        @hookimpl
        def relayflow_register_commands(cli):
            cli.add_command(greet)
        """)
    )
    (tmp_path / "relayflow.toml").write_text('[plugins]\nmodules = ["my_commands"]\n')
    done = subprocess.run([EXE, "greet"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "greetings\n", done.stderr
