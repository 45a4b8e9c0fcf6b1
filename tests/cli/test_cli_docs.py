"""Every command of `relayflow` has a section in docs/cli.md and a --help that teaches."""

from pathlib import Path

import click
from click.testing import CliRunner

from relayflow.cli import main

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_command_is_documented_and_helps():
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        assert f"### relayflow {name}\n" in DOC, f"relayflow {name} has no section in docs/cli.md"
        command = main.get_command(ctx, name)
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert len(command.help or "") > 20, f"relayflow {name} --help says too little"
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                assert f"relayflow {name} {sub}" in DOC, f"relayflow {name} {sub} is not in docs"
