"""The `relayflow` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from relayflow import __version__
from relayflow.config import Config, ConfigError, load_config, mask_text, redacted, to_toml
from relayflow.engine.coverage import integration_problems
from relayflow.engine.engine import served
from relayflow.engine.integration import Integration
from relayflow.errors import EngineError
from relayflow.fdl import (
    DEFAULT_LIMITS,
    DefinitionError,
    DefinitionLimits,
    Flow,
    Problem,
    check_flow,
    flow_json_schema,
)
from relayflow.fdl.loader import read_text
from relayflow.fdl.outline import outline as render_outline
from relayflow.plugins import PluginManager
from relayflow.remote_cli import register as register_remote_commands
from relayflow.store import StoreError

__all__ = ["main"]

EXIT_INVALID = 2


class _Group(click.Group):
    """The command group, which also offers the commands that plugins register."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        try:
            config = load_config(None)
        except ConfigError:
            return  # reported by the command that reads the configuration
        PluginManager.from_config(config).register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            self._add_plugin_commands()
            found = super().get_command(ctx, cmd_name)
        return found


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
    """


def _load(
    path: str, limits: DefinitionLimits = DEFAULT_LIMITS
) -> tuple[Flow | None, list[Problem]]:
    try:
        text = read_text(path, limits=limits)
    except DefinitionError as exc:
        return None, exc.problems
    return check_flow(text, path, limits=limits)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@click.option(
    "--strict",
    is_flag=True,
    help="Also require an installed integration for every task step and its pattern.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="relayflow.toml whose definition limits ([engine]) apply, and whose plugins and "
    "integrations --strict uses.",
)
def validate(files: tuple[str, ...], as_json: bool, strict: bool, config_path: str | None) -> None:
    """Check FDL definitions (YAML or JSON) and report every problem.

    Exits 0 when every file is valid and 2 otherwise. Problems go to stderr, one a line, as
    FILE:LINE: PATH: MESSAGE, for example:

    \b
      flow.yaml:12: steps[2].choices[0].goto: no sibling step named 'nowhere'; siblings are: a, b

    With --strict, a task step that no installed integration serves (or whose pattern its
    integration does not support) is a problem too; integrations are set up from the
    configuration, so that, for example, FC functions must be mapped.
    """
    integrations = _setup(config_path)[2] if strict else []
    limits = _config(config_path).engine.definition_limits() if config_path else DEFAULT_LIMITS
    report = []
    failed = 0
    for path in files:
        flow, problems = _load(path, limits)
        if strict and flow is not None:
            text = read_text(path, limits=limits)
            problems = integration_problems(flow, served(integrations), text, path, limits)
            flow = None if problems else flow
        steps = flow.step_count() if flow else 0
        failed += bool(problems)
        report.append(
            {
                "file": path,
                "valid": not problems,
                "steps": steps,
                "problems": [p.to_dict() for p in problems],
            }
        )
        if as_json:
            continue
        if problems:
            for problem in problems:
                click.echo(str(problem), err=True)
            click.echo(
                f"invalid  {path}  ({len(problems)} problem{'s' * (len(problems) != 1)})", err=True
            )
        else:
            click.echo(f"valid    {path}  ({steps} step{'s' * (steps != 1)})")
    if as_json:
        click.echo(json.dumps({"valid": not failed, "files": report}, indent=2))
    elif len(files) > 1:
        click.echo(f"{len(files) - failed} of {len(files)} valid", err=bool(failed))
    if failed:
        sys.exit(EXIT_INVALID)


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
def schema(output: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of FDL flow documents.

    Editors that use yaml-language-server pick it up from a first line such as
    `# yaml-language-server: $schema=./fdl.schema.json`; add `yaml.customTags: ["!Ref scalar"]`
    to their settings for funcraft's !Ref tag.
    """
    text = json.dumps(flow_json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def outline(file: str) -> None:
    """Show a flow's steps as a tree: types, names, targets, branches and gotos."""
    flow, problems = _load(file)
    if flow is None:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    click.echo(render_outline(flow, file))


def _refuse(exc: Exception) -> NoReturn:
    """Print why the command cannot go on, in one line without secrets, and exit 2."""
    # Messages may quote URLs (a store's, a plugin's): their passwords never reach the terminal.
    click.echo(f"relayflow: {mask_text(' '.join(str(exc).split()))}", err=True)
    sys.exit(EXIT_INVALID)


def _config(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        _refuse(exc)


def _setup(path: str | None) -> tuple[Config, PluginManager, list[Integration]]:
    """The configuration, the plugins it allows, and their integrations, all checked."""
    config = _config(path)
    plugins = PluginManager.from_config(config)
    try:
        plugins.check_config(config)
        plugins.configure(config)
        integrations = plugins.integrations(config)
    except ConfigError as exc:
        _refuse(exc)
    return config, plugins, integrations


def _input(text: str | None, file: str | None) -> dict[str, Any]:
    if text is not None and file is not None:
        raise click.UsageError("give --input or --input-file, not both")
    where = "--input"
    if file is not None:
        where = file
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            click.echo(f"relayflow: cannot read the input file {file}: {exc.strerror}", err=True)
            sys.exit(EXIT_INVALID)
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        click.echo(f"relayflow: {where} is not valid JSON: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    if not isinstance(data, dict):
        click.echo(
            f"relayflow: {where} must be a JSON object, not a {type(data).__name__}", err=True
        )
        sys.exit(EXIT_INVALID)
    return data


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("--input", "input_text", metavar="JSON", help="The execution's input object.")
@click.option("--input-file", type=click.Path(dir_okay=False), help="Read the input from a file.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="relayflow.toml to use (default: $RELAYFLOW_CONFIG, then ./relayflow.toml).",
)
@click.option("--name", help="The execution's name (default: a generated one).")
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="QUEUE=module:function",
    help="Serve QUEUE with this handler in-process while the flow runs (repeatable).",
)
def run(
    flow: str,
    input_text: str | None,
    input_file: str | None,
    config_path: str | None,
    name: str | None,
    workers: tuple[str, ...],
) -> None:
    """Run one execution of FLOW in-process and wait for its end.

    \b
    relayflow run flow.yaml --input '{"id": 7}'
    relayflow run seed.yaml --worker fnf-demo=jobs:handle --config relayflow.toml

    \b
    Exit 0: the execution succeeded; its output is printed as one JSON object.
    Exit 1: it failed, timed out or was stopped; {"status", "error", "cause"} is printed.
    Exit 2: the flow, the input or the configuration is invalid; errors go to stderr.

    With a configuration file the execution is kept in its [engine] store; without one it
    runs in memory. Task steps use the integrations that are installed.
    """
    from relayflow.runner import flow_name_for, run_flow

    flow_obj, problems = _load(flow)
    if flow_obj is None:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    data = _input(input_text, input_file)
    config, plugins, integrations = _setup(config_path)
    try:
        result = run_flow(
            Path(flow).read_text(encoding="utf-8"),
            flow_name_for(Path(flow)),
            data,
            name=name,
            config=config,
            integrations=integrations,
            plugins=plugins,
            workers=[_worker_spec(spec) for spec in workers],
        )
    except (EngineError, StoreError) as exc:
        click.echo(f"relayflow: {mask_text(str(exc))}", err=True)
        _exit(EXIT_INVALID)
    click.echo(result.json())
    _exit(result.code)


def _worker_spec(spec: str) -> tuple[str, str]:
    queue, _, handler = spec.partition("=")
    if not queue or ":" not in handler:
        click.echo(f"relayflow: --worker {spec!r} must look like QUEUE=module:function", err=True)
        sys.exit(EXIT_INVALID)
    return queue, handler


def _exit(code: int) -> None:
    # Task code may still run in threads the engine does not own; do not wait for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="relayflow.toml to use (default: $RELAYFLOW_CONFIG, then ./relayflow.toml).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def server(config_path: str | None, log_level: str) -> None:
    """Run the engine and its HTTP API until SIGTERM or SIGINT.

    The API speaks Serverless Workflow's actions (version 2019-03-15) on [server] host and
    port (default 127.0.0.1:8765), signed with [[server.access_keys]]; without access keys it
    only listens on loopback. Executions resume where they were: after a crash, pending work
    is dispatched again, late timers fire, and waiting tasks keep waiting. The store is
    [engine] store in relayflow.toml (default sqlite:///relayflow.db).
    """
    from relayflow.server import run_server

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    config, plugins, integrations = _setup(config_path)
    try:
        run_server(config, integrations=integrations, plugins=plugins)
    except (StoreError, ConfigError) as exc:
        _refuse(exc)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="relayflow.toml whose [plugins] table applies.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List installed plugins: version, hooks, integrations, and load failures.

    A plugin that failed to load is listed with its error and skipped; everything else works.
    Exit 0 even then: the listing is the point.
    """
    config = _config(config_path)
    manager = PluginManager.from_config(config)
    manager.integration_specs()
    manager.config_models()
    infos = sorted(manager.infos.values(), key=lambda i: (i.source, i.name))
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins installed")
        return
    rows = [("NAME", "SOURCE", "VERSION", "INTEGRATIONS", "HOOKS", "STATUS")]
    for info in infos:
        hooks = ", ".join(h.removeprefix("relayflow_") for h in info.hooks) or "-"
        status = f"failed: {info.error}" if info.error else "ok"
        rows.append(
            (
                info.name,
                info.source,
                info.version or "-",
                ", ".join(info.integrations) or "-",
                hooks,
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
        )


@main.group("config")
def config_group() -> None:
    """Inspect the configuration (relayflow.toml and RELAYFLOW_* variables)."""


@config_group.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="relayflow.toml to read (default: $RELAYFLOW_CONFIG, then ./relayflow.toml).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def config_show(config_path: str | None, as_json: bool) -> None:
    """Print the effective configuration: file, defaults and environment, secrets hidden."""
    config, manager, _ = _setup(config_path)
    doc: dict[str, Any] = {
        "engine": config.engine.model_dump(),
        "plugins": config.plugins.model_dump(),
        "server": config.server.model_dump(),
        "client": config.client.model_dump(),
    }
    specs = manager.integration_specs()
    integrations: dict[str, Any] = {}
    for name, raw in config.integrations.items():
        spec = specs.get(name)
        model = spec.config_model if spec else None
        integrations[name] = model.model_validate(raw).model_dump() if model else raw
    if integrations:
        doc["integrations"] = integrations
    for table in config.sections:
        settings = manager.settings(config, table)
        doc[table] = settings.model_dump() if settings is not None else config.sections[table]
    doc = redacted(doc)
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        click.echo(f"# effective configuration from {config.source}")
        click.echo(to_toml(doc), nl=False)


register_remote_commands(main)
