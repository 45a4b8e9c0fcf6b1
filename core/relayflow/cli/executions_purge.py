"""`relayflow executions purge`: delete ended executions now, as retention would.

The command counts what matches (PurgeExecutions with DryRun), asks before deleting unless
`--yes`, then calls PurgeExecutions until nothing that matches is left, showing progress on a
terminal. Ctrl-C stops between two calls; running the command again goes on. Nothing here
imports the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from relayflow.cli._common import CommandError, Invalid, Refused, echo_json
from relayflow.cli._remote import client_config_option, connect
from relayflow.cli.executions_bulk import (
    EXIT_INTERRUPTED,
    TIME_HELP,
    When,
    interactive,
    on_terminal,
)

if TYPE_CHECKING:
    from relayflow.client import Client
    from relayflow.results import PurgeResult

__all__ = ["PAGE", "add_commands"]

#: Executions one PurgeExecutions call deletes (the action takes up to 10,000).
PAGE = 5000
#: A server that keeps answering More cannot hold the command forever.
_MAX_CALLS = 100_000


class _Interrupted(CommandError):
    exit_code = EXIT_INTERRUPTED


def _count(n: int) -> str:
    return f"{n:,} execution{'' if n == 1 else 's'}"


def _what(ended_before: str, flow: str | None) -> str:
    return f"that ended before {ended_before}" + (f" in flow {flow}" if flow else "")


def _call(
    client: Client, ended_before: str, flow_name: str | None, *, dry_run: bool, limit: int
) -> PurgeResult:
    return client.purge_executions(ended_before, flow_name=flow_name, dry_run=dry_run, limit=limit)


@click.command("purge")
@click.option(
    "--ended-before",
    "ended_before",
    required=True,
    type=When(),
    metavar="TIME",
    help=f"Delete executions that ended before this: {TIME_HELP}.",
)
@click.option("--flow", "flow_name", default=None, help="Only this flow's executions.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking first.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@client_config_option
def executions_purge(
    ended_before: str,
    flow_name: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Delete executions that ended before a time, with their history; asks first.

    \b
      relayflow executions purge --ended-before 30d --dry-run
      relayflow executions purge --ended-before 30d
      relayflow executions purge --ended-before 2026-11-01T00:00:00Z --flow orders --yes
      relayflow executions purge --ended-before 90d --yes --json

    Only ended executions go (Succeeded, Failed, TimedOut, Stopped); running ones are never
    touched. TIME is an RFC 3339 time (without an offset it is UTC) or a time ago: 30d is
    thirty days before now. The server deletes in small transactions, so its other work goes
    on meanwhile; `[engine] retention_days` makes it do the same by itself.

    The command asks for confirmation unless --yes (-y) is given; without a terminal to ask
    on (a script, a pipe), --yes is required and its absence is refused (exit 2). Progress is
    shown on a terminal. Ctrl-C stops between two calls (exit 130): run the command again to
    go on. Exit 1 when the server refuses (an unknown flow, say) or when some executions
    could not be deleted now (another server held them): run it again later.
    """
    what = _what(ended_before, flow_name)
    with connect(config_path) as client:
        counted = _call(client, ended_before, flow_name, dry_run=True, limit=1)
        total = counted.count + counted.remaining
        if dry_run or not total:
            outcome = {"EndedBefore": ended_before, "FlowName": flow_name, "DryRun": dry_run}
            if as_json:
                echo_json({**outcome, "Count": total, "Deleted": 0, "Remaining": total})
            elif dry_run:
                click.echo(f"{_count(total)} {what} would be deleted (dry run: none was)")
            else:
                click.echo(f"no execution {what}: nothing to delete")
            return
        if not yes:
            if not interactive():
                raise Invalid(
                    "ConfirmationRequired",
                    f"purging deletes {_count(total)} {what} with their history: give --yes "
                    "(-y) to delete without a terminal to confirm on",
                )
            click.confirm(f"Delete {_count(total)} {what}, with their history?", abort=True)
        deleted, remaining = _purge_all(client, ended_before, flow_name, total)
    if as_json:
        echo_json(
            {
                "EndedBefore": ended_before,
                "FlowName": flow_name,
                "DryRun": False,
                "Count": total,
                "Deleted": deleted,
                "Remaining": remaining,
            }
        )
    else:
        click.echo(f"deleted {_count(deleted)} {what}")
    if remaining:
        raise Refused(
            "ExecutionsInUse",
            f"{_count(remaining)} {what} could not be deleted now (another server holds "
            "them): run the command again later",
        )


def _purge_all(
    client: Client, ended_before: str, flow_name: str | None, total: int
) -> tuple[int, int]:
    """Call PurgeExecutions until nothing is left: (deleted, still there)."""
    shown = on_terminal()
    deleted = remaining = 0
    try:
        for _ in range(_MAX_CALLS):
            answer = _call(client, ended_before, flow_name, dry_run=False, limit=PAGE)
            count, remaining = answer.count, answer.remaining
            deleted += count
            if shown:
                done = min(deleted, total)
                click.echo(
                    f"\rdeleting executions: {done:,}/{total:,} ({100 * done // total} %)",
                    nl=False,
                    err=True,
                )
            if not answer.more or not count:  # done, or what is left is held
                break
    except KeyboardInterrupt:
        raise _Interrupted(
            "Interrupted",
            f"interrupted after deleting {_count(deleted)}: run the command again to go on",
        ) from None
    finally:
        if shown:
            click.echo(err=True)
    return deleted, remaining


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
    group.add_command(executions_purge)
