"""`relayflow executions`: start, watch, list and stop executions on a relayflow server.

The bulk form of `stop` (a filter instead of a name) runs through `executions_bulk`; `redrive`
is in `executions_redrive`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import (
    CONTEXT,
    EXIT_REFUSED,
    JSON_OBJECT,
    JsonObject,
    echo_json,
    one_of,
    table,
)
from relayflow.cli._remote import (
    client_config_option,
    compact,
    connect,
    execution_doc,
    execution_json,
    short,
)
from relayflow.cli.executions_bulk import (
    BulkRun,
    filter_options,
    filter_params,
    refuse_name_with_filters,
)

if TYPE_CHECKING:
    from relayflow.client import Client, Execution, HistoryEvent

__all__ = ["executions", "register"]

STATUSES = ("Starting", "Running", "Succeeded", "Failed", "TimedOut", "Stopped")
# ListExecutions' largest page, and a bound on the pages a server may make the command read.
_LIST_PAGE = None  # the server's default page (the SDK allows 1-99)
_MAX_LIST_PAGES = 100_000
_QUALIFIER_HELP = (
    "Run a published version (its number) or what an alias routes to (its name) instead of "
    "the flow as it is now."
)


@click.group(context_settings=CONTEXT)
def executions() -> None:
    """Start, watch, list, stop and redrive executions on a relayflow server.

    \b
      relayflow executions start orders --input '{"id": 7}' --name order-7 --wait
      relayflow executions describe orders order-7 --json
      relayflow executions history orders order-7
      relayflow executions list orders --status Running --started-after 2h
      relayflow executions start orders --qualifier prod
      relayflow executions stop orders --name-prefix test- --yes
      relayflow executions redrive orders --status Failed --started-after 1d
    """


@executions.command("start")
@click.argument("flow")
@click.option(
    "--input",
    "input_data",
    type=JSON_OBJECT,
    metavar="JSON",
    help="The input object (default: {}).",
)
@click.option(
    "--input-file",
    "input_file_data",
    type=JsonObject(from_file=True),
    metavar="FILE",
    help="Read the input object from a file; - reads stdin.",
)
@click.option("--name", help="The execution's name (default: one the server makes up).")
@click.option("--qualifier", help=_QUALIFIER_HELP)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the end, print the execution as JSON, and exit 0 only if it succeeded.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the execution started as JSON.")
@client_config_option
def executions_start(
    flow: str,
    input_data: dict[str, Any] | None,
    input_file_data: dict[str, Any] | None,
    name: str | None,
    qualifier: str | None,
    wait: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Start an execution of FLOW and print its name.

    \b
      relayflow executions start orders --input '{"id": 7}'
      relayflow executions start orders --name order-7 --input-file order.json --wait
      relayflow executions start orders --qualifier prod

    With --qualifier, the execution runs a published version (its number) or one an alias
    routes to (its name), and the name printed is followed by the version it runs.

    \b
    With --wait, the command long-polls until the execution ends and prints it as
    DescribeExecution shows it (Name, FlowName, Status, Input, Output, StartedTime,
    StoppedTime, and Error and Cause when set). It exits 0 if the execution succeeded
    and 1 if it failed, timed out or was stopped. --json prints the execution as it started
    in the same form, without waiting.

    Starting the name of an execution that is still running returns that execution, as the
    API does; when its input differs from the one given, a warning on stderr says so.
    """
    data = one_of(("--input", input_data), ("--input-file", input_file_data))
    with connect(config_path) as client:
        started = client.start_execution(flow, data, name=name, qualifier=qualifier or None)
        if name is not None and started.input != (data or {}):
            # The API answers a running execution's name with that execution: keep that, but
            # do not let the caller believe their input was used.
            click.echo(
                f"relayflow: warning: execution {started.name} of {flow} was already running "
                f"(since {started.raw.get('StartedTime') or '?'}) with another input; this is "
                "that execution, and the input given was not used",
                err=True,
            )
        if not wait:
            if as_json:
                click.echo(execution_json(started))
            elif started.flow_version:
                click.echo(f"{started.name} (version {started.flow_version})")
            else:
                click.echo(started.name)
            return
        final = client.wait_for_execution(flow, started.name)
    click.echo(execution_json(final))
    sys.exit(0 if final.succeeded else EXIT_REFUSED)


@executions.command("describe")
@click.argument("flow")
@click.argument("name")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 60),
    default=0,
    metavar="SECONDS",
    help="Wait up to this many seconds (0-60) for the execution to end first.",
)
@click.option(
    "--waiting",
    is_flag=True,
    help="Also show what it waits on now: task attempts, waits and retry pauses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the execution as JSON.")
@client_config_option
def executions_describe(
    flow: str,
    name: str,
    wait_seconds: int,
    waiting: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Show the execution NAME of FLOW: status, times, input and output.

    \b
      relayflow executions describe orders order-7
      relayflow executions describe orders order-7 --waiting
      relayflow executions describe orders order-7 --wait 30 --json

    --json prints DescribeExecution's fields: Name, FlowName, Status, Input and Output
    (JSON text, as the API has them), StartedTime, StoppedTime, and Error and Cause when set;
    and relayflow's own when they say something: RedriveCount, ParentExecution,
    ChildExecutions, and Waiting with --waiting.
    """
    with connect(config_path) as client:
        execution = client.describe_execution(flow, name, wait_seconds, include_waiting=waiting)
    if as_json:
        click.echo(execution_json(execution))
        return
    raw = execution.raw
    rows = [
        ("Name", execution.name),
        ("Flow", execution.flow_name),
        ("Status", execution.status),
        ("Started", str(raw.get("StartedTime") or "-")),
        ("Stopped", str(raw.get("StoppedTime") or "-")),
    ]
    if execution.flow_version:  # started with a Qualifier: the published version it runs
        rows.insert(3, ("Version", execution.flow_version))
    if execution.error or execution.cause:
        rows += [("Error", execution.error or "-"), ("Cause", execution.cause or "-")]
    rows.append(("Input", compact(execution.input)))
    rows.append(("Output", "-" if execution.output is None else compact(execution.output)))
    if execution.redrive_count:
        rows.append(("Redrives", str(execution.redrive_count)))
    if execution.parent is not None:
        rows.append(("Parent", f"{execution.parent.flow_name}/{execution.parent.name}"))
    if execution.children:
        shown = len(execution.children)
        more = "+" if shown >= 100 else ""  # DescribeExecution names the first 100
        rows.append(("Children", f"{shown}{more} (relayflow executions tree {flow} {name})"))
    width = max(9, *(len(label) + 2 for label, _ in rows))
    for label, value in rows:
        click.echo(f"{label + ':':<{width}}{value}")
    if execution.waiting is not None:
        click.echo(f"{'Waiting:':<{width}}{'nothing' if not execution.waiting else ''}".rstrip())
        for work in execution.waiting:
            what = work.resource or work.kind
            since = work.since.isoformat(timespec="seconds") if work.since else "-"
            due = f", until {work.due.isoformat(timespec='seconds')}" if work.due else ""
            click.echo(f"  {work.step_name}: {work.kind} {what} since {since}{due}")


@executions.command("list")
@click.argument("flow")
@click.option(
    "--status",
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only executions with this status.",
)
@filter_options
@click.option(
    "--qualifier",
    help="Only executions of this published version, or of the versions this alias routes to.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"Executions": [...]} as JSON.')
@client_config_option
def executions_list(
    flow: str,
    status: str | None,
    name_prefix: str | None,
    started_after: str | None,
    started_before: str | None,
    qualifier: str | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """List the executions of FLOW: name, status, start and stop times.

    \b
      relayflow executions list orders
      relayflow executions list orders --status Failed --started-after 2h
      relayflow executions list orders --name-prefix order- --started-before 2026-12-01
      relayflow executions list orders --qualifier 3
      relayflow executions list orders --json | jq -r '.Executions[].Name'

    \b
    TIME is an RFC 3339 time (2026-12-01T08:00:00Z; without an offset it is
    UTC; a date alone is its midnight UTC) or a time ago: 90s, 30m, 2h, 7d, 1h30m.

    A VERSION column shows the published version each ran, when any listed ran one.
    """
    with connect(config_path) as client:
        found = _every_execution(
            client, flow, status, name_prefix, started_after, started_before, qualifier or None
        )
    if as_json:
        echo_json({"Executions": [execution_doc(e) for e in found]})
        return
    if not found:
        click.echo("no executions")
        return
    rows = [
        (
            e.name,
            e.status,
            str(e.raw.get("StartedTime") or "-"),
            str(e.raw.get("StoppedTime") or "-"),
        )
        for e in found
    ]
    if any(e.flow_version for e in found):
        table(
            ("NAME", "STATUS", "VERSION", "STARTED", "STOPPED"),
            [(r[0], r[1], e.flow_version or "-", *r[2:]) for r, e in zip(rows, found, strict=True)],
        )
        return
    table(("NAME", "STATUS", "STARTED", "STOPPED"), rows)


def _every_execution(
    client: Client,
    flow: str,
    status: str | None,
    name_prefix: str | None,
    started_after: str | None,
    started_before: str | None,
    qualifier: str | None,
) -> list[Execution]:
    """Every page of ListExecutions with these filters."""
    found: list[Execution] = []
    token: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        page = client.list_executions(
            flow,
            status,
            name_prefix,
            _LIST_PAGE,
            token,
            started_after=started_after,
            started_before=started_before,
            qualifier=qualifier,
        )
        found += page.items
        if page.last:
            break
        token = page.next_token
    return found


@executions.command("history")
@click.argument("flow")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"Events": [...]} as the API has it.')
@client_config_option
def executions_history(flow: str, name: str, as_json: bool, config_path: str | None) -> None:
    """Show every event of the execution NAME of FLOW, oldest first.

    \b
      relayflow executions history orders order-7
      relayflow executions history orders order-7 --json | jq '.Events[].Type'

    The table shows each event's id, time, type, step and the start of its detail; --json
    prints every page's Events (EventId, ScheduleEventId, StepName, Type, Time, EventDetail)
    as one {"Events": [...]}.
    """
    with connect(config_path) as client:
        events = list(client.iter_history(flow, name))
    if as_json:
        click.echo(json.dumps({"Events": [e.raw for e in events]}, indent=2, ensure_ascii=False))
        return
    table(("ID", "TIME", "TYPE", "STEP", "DETAIL"), [_event_row(e) for e in events])


def _event_row(event: HistoryEvent) -> tuple[str, str, str, str, str]:
    detail = short(compact(event.detail)) if event.detail else ""
    return (
        str(event.event_id),
        str(event.raw.get("Time") or "-"),
        event.type,
        event.step_name or "-",
        detail,
    )


@executions.command("stop")
@click.argument("flow")
@click.argument("name", required=False)
@click.option("--error", default="", help="An error name to stop with, such as Cancelled.")
@click.option("--cause", default="", help="Why, for whoever reads the execution later.")
@click.option(
    "--status",
    type=click.Choice(["Running"], case_sensitive=False),
    help="Without NAME: the status to stop (Running, the default and the only one that can).",
)
@filter_options
@click.option("--yes", "-y", is_flag=True, help="Without NAME: act without asking first.")
@click.option("--dry-run", is_flag=True, help="Without NAME: list what matches, and stop nothing.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the stopped execution as JSON; without NAME, what was done to each.",
)
@client_config_option
def executions_stop(
    flow: str,
    name: str | None,
    error: str,
    cause: str,
    status: str | None,
    name_prefix: str | None,
    started_after: str | None,
    started_before: str | None,
    yes: bool,
    dry_run: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Stop the running execution NAME of FLOW, or every running one a filter matches.

    \b
      relayflow executions stop orders order-7 --error Cancelled --cause "customer called"
      relayflow executions stop orders --name-prefix test- --started-before 1d --dry-run
      relayflow executions stop orders --started-after 2026-12-01T08:00:00Z --yes
      relayflow executions stop orders --yes --json | jq '.Failed'

    \b
    Without NAME, every Running execution of FLOW that the filters match is
    stopped (all of them when no filter is given). The command says how
    many match and asks before acting unless --yes (-y); without a terminal
    to ask on, --yes is required (exit 2 otherwise). --dry-run lists the
    matches and stops nothing. On a terminal a progress bar shows on stderr.
    An execution that ended meanwhile is skipped; one that cannot be stopped
    is reported at the end, the others are stopped all the same, and the
    exit status is 1. Ctrl-C stops after the page under way (exit 130):
    running the same command again goes on, since what was stopped no longer
    matches.

    \b
    TIME is an RFC 3339 time (2026-12-01T08:00:00Z; without an offset it is
    UTC; a date alone is its midnight UTC) or a time ago: 90s, 30m, 2h, 7d, 1h30m.
    """
    filters = filter_params(status or "Running", name_prefix, started_after, started_before)
    if name is not None:
        refuse_name_with_filters(
            name,
            name_prefix=name_prefix,
            started_after=started_after,
            started_before=started_before,
            status=status,
            dry_run=dry_run,
        )
        with connect(config_path) as client:
            execution = client.stop_execution(flow, name, error, cause)
        if as_json:
            click.echo(execution_json(execution))
            return
        click.echo(f"{execution.name}: {execution.status}")
        return
    params = {**filters, "Error": error or None, "Cause": cause or None}
    run = BulkRun("StopExecutions", flow, params, "stop", "stopped")
    with connect(config_path) as client:
        run.run(client, yes=yes, dry_run=dry_run, as_json=as_json)


def register(cli: click.Group) -> None:
    """Add `executions` to ``cli``, with the commands of the modules beside this one."""
    from relayflow.cli import (
        executions_purge,
        executions_redrive,
        executions_tree,
        executions_waiting,
    )

    for module in (executions_redrive, executions_waiting, executions_purge, executions_tree):
        module.add_commands(executions)
    cli.add_command(executions)
