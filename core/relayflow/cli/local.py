"""`relayflow validate`, `outline`, `schema`, `plugins` and `config show`: work on files here.

None of these talks to a server. The FDL modules, the configuration and the plugin manager are
imported inside the commands, so that `relayflow --help` does not pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from relayflow.cli._common import (
    EXIT_INVALID,
    Invalid,
    config_option,
    json_option,
    load_config_or_fail,
)

if TYPE_CHECKING:
    from relayflow.config import Config
    from relayflow.engine.integration import Integration
    from relayflow.fdl import DefinitionLimits, Flow, Problem
    from relayflow.plugins import PluginManager

__all__ = ["check_file", "register", "setup"]


def check_file(
    path: str, limits: DefinitionLimits | None = None
) -> tuple[Flow | None, list[Problem]]:
    """The flow in ``path`` and its problems (no flow when there are any)."""
    from relayflow.fdl import DEFAULT_LIMITS, DefinitionError, check_flow
    from relayflow.fdl.loader import read_text

    limits = limits or DEFAULT_LIMITS
    try:
        text = read_text(path, limits=limits)
    except DefinitionError as exc:
        return None, exc.problems
    return check_flow(text, path, limits=limits)


def fail_with_problems(problems: Sequence[Problem]) -> NoReturn:
    """Print a definition's problems, one a line as FILE:LINE: PATH: MESSAGE, and exit 2."""
    for problem in problems:
        click.echo(str(problem), err=True)
    raise click.exceptions.Exit(EXIT_INVALID)


def setup(path: str | None) -> tuple[Config, PluginManager, list[Integration]]:
    """The configuration, the plugins it allows, and their integrations, all checked."""
    from relayflow.config import ConfigError
    from relayflow.plugins import PluginManager

    config = load_config_or_fail(path)
    plugins = PluginManager.from_config(config)
    try:
        plugins.check_config(config)
        plugins.configure(config)
        integrations = plugins.integrations(config)
    except ConfigError as exc:
        raise Invalid("InvalidConfig", str(exc), mask=True) from None
    return config, plugins, integrations


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@click.option(
    "--strict",
    is_flag=True,
    help="Also require an installed integration for every task step and its pattern.",
)
@config_option(
    help="relayflow.toml whose definition limits ([engine]) apply, and whose plugins and "
    "integrations --strict uses."
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
    from relayflow.fdl import DEFAULT_LIMITS
    from relayflow.fdl.loader import read_text

    integrations = setup(config_path)[2] if strict else []
    limits = (
        load_config_or_fail(config_path).engine.definition_limits()
        if config_path
        else DEFAULT_LIMITS
    )
    report = []
    failed = 0
    for path in files:
        flow, problems = check_file(path, limits)
        if strict and flow is not None:
            from relayflow.engine.coverage import integration_problems
            from relayflow.engine.engine import served

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
        raise click.exceptions.Exit(EXIT_INVALID)


@click.command()
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
    from relayflow.fdl import flow_json_schema

    text = json.dumps(flow_json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def outline(file: str) -> None:
    """Show a flow's steps as a tree: types, names, targets, branches and gotos."""
    from relayflow.fdl.outline import outline as render_outline

    flow, problems = check_file(file)
    if flow is None:
        fail_with_problems(problems)
    click.echo(render_outline(flow, file))


@click.command()
@config_option(help="relayflow.toml whose [plugins] table applies.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List installed plugins: version, hooks, integrations, and load failures.

    A plugin that failed to load is listed with its error and skipped; everything else works.
    Exit 0 even then: the listing is the point.
    """
    from relayflow.plugins import PluginManager

    manager = PluginManager.from_config(load_config_or_fail(config_path))
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


@click.group("config")
def config_group() -> None:
    """Inspect the configuration (relayflow.toml and RELAYFLOW_* variables)."""


@config_group.command("show")
@config_option(help="relayflow.toml to read (default: $RELAYFLOW_CONFIG, then ./relayflow.toml).")
@json_option
def config_show(config_path: str | None, as_json: bool) -> None:
    """Print the effective configuration: file, defaults and environment, secrets hidden.

    The text is TOML; --json prints the same document as JSON. Settings that cannot work (an
    FC handler module that does not import, a transport kombu does not know) are then named on
    stderr, one line each, and the exit code is 2.
    """
    from relayflow.config import redacted, to_toml
    from relayflow.engine.coverage import settings_problems

    config, manager, built = setup(config_path)
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
    problems = settings_problems(built)
    for problem in problems:
        Invalid("InvalidConfig", problem, mask=True).show()
    if problems:
        raise click.exceptions.Exit(EXIT_INVALID)


def register(cli: click.Group) -> None:
    """Add `validate`, `schema`, `outline`, `plugins` and `config` to ``cli``."""
    for command in (validate, schema, outline, plugins, config_group):
        cli.add_command(command)
