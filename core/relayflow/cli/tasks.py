"""`relayflow tasks`: report the result of a task that waits for a callback, by its token."""

from __future__ import annotations

from typing import Any

import click

from relayflow.cli._common import CONTEXT, JSON_OBJECT, echo_json
from relayflow.cli._remote import client_config_option, connect

__all__ = ["register", "tasks"]


@click.group(context_settings=CONTEXT)
def tasks() -> None:
    """Report the result of a task that waits for a callback, by its task token.

    \b
      relayflow tasks succeed "$TOKEN" --output '{"booked": true}'
      relayflow tasks fail "$TOKEN" --error Booking.SoldOut --cause "no seats left"

    The first report on a token wins; later ones are refused (TaskAlreadyCompleted).
    """


@tasks.command("succeed")
@click.argument("token")
@click.option(
    "--output",
    "output",
    required=True,
    metavar="JSON",
    type=JSON_OBJECT,
    help="The task's output object; it becomes the step's $local.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"EventId": N} as JSON.')
@client_config_option
def tasks_succeed(
    token: str, output: dict[str, Any], as_json: bool, config_path: str | None
) -> None:
    """Complete the task that handed out TOKEN, with an output object.

    \b
      relayflow tasks succeed "$TOKEN" --output '{"booked": true, "seat": "12A"}'

    Prints the id of the TaskSucceeded event the report became.
    """
    with connect(config_path) as client:
        event_id = client.report_task_succeeded(token, output)
    if as_json:
        echo_json({"EventId": event_id})
        return
    click.echo(f"reported TaskSucceeded (event {event_id})")


@tasks.command("fail")
@click.argument("token")
@click.option("--error", required=True, metavar="NAME", help="The error name; catch matches it.")
@click.option("--cause", default="", metavar="TEXT", help="What went wrong, for a person.")
@click.option("--json", "as_json", is_flag=True, help='Print {"EventId": N} as JSON.')
@client_config_option
def tasks_fail(token: str, error: str, cause: str, as_json: bool, config_path: str | None) -> None:
    """Fail the task that handed out TOKEN; the step's retry and catch apply.

    \b
      relayflow tasks fail "$TOKEN" --error Booking.SoldOut --cause "no seats left on 2024-06-01"

    Prints the id of the TaskFailed event the report became.
    """
    with connect(config_path) as client:
        event_id = client.report_task_failed(token, error, cause)
    if as_json:
        echo_json({"EventId": event_id})
        return
    click.echo(f"reported TaskFailed (event {event_id})")


def register(cli: click.Group) -> None:
    """Add `tasks` to ``cli``."""
    cli.add_command(tasks)
