"""The `relayflow` command: its group, the built-in command modules, and plugins' commands.

Each built-in command group lives in its own module with a `register(cli)` function, the
signature of the `relayflow_register_commands` hook that plugins implement:

- `local`: `validate`, `outline`, `schema`, `plugins`, `config show`;
- `run`: `run` (one execution on the embedded engine);
- `serve`: `server`;
- `flows`, `executions`, `tasks`: the HTTP API from the shell;
- `store`: `store version`, `store upgrade`, `store copy` (a store, without a server).

The built-ins are registered from an internal list rather than through the plugin manager:
loading the manager means loading the configuration (pydantic) and importing every plugin,
which `relayflow --help` must not pay for. Command modules import only click and `_common`
at module level; each command imports what it runs when it runs.

Plugins' commands come two ways. A distribution may declare them as entry points of the group
`relayflow.commands` (`worker = "relayflow_mns.cli:worker"`): `--help` lists their names from
the installed metadata, and a command's module is imported only when it is invoked. A command
that a plugin only adds through the `relayflow_register_commands` hook is found when its name
is not otherwise known: the plugin manager is loaded then, as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import click

from relayflow import __version__
from relayflow.cli._common import CONTEXT

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["COMMANDS_GROUP", "RelayflowGroup", "main"]

#: The entry-point group under which plugins declare their commands (name = command name).
COMMANDS_GROUP = "relayflow.commands"

# The built-in command modules, in the order their commands were added before; each has
# `register(cli: click.Group) -> None`.
_BUILTINS = (
    "relayflow.cli.local",
    "relayflow.cli.run",
    "relayflow.cli.serve",
    "relayflow.cli.flows",
    "relayflow.cli.aliases",
    "relayflow.cli.executions",
    "relayflow.cli.schedules",
    "relayflow.cli.tasks",
    "relayflow.cli.store",
    "relayflow.cli.console",
)


class RelayflowGroup(click.Group):
    """The top group: built-in commands on first use, plugins' commands only when needed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._builtins_added = False
        self._declared: dict[str, EntryPoint] | None = None
        self._hooks_called = False

    def _add_builtins(self) -> None:
        if self._builtins_added:
            return
        self._builtins_added = True
        for name in _BUILTINS:
            importlib.import_module(name).register(self)

    def _declared_commands(self) -> dict[str, EntryPoint]:
        """Plugins' commands declared as entry points, by name; built-in names win."""
        if self._declared is None:
            from importlib.metadata import entry_points

            found = entry_points(group=COMMANDS_GROUP)
            self._declared = {ep.name: ep for ep in sorted(found, key=lambda e: e.name)}
        return self._declared

    def _add_hooked_commands(self) -> None:
        """Load the plugin manager and let every plugin's hook add its commands."""
        if self._hooks_called:
            return
        self._hooks_called = True
        from relayflow.config import ConfigError, load_config
        from relayflow.plugins import PluginManager

        try:
            config = load_config(None)
        except ConfigError:
            return  # reported by the command that reads the configuration
        PluginManager.from_config(config).register_commands(self)

    def _load_declared(self, name: str) -> click.Command | None:
        entry = self._declared_commands().get(name)
        if entry is None:
            return None
        try:
            command = entry.load()
        except Exception as exc:  # a broken plugin is reported, not a traceback
            from relayflow.cli._common import Invalid

            raise Invalid(
                "PluginFailed",
                f"the command {name} of {entry.value} does not load: {type(exc).__name__}: {exc}",
            ) from None
        if not isinstance(command, click.Command):
            return None
        self.add_command(command, name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in commands, declared plugin commands, and any a hook has added already."""
        self._add_builtins()
        return sorted(set(self.commands) | set(self._declared_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing a plugin's only when it is asked for."""
        self._add_builtins()
        found = self.commands.get(cmd_name) or self._load_declared(cmd_name)
        if found is None:
            self._add_hooked_commands()
            found = self.commands.get(cmd_name)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `--help`, without importing the plugins' command modules."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                dist = self._declared_commands()[name].dist
                source = dist.name if dist is not None else "a plugin"
                rows.append((name, f"Installed by {source}; see relayflow {name} --help."))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=RelayflowGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="relayflow")
def main() -> None:
    """Run flows written in FDL durably, on your own machines.

    \b
    Start here:
      relayflow validate flows/*.yaml     check definitions, with line-numbered errors
      relayflow outline flows/main.yaml   see a flow's steps as a tree
      relayflow run flows/main.yaml --input '{"id": 7}'
                                          run one execution and print its output
      relayflow server                    run the engine and its HTTP API
      relayflow executions start FLOW --input '{"id": 7}' --wait
                                          start an execution on a server, wait for its end
      relayflow plugins                   installed plugins, their hooks and integrations
      relayflow config show               the effective configuration, secrets hidden
      relayflow schema > fdl.schema.json  JSON Schema for editors

    Shell completion for bash, zsh and fish: see docs/cli.md.
    """
