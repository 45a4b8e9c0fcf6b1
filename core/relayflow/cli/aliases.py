"""`relayflow aliases`: aliases of flows on a relayflow server, which route starts to versions.

The commands send the API's alias actions through the client's generic `Client.call` (`send`,
which the version commands of `relayflow flows` use too), and print what the server answers:
a line or a table, or, with --json, the API's fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import CONTEXT, Invalid, echo_json, table
from relayflow.cli._remote import client_config_option, connect

if TYPE_CHECKING:
    from relayflow.client import Client

__all__ = ["aliases", "pages", "register", "send"]

_JSON_HELP = "Print the alias as the API has it (DescribeFlowAlias's Alias), as JSON."
_ROUTE_HELP = (
    "VERSION=WEIGHT: a published version and the percentage of starts it gets, such as 2=30; "
    "give it once or twice, the weights adding up to 100 (VERSION alone is VERSION=100)."
)
#: The page size listings ask for: the API's largest, so that few calls fetch everything.
PAGE = 1000


def send(client: Client, action: str, params: dict[str, str | None]) -> dict[str, Any]:
    """One action through ``client``; its answer without the RequestId. None is not sent."""
    from relayflow.client._calls import Call

    sent = {key: value for key, value in params.items() if value is not None}
    answer: dict[str, Any] = client.call(Call(action, sent, lambda doc: doc))
    return {key: value for key, value in answer.items() if key != "RequestId"}


def pages(
    client: Client, action: str, params: dict[str, str | None], key: str
) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` of a listing, page after page."""
    token = ""
    while True:
        page = send(client, action, {**params, "Limit": str(PAGE), "NextToken": token or None})
        yield from page.get(key) or []
        token = str(page.get("NextToken") or "")
        if not token:
            return


def _routes(given: Sequence[str]) -> str | None:
    """``--route`` values as RoutingConfigurations' JSON text (None when none was given)."""
    if not given:
        return None
    routes = []
    for text in given:
        version, _, weight = text.partition("=")
        weight = weight or "100"
        if not (version.strip().isdigit() and weight.strip().isdigit()):
            raise Invalid(
                "InvalidArgument",
                f"--route {text!r} must be VERSION=WEIGHT with whole numbers, such as 2=30",
            )
        routes.append({"Version": version.strip(), "Weight": int(weight)})
    return json.dumps(routes, separators=(",", ":"))


def _routing(alias: dict[str, Any]) -> str:
    """`1=30 2=70`: an alias's routing on one line."""
    routes = alias.get("RoutingConfigurations") or []
    return " ".join(f"{r.get('Version')}={r.get('Weight')}" for r in routes) or "-"


@click.group(context_settings=CONTEXT)
def aliases() -> None:
    """Route a flow's executions to its published versions by weight.

    \b
      relayflow flows publish orders --description "new pricing"
      relayflow aliases create orders prod --route 1=90 --route 2=10
      relayflow executions start orders --qualifier prod
      relayflow aliases update orders prod --route 2
      relayflow aliases list orders

    An execution started with an alias runs one of its versions, drawn at random by weight
    (a percentage each; they add up to 100), and shows the version it runs. The server and
    the access key come from [client] in relayflow.toml.
    """


@aliases.command("create")
@click.argument("flow")
@click.argument("name")
@click.option("--route", "routes", multiple=True, required=True, metavar="V=W", help=_ROUTE_HELP)
@click.option("--description", default="", help="Free text shown with the alias.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def aliases_create(
    flow: str,
    name: str,
    routes: tuple[str, ...],
    description: str,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Create the alias NAME of FLOW, routing to one or two published versions.

    \b
      relayflow aliases create orders prod --route 3
      relayflow aliases create orders canary --route 3=80 --route 4=20
    """
    routing = _routes(routes)
    with connect(config_path) as client:
        made = send(
            client,
            "CreateFlowAlias",
            {
                "FlowName": flow,
                "Name": name,
                "RoutingConfigurations": routing,
                "Description": description,
            },
        )
    if as_json:
        echo_json(made)
        return
    click.echo(f"created alias {name} of {flow} ({_routing(made)})")


@aliases.command("describe")
@click.argument("flow")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def aliases_describe(flow: str, name: str, as_json: bool, config_path: str | None) -> None:
    """Show the alias NAME of FLOW: the versions it routes to and their weights.

    \b
      relayflow aliases describe orders prod
      relayflow aliases describe orders prod --json | jq '.RoutingConfigurations'
    """
    with connect(config_path) as client:
        alias = send(client, "DescribeFlowAlias", {"FlowName": flow, "Name": name})["Alias"]
    if as_json:
        echo_json(alias)
        return
    for label, value in (
        ("Name", alias.get("Name")),
        ("Flow", flow),
        ("Routes", _routing(alias)),
        ("Description", alias.get("Description")),
        ("Created", alias.get("CreatedTime")),
        ("Modified", alias.get("LastModifiedTime")),
    ):
        click.echo(f"{label + ':':<13}{value or '-'}")


@aliases.command("list")
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help='Print {"Aliases": [...]} as JSON.')
@client_config_option
def aliases_list(flow: str, as_json: bool, config_path: str | None) -> None:
    """List the aliases of FLOW: name, routes (VERSION=WEIGHT) and description.

    \b
      relayflow aliases list orders
      relayflow aliases list orders --json | jq -r '.Aliases[].Name'
    """
    with connect(config_path) as client:
        found = list(pages(client, "ListFlowAliases", {"FlowName": flow}, "Aliases"))
    if as_json:
        echo_json({"Aliases": found})
        return
    if not found:
        click.echo(f"no aliases for {flow}")
        return
    table(
        ("NAME", "ROUTES", "DESCRIPTION"),
        [(str(a.get("Name")), _routing(a), str(a.get("Description") or "-")) for a in found],
    )


@aliases.command("update")
@click.argument("flow")
@click.argument("name")
@click.option("--route", "routes", multiple=True, metavar="V=W", help=_ROUTE_HELP)
@click.option("--description", default=None, help="A new description (default: unchanged).")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def aliases_update(
    flow: str,
    name: str,
    routes: tuple[str, ...],
    description: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Change where the alias NAME of FLOW routes, or its description.

    \b
      relayflow aliases update orders prod --route 3=50 --route 4=50
      relayflow aliases update orders prod --route 4 --description "all on 4"

    Routes given replace the alias's routes; executions already started keep their version.
    """
    if not routes and description is None:
        raise Invalid("MissingParameter", "give --route or --description: nothing to change")
    with connect(config_path) as client:
        alias = send(
            client,
            "UpdateFlowAlias",
            {
                "FlowName": flow,
                "Name": name,
                "RoutingConfigurations": _routes(routes),
                "Description": description,
            },
        )["Alias"]
    if as_json:
        echo_json(alias)
        return
    click.echo(f"updated alias {name} of {flow} ({_routing(alias)})")


@aliases.command("delete")
@click.argument("flow")
@click.argument("name")
@client_config_option
def aliases_delete(flow: str, name: str, config_path: str | None) -> None:
    """Delete the alias NAME of FLOW; its versions and executions stay.

    \b
      relayflow aliases delete orders canary
    """
    with connect(config_path) as client:
        send(client, "DeleteFlowAlias", {"FlowName": flow, "Name": name})
    click.echo(f"deleted alias {name} of {flow}")


def register(cli: click.Group) -> None:
    """Add the `aliases` commands to ``cli``."""
    cli.add_command(aliases)
