"""`relayflow executions redrive`: one execution, or every one a filter matches."""

from __future__ import annotations

import click

from relayflow.cli._common import Invalid, echo_json
from relayflow.cli._remote import client_config_option, connect, execution_doc
from relayflow.cli.executions_bulk import (
    BulkRun,
    filter_options,
    filter_params,
    refuse_name_with_filters,
)

__all__ = ["add_commands"]

#: The statuses an execution can be redriven from.
REDRIVABLE = ("Failed", "TimedOut", "Stopped")


@click.command("redrive")
@click.argument("flow")
@click.argument("name", required=False)
@click.option(
    "--definition",
    type=click.Choice(["original", "current"]),
    default="original",
    show_default=True,
    help="Go on with the definition the execution ran, or with the flow's current one.",
)
@click.option(
    "--status",
    type=click.Choice(REDRIVABLE, case_sensitive=False),
    help="Without NAME: the status to redrive (required then).",
)
@filter_options
@click.option("--yes", "-y", is_flag=True, help="Without NAME: act without asking first.")
@click.option("--dry-run", is_flag=True, help="Without NAME: list what matches, redrive nothing.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the execution as JSON; without NAME, what was done to each.",
)
@client_config_option
def executions_redrive(
    flow: str,
    name: str | None,
    definition: str,
    status: str | None,
    name_prefix: str | None,
    started_after: str | None,
    started_before: str | None,
    yes: bool,
    dry_run: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Make the execution NAME of FLOW, or each a filter matches, go on from where it failed.

    \b
      relayflow executions redrive orders order-7
      relayflow executions redrive orders order-7 --definition current
      relayflow executions redrive orders --status Failed --started-after 2h --dry-run
      relayflow executions redrive orders --status TimedOut --name-prefix nightly- --yes

    \b
    A Failed, TimedOut or Stopped execution goes on: the steps that succeeded
    are not run again, the step that failed starts over. With --definition
    current it moves to the flow's current definition, when every step it
    was at is still there.

    \b
    Without NAME, --status chooses what to redrive (Failed, TimedOut or
    Stopped), and the other filters narrow it. The command says how many
    match and asks before acting unless --yes (-y); without a terminal to
    ask on, --yes is required (exit 2 otherwise). --dry-run lists the matches
    and redrives nothing. On a terminal a progress bar shows on stderr. One
    that cannot be redriven is reported at the end, the others are redriven
    all the same, and the exit status is 1. Ctrl-C stops after the page
    under way (exit 130): running the same command again goes on, since what
    was redriven no longer matches (unless it failed again at once).

    \b
    TIME is an RFC 3339 time (2026-12-01T08:00:00Z; without an offset it is
    UTC; a date alone is its midnight UTC) or a time ago: 90s, 30m, 2h, 7d, 1h30m.
    """
    current = True if definition == "current" else None
    if name is not None:
        refuse_name_with_filters(
            name,
            status=status,
            name_prefix=name_prefix,
            started_after=started_after,
            started_before=started_before,
            dry_run=dry_run,
        )
        params = {"FlowName": flow, "ExecutionName": name, "UseCurrentDefinition": current}
        with connect(config_path) as client:
            answer = client.request("RedriveExecution", params)
        if as_json:
            from relayflow.client import Execution

            doc = execution_doc(Execution.from_api(answer))
            echo_json({**doc, "RedriveCount": answer.get("RedriveCount", 0)})
            return
        count = answer.get("RedriveCount")
        click.echo(f"{answer.get('Name', name)}: {answer.get('Status', '?')} (redrive {count})")
        return
    if status is None:
        raise Invalid(
            "InvalidArgument",
            "give the execution NAME, or --status Failed, TimedOut or Stopped to redrive every "
            "execution with that status (narrowed by the other filters)",
        )
    params = {
        **filter_params(status, name_prefix, started_after, started_before),
        "UseCurrentDefinition": current,
    }
    run = BulkRun("RedriveExecutions", flow, params, "redrive", "redriven")
    with connect(config_path) as client:
        run.run(client, yes=yes, dry_run=dry_run, as_json=as_json)


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
    group.add_command(executions_redrive)
