"""`relayflow schedules`: schedules of flows on a relayflow server.

The commands send the API's schedule actions through the client's generic `Client.request`, and
print what the server answers: a line or a table, or, with --json, the API's fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import CONTEXT, JSON_OBJECT, JsonObject, echo_json, one_of, table
from relayflow.cli._remote import client_config_option, connect

if TYPE_CHECKING:
    from relayflow.client import Client

__all__ = ["register", "schedules"]

_JSON_HELP = "Print the schedule as the API has it (DescribeSchedule's fields), as JSON."
_CRON_HELP = (
    "When it fires: six fields, seconds first, in UTC unless it starts with CRON_TZ=<zone>; "
    "'0 */5 * * * *' is every five minutes."
)
#: The page size `list` asks for: the API's largest, so that few calls fetch everything.
_PAGE = 1000


def _doc(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "RequestId"}


def _send(client: Client, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """One schedule action; its answer as a dict. Parameters that are None are not sent."""
    return client.request(action, params)


def _all(client: Client, flow: str) -> Iterator[dict[str, Any]]:
    token = ""
    while True:
        page = _send(
            client,
            "ListSchedules",
            {"FlowName": flow, "Limit": str(_PAGE), "NextToken": token or None},
        )
        yield from page.get("Schedules") or []
        token = str(page.get("NextToken") or "")
        if not token:
            return


def _payload(data: dict[str, Any] | None) -> str | None:
    return None if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@click.group(context_settings=CONTEXT)
def schedules() -> None:
    """Start flows on a timetable: create, change, show, list and delete schedules.

    \b
      relayflow schedules create orders nightly --cron '0 0 2 * * *' --payload '{"full": true}'
      relayflow schedules list orders
      relayflow schedules update orders nightly --disable
      relayflow schedules delete orders nightly

    At every tick the server starts one execution of the flow, named
    schedule-<NAME>-<tick as yyyymmddThhmmssZ>, with the payload as its input. The server and
    the access key come from [client] in relayflow.toml.
    """


_payload_options = [
    click.option(
        "--payload",
        "payload_data",
        type=JSON_OBJECT,
        metavar="JSON",
        help="The input of each execution, a JSON object (default: {}).",
    ),
    click.option(
        "--payload-file",
        "payload_file_data",
        type=JsonObject(from_file=True),
        metavar="FILE",
        help="Read the payload object from a file; - reads stdin.",
    ),
]


def _with_payload(func: Any) -> Any:
    for option in reversed(_payload_options):
        func = option(func)
    return func


@schedules.command("create")
@click.argument("flow")
@click.argument("name")
@click.option("--cron", "cron", required=True, metavar="EXPR", help=_CRON_HELP)
@_with_payload
@click.option("--description", default="", help="Free text shown with the schedule.")
@click.option("--disabled", is_flag=True, help="Create it switched off (enable it with update).")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def schedules_create(
    flow: str,
    name: str,
    cron: str,
    payload_data: dict[str, Any] | None,
    payload_file_data: dict[str, Any] | None,
    description: str,
    disabled: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Create the schedule NAME that starts FLOW at every tick of --cron.

    \b
      relayflow schedules create orders every-5-min --cron '0 */5 * * * *'
      relayflow schedules create orders nightly --cron 'CRON_TZ=Asia/Shanghai 0 0 2 * * *' \\
          --payload-file nightly.json --description "the nightly run"

    A five-field expression (no seconds) is refused with InvalidArgument, exit 1.
    """
    payload = one_of(("--payload", payload_data), ("--payload-file", payload_file_data))
    with connect(config_path) as client:
        answer = _send(
            client,
            "CreateSchedule",
            {
                "FlowName": flow,
                "ScheduleName": name,
                "CronExpression": cron,
                "Payload": _payload(payload),
                "Enable": not disabled,
                "Description": description,
            },
        )
    if as_json:
        echo_json(_doc(answer))
        return
    state = "enabled" if answer.get("Enable") else "disabled"
    click.echo(f"created schedule {answer.get('ScheduleName')} of {flow} ({state})")


@schedules.command("update")
@click.argument("flow")
@click.argument("name")
@click.option("--cron", "cron", default=None, metavar="EXPR", help=_CRON_HELP)
@_with_payload
@click.option("--description", default=None, help="A new description (default: unchanged).")
@click.option(
    "--enable/--disable", "enable", default=None, help="Switch it on or off (default: unchanged)."
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def schedules_update(
    flow: str,
    name: str,
    cron: str | None,
    payload_data: dict[str, Any] | None,
    payload_file_data: dict[str, Any] | None,
    description: str | None,
    enable: bool | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Change the schedule NAME of FLOW; what is not given stays as it is.

    \b
      relayflow schedules update orders nightly --cron '0 30 2 * * *'
      relayflow schedules update orders nightly --disable
      relayflow schedules update orders nightly --enable --payload '{"full": false}'

    A new --cron, or --enable on a disabled schedule, counts ticks from now.
    """
    payload = one_of(("--payload", payload_data), ("--payload-file", payload_file_data))
    with connect(config_path) as client:
        answer = _send(
            client,
            "UpdateSchedule",
            {
                "FlowName": flow,
                "ScheduleName": name,
                "CronExpression": cron,
                "Payload": _payload(payload),
                "Enable": enable,
                "Description": description,
            },
        )
    if as_json:
        echo_json(_doc(answer))
        return
    click.echo(f"updated schedule {answer.get('ScheduleName')} of {flow}")


@schedules.command("describe")
@click.argument("flow")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@client_config_option
def schedules_describe(flow: str, name: str, as_json: bool, config_path: str | None) -> None:
    """Show the schedule NAME of FLOW.

    \b
      relayflow schedules describe orders nightly
      relayflow schedules describe orders nightly --json | jq -r .CronExpression
    """
    with connect(config_path) as client:
        answer = _send(client, "DescribeSchedule", {"FlowName": flow, "ScheduleName": name})
    if as_json:
        echo_json(_doc(answer))
        return
    for label, key in (
        ("Name", "ScheduleName"),
        ("Id", "ScheduleId"),
        ("Cron", "CronExpression"),
        ("Enabled", "Enable"),
        ("Payload", "Payload"),
        ("Description", "Description"),
        ("Created", "CreatedTime"),
        ("Modified", "LastModifiedTime"),
    ):
        value = answer.get(key)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        click.echo(f"{label + ':':<13}{value or '-'}")


@schedules.command("list")
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help='Print {"Schedules": [...]} as JSON.')
@client_config_option
def schedules_list(flow: str, as_json: bool, config_path: str | None) -> None:
    """List every schedule of FLOW: name, expression, whether it is on, description.

    \b
      relayflow schedules list orders
      relayflow schedules list orders --json | jq -r '.Schedules[].ScheduleName'
    """
    with connect(config_path) as client:
        found = list(_all(client, flow))
    if as_json:
        echo_json({"Schedules": found})
        return
    if not found:
        click.echo(f"no schedules for {flow}")
        return
    table(
        ("NAME", "CRON", "ENABLED", "DESCRIPTION"),
        [
            (
                s.get("ScheduleName", ""),
                s.get("CronExpression", ""),
                "yes" if s.get("Enable") else "no",
                s.get("Description") or "-",
            )
            for s in found
        ],
    )


@schedules.command("delete")
@click.argument("flow")
@click.argument("name")
@client_config_option
def schedules_delete(flow: str, name: str, config_path: str | None) -> None:
    """Delete the schedule NAME of FLOW; the executions it started stay.

    \b
      relayflow schedules delete orders nightly
    """
    with connect(config_path) as client:
        _send(client, "DeleteSchedule", {"FlowName": flow, "ScheduleName": name})
    click.echo(f"deleted schedule {name} of {flow}")


def register(cli: click.Group) -> None:
    """Add the `schedules` commands to ``cli``."""
    cli.add_command(schedules)
