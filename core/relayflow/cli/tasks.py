"""`relayflow tasks`: report the result of a task that waits for a callback.

A task is named by its token, or, when its step declares `correlationKey`, by its flow and key
(`--flow F --key K`); exactly one of the two.
"""

from __future__ import annotations

from typing import Any

import click

from relayflow.cli._common import CONTEXT, JSON_OBJECT, Invalid, echo_json
from relayflow.cli._remote import client_config_option, connect

__all__ = ["register", "tasks"]


@click.group(context_settings=CONTEXT)
def tasks() -> None:
    """Report the result of a task that waits for a callback.

    Name the task by its task token, or, when its step declares correlationKey, by its flow
    and key:

    \b
      relayflow tasks succeed "$TOKEN" --output '{"booked": true}'
      relayflow tasks fail "$TOKEN" --error Booking.SoldOut --cause "no seats left"
      relayflow tasks succeed --flow orders --key order-7 --output '{"paid": true}'

    The first report on a task wins; later ones are refused (TaskAlreadyCompleted by token,
    CorrelationKeyNotExists by key).
    """


def _target_options(command: Any) -> Any:
    """--flow and --key, the other way to name a task."""
    command = click.option(
        "--key",
        "key",
        default=None,
        metavar="KEY",
        help="The task's correlation key (its step's correlationKey); with --flow, not TOKEN.",
    )(command)
    return click.option(
        "--flow",
        "flow",
        default=None,
        metavar="FLOW",
        help="The flow whose task waits on --key.",
    )(command)


def _target(token: str | None, flow: str | None, key: str | None) -> dict[str, Any]:
    """The client's arguments that name the task; exit 2 unless exactly one form is given."""
    if token and (flow or key):
        raise Invalid("InvalidArgument", "give TOKEN, or --flow and --key; not both")
    if token:
        return {"token": token}
    if not flow or not key:
        raise Invalid("InvalidArgument", "name the task: give TOKEN, or --flow FLOW and --key KEY")
    return {"flow_name": flow, "correlation_key": key}


@tasks.command("succeed")
@click.argument("token", required=False)
@_target_options
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
    token: str | None,
    flow: str | None,
    key: str | None,
    output: dict[str, Any],
    as_json: bool,
    config_path: str | None,
) -> None:
    """Complete a waiting task with its output.

    Name the task by the TOKEN it handed out, or by --flow and --key when its step declares
    correlationKey.

    \b
      relayflow tasks succeed "$TOKEN" --output '{"booked": true, "seat": "12A"}'
      relayflow tasks succeed --flow orders --key order-7 --output '{"paid": true}'

    Prints the id of the TaskSucceeded event the report became.
    """
    target = _target(token, flow, key)
    with connect(config_path) as client:
        event_id = client.report_task_succeeded(output=output, **target)
    if as_json:
        echo_json({"EventId": event_id})
        return
    click.echo(f"reported TaskSucceeded (event {event_id})")


@tasks.command("fail")
@click.argument("token", required=False)
@_target_options
@click.option("--error", required=True, metavar="NAME", help="The error name; catch matches it.")
@click.option("--cause", default="", metavar="TEXT", help="What went wrong, for a person.")
@click.option("--json", "as_json", is_flag=True, help='Print {"EventId": N} as JSON.')
@client_config_option
def tasks_fail(
    token: str | None,
    flow: str | None,
    key: str | None,
    error: str,
    cause: str,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Fail a waiting task; its step's retry and catch apply.

    Name the task by the TOKEN it handed out, or by --flow and --key when its step declares
    correlationKey.

    \b
      relayflow tasks fail "$TOKEN" --error Booking.SoldOut --cause "no seats left on 2024-06-01"
      relayflow tasks fail --flow orders --key order-7 --error Payment.Declined

    Prints the id of the TaskFailed event the report became.
    """
    target = _target(token, flow, key)
    with connect(config_path) as client:
        event_id = client.report_task_failed(error=error, cause=cause, **target)
    if as_json:
        echo_json({"EventId": event_id})
        return
    click.echo(f"reported TaskFailed (event {event_id})")


def register(cli: click.Group) -> None:
    """Add `tasks` to ``cli``."""
    cli.add_command(tasks)
