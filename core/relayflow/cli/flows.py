"""`relayflow flows`: create, change, show, list and delete flows on a relayflow server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import CONTEXT, Invalid, Refused, echo_json, read_file, table
from relayflow.cli._remote import client_config_option, connect
from relayflow.cli.aliases import pages, send

if TYPE_CHECKING:
    from relayflow.client import Flow

__all__ = ["flows", "register"]

_JSON_HELP = "Print the flow as the API has it (DescribeFlow's fields), as JSON."


def _flow_doc(flow: Flow) -> dict[str, Any]:
    return {key: value for key, value in flow.raw.items() if key != "RequestId"}


@contextmanager
def _definition_checked(path: str, definition: str) -> Iterator[None]:
    """Turn the server's InvalidDefinition into `Invalid` naming the file, as validate does.

    The server answers with one problem, `PATH: MESSAGE`; checking the text here (only after a
    refusal, so that a good definition does not pay for the FDL models) finds its line.
    """
    try:
        yield
    except Refused as exc:
        if exc.code != "InvalidDefinition":
            raise
        where = "<stdin>" if path == "-" else path
        raise Invalid("InvalidDefinition", _located(where, definition, exc.message)) from None


def _located(where: str, definition: str, message: str) -> str:
    """``where:LINE: message`` when a local check finds the server's problem, else ``where: ``."""
    try:
        from relayflow.fdl import check_flow

        problems = check_flow(definition, where)[1]
    except Exception:  # the local check is a courtesy: never let it hide the server's answer
        problems = []
    for problem in problems:
        text = str(problem)
        if text.endswith(f": {message}") and text.startswith(f"{where}:"):
            return text
    return f"{where}: {message}"


@click.group(context_settings=CONTEXT)
def flows() -> None:
    """Create, change, show, list and delete flows on a relayflow server.

    \b
      relayflow flows create orders --definition flows/orders.yaml
      relayflow flows list
      relayflow flows describe orders
      relayflow flows publish orders --description "first release"
      relayflow flows versions orders

    The server and the access key come from [client] in relayflow.toml.
    """


@flows.command("create")
@click.argument("name")
@click.option(
    "--definition",
    "definition_path",
    required=True,
    metavar="FILE",
    help="The FDL definition (YAML or JSON); - reads stdin.",
)
@click.option("--description", default="", help="Free text shown with the flow.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def flows_create(
    name: str, definition_path: str, description: str, as_json: bool, config_path: str | None
) -> None:
    """Create the flow NAME from an FDL definition.

    \b
      relayflow flows create orders --definition flows/orders.yaml --description "order intake"

    The server checks the definition; a problem comes back as InvalidDefinition, named with
    the file (and its line, as validate gives it), exit 2.
    """
    definition = read_file(definition_path, "the definition")
    with _definition_checked(definition_path, definition), connect(config_path) as client:
        flow = client.create_flow(name, definition, description)
    if as_json:
        echo_json(_flow_doc(flow))
        return
    click.echo(f"created flow {flow.name} (id {flow.id})")


@flows.command("update")
@click.argument("name")
@click.option(
    "--definition",
    "definition_path",
    required=True,
    metavar="FILE",
    help="The new FDL definition (YAML or JSON); - reads stdin.",
)
@click.option("--description", default=None, help="A new description (default: unchanged).")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def flows_update(
    name: str,
    definition_path: str,
    description: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Replace the definition of the flow NAME.

    \b
      relayflow flows update orders --definition flows/orders.yaml

    Executions already running keep the definition they started with. A definition the
    server refuses is InvalidDefinition, named with the file, exit 2.
    """
    definition = read_file(definition_path, "the definition")
    with _definition_checked(definition_path, definition), connect(config_path) as client:
        flow = client.update_flow(name, definition, description)
    if as_json:
        echo_json(_flow_doc(flow))
        return
    click.echo(f"updated flow {flow.name}")


@flows.command("describe")
@click.argument("name")
@click.option(
    "--version",
    "flow_version",
    metavar="N",
    help="Show the published version N as it was published (default: the flow as it is).",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def flows_describe(
    name: str, flow_version: str | None, as_json: bool, config_path: str | None
) -> None:
    """Show the flow NAME: its fields, then its definition.

    \b
      relayflow flows describe orders
      relayflow flows describe orders --version 2
      relayflow flows describe orders --json | jq -r .Definition
    """
    with connect(config_path) as client:
        flow = client.describe_flow(name, flow_version=flow_version or None)
    if as_json:
        echo_json(_flow_doc(flow))
        return
    raw = flow.raw
    for label, key in (
        ("Name", "Name"),
        ("Id", "Id"),
        ("Type", "Type"),
        ("Description", "Description"),
        ("RoleArn", "RoleArn"),
        ("Created", "CreatedTime"),
        ("Modified", "LastModifiedTime"),
    ):
        click.echo(f"{label + ':':<13}{raw.get(key) or '-'}")
    if flow_version:
        click.echo(f"{'Version:':<13}{flow_version} (as published)")
    click.echo("")
    click.echo(flow.definition.rstrip("\n"))


@flows.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print {"Flows": [...]} as JSON.')
@client_config_option
def flows_list(as_json: bool, config_path: str | None) -> None:
    """List every flow: name, type, last change and description.

    \b
      relayflow flows list
      relayflow flows list --json | jq -r '.Flows[].Name'
    """
    with connect(config_path) as client:
        found = list(client.iter_flows())
    if as_json:
        echo_json({"Flows": [_flow_doc(f) for f in found]})
        return
    if not found:
        click.echo("no flows")
        return
    table(
        ("NAME", "TYPE", "MODIFIED", "DESCRIPTION"),
        [
            (f.name, f.type, str(f.raw.get("LastModifiedTime") or "-"), f.description or "-")
            for f in found
        ],
    )


def _interactive() -> bool:
    """Whether a person can answer a question on stdin."""
    return sys.stdin.isatty()


@flows.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking first.")
@click.option(
    "--force", is_flag=True, help="Stop the flow's running executions first, then delete it."
)
@client_config_option
def flows_delete(name: str, yes: bool, force: bool, config_path: str | None) -> None:
    """Delete the flow NAME with the history of all its executions; asks first.

    \b
      relayflow flows delete orders
      relayflow flows delete orders --yes
      relayflow flows delete orders --force --yes

    A flow with running executions is refused (FlowHasRunningExecutions, exit 1) unless
    --force, which stops them first (their running child executions too) and then deletes.
    The command asks for confirmation unless --yes (-y) is given; without a terminal to ask
    on (a script, a pipe), --yes is required and its absence is refused (exit 2), so that a
    script never hangs on a question.
    """
    if not yes:
        if not _interactive():
            raise Invalid(
                "ConfirmationRequired",
                f"deleting the flow {name} removes the history of all its executions: "
                "give --yes (-y) to delete without a terminal to confirm on",
            )
        stopping = ", stopping its running executions," if force else ""
        click.confirm(
            f"Delete the flow {name}{stopping} and the history of all its executions?",
            abort=True,
        )
    with connect(config_path) as client:
        client.delete_flow(name, force=force)
    click.echo(f"deleted flow {name}")


@flows.command("publish")
@click.argument("name")
@click.option("--description", default="", help="Free text shown with the version.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as the API has it.")
@client_config_option
def flows_publish(name: str, description: str, as_json: bool, config_path: str | None) -> None:
    """Publish the flow NAME as it is now as its next version, and print the version's number.

    \b
      relayflow flows publish orders --description "new pricing"
      relayflow executions start orders --qualifier 3

    A version keeps the definition, description, environment and role of the moment; later
    updates of the flow do not change it. Numbers start at 1 and are never given twice.
    """
    with connect(config_path) as client:
        made = send(client, "PublishFlowVersion", {"FlowName": name, "Description": description})
    if as_json:
        echo_json(made)
        return
    click.echo(f"published version {made.get('Version')} of {name}")


@flows.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"FlowVersions": [...]} as JSON.')
@client_config_option
def flows_versions(name: str, as_json: bool, config_path: str | None) -> None:
    """List the published versions of the flow NAME, oldest first.

    \b
      relayflow flows versions orders
      relayflow flows versions orders --json | jq -r '.FlowVersions[].Version'
    """
    with connect(config_path) as client:
        found = list(pages(client, "ListFlowVersions", {"FlowName": name}, "FlowVersions"))
    if as_json:
        echo_json({"FlowVersions": found})
        return
    if not found:
        click.echo(f"no published versions of {name}")
        return
    table(
        ("VERSION", "CREATED", "DESCRIPTION"),
        [
            (str(v.get("Version")), str(v.get("CreatedTime") or "-"), v.get("Description") or "-")
            for v in found
        ],
    )


@flows.command("delete-version")
@click.argument("name")
@click.argument("version")
@client_config_option
def flows_delete_version(name: str, version: str, config_path: str | None) -> None:
    """Delete the published version VERSION of the flow NAME.

    \b
      relayflow flows delete-version orders 2

    Executions that ran it keep it. A version an alias routes to is refused
    (FlowVersionInUse, naming the alias): change the alias first.
    """
    with connect(config_path) as client:
        send(client, "DeleteFlowVersion", {"FlowName": name, "FlowVersion": version})
    click.echo(f"deleted version {version} of {name}")


def register(cli: click.Group) -> None:
    """Add `flows` to ``cli``."""
    cli.add_command(flows)
