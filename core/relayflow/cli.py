"""The `relayflow` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from relayflow import __version__
from relayflow.fdl import DefinitionError, Flow, Problem, check_flow, flow_json_schema
from relayflow.fdl.loader import read_text
from relayflow.fdl.outline import outline as render_outline

__all__ = ["main"]

EXIT_INVALID = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="relayflow")
def main() -> None:
    """Run flows written in FDL durably, on your own machines.

    \b
    Start here:
      relayflow validate flows/*.yaml     check definitions, with line-numbered errors
      relayflow outline flows/main.yaml   see a flow's steps as a tree
      relayflow schema > fdl.schema.json  JSON Schema for editors
    """


def _load(path: str) -> tuple[Flow | None, list[Problem]]:
    try:
        text = read_text(path)
    except DefinitionError as exc:
        return None, exc.problems
    return check_flow(text, path)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check FDL definitions (YAML or JSON) and report every problem.

    Exits 0 when every file is valid and 2 otherwise. Problems go to stderr, one a line, as
    FILE:LINE: PATH: MESSAGE, for example:

    \b
      flow.yaml:12: steps[2].choices[0].goto: no sibling step named 'nowhere'; siblings are: a, b
    """
    report = []
    failed = 0
    for path in files:
        flow, problems = _load(path)
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
