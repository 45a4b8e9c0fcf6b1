"""`relayflow executions waiting`: what running executions wait on, on what, since when.

It pages through ListWaitingWork on a relayflow server and prints one row per piece of open
work, or `{"Waiting": [...]}` with `--json`. Nothing here imports the engine.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import echo_json, table
from relayflow.cli._remote import client_config_option, connect, short

if TYPE_CHECKING:
    from relayflow.client import Client
    from relayflow.results import WaitingWork

__all__ = ["COLUMNS", "add_commands", "human_duration", "parse_duration"]

#: The table's columns.
COLUMNS = (
    "FLOW",
    "EXECUTION",
    "STEP",
    "KIND",
    "RESOURCE",
    "ATTEMPT",
    "WAITING",
    "TIMES OUT IN",
)

#: The longest --older-than: 366 days, longer than any execution may run (the API's limit).
MAX_OLDER_THAN = 366 * 24 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d{1,9})([smhd])")
_PAGE = 1000  # ListWaitingWork's largest Limit: fewest round trips
_MAX_PAGES = 100_000  # a server that keeps answering NextTokens cannot hold the command forever


def parse_duration(text: str) -> int:
    """Seconds from `90s`, `30m`, `2h`, `1d` or a combination such as `1h30m`.

    Raises:
        ValueError: the text is not such a duration, or is longer than 366 days.
    """
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        cleaned += "s"
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 2h, 1d or 1h30m")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds > MAX_OLDER_THAN:
        raise ValueError(f"{text!r} is longer than 366 days")
    return seconds


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """A click type for durations (`parse_duration`)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Seconds, or a usage error naming the option."""
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def human_duration(seconds: float) -> str:
    """A short reading of a length of time: `45s`, `12m`, `3h 5m`, `2d 4h`; `-` below zero."""
    if seconds < 0:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def _fetch(
    client: Client, flow: str | None, older_than: int | None, progress: bool
) -> list[WaitingWork]:
    """Every page of ListWaitingWork; with ``progress``, a count on stderr as pages come."""
    from relayflow.results import WaitingWork

    found: list[WaitingWork] = []
    token = ""
    for pages in range(1, _MAX_PAGES + 1):
        params: dict[str, Any] = {"FlowName": flow, "OlderThanSeconds": older_than}
        params |= {"Limit": _PAGE, "NextToken": token or None}
        answer = client.request("ListWaitingWork", params)
        found += [WaitingWork.from_api(doc) for doc in answer.get("Waiting") or []]
        token = str(answer.get("NextToken") or "")
        if progress and (token or pages > 1):
            click.echo(f"\rreading what waits: {len(found)} so far", nl=False, err=True)
        if not token:
            break
    if progress and pages > 1:
        click.echo(err=True)
    return found


def _row(work: WaitingWork, now: float) -> tuple[str, ...]:
    since = work.since.timestamp() if work.since is not None else None
    due = work.due.timestamp() if work.due is not None else None
    return (
        work.flow_name,
        work.execution_name,
        work.step_name,
        work.kind,
        short(work.resource, 40) if work.resource else "-",
        str(work.attempt) if work.attempt else "-",
        human_duration(now - since) if since is not None else "?",
        "never" if due is None else ("due" if due <= now else human_duration(due - now)),
    )


@click.command("waiting")
@click.argument("flow", required=False)
@click.option(
    "--older-than",
    type=Duration(),
    metavar="DURATION",
    help="Only work waiting at least this long: 90s, 30m, 2h, 1d, 1h30m (at most 366d).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"Waiting": [...]} with the API\'s fields, for scripts.',
)
@client_config_option
def executions_waiting(
    flow: str | None, older_than: int | None, as_json: bool, config_path: str | None
) -> None:
    """Show what running executions wait on, on what, and since when.

    \b
      relayflow executions waiting
      relayflow executions waiting orders
      relayflow executions waiting --older-than 2h
      relayflow executions waiting orders --older-than 1d --json | jq -r '.Waiting[].ExecutionName'

    One row per piece of open work of every running execution (of FLOW only, when given):
    a task attempt waiting for its result or callback (a child flow is a task whose RESOURCE
    is acs:fnf:::flow/NAME), a wait step, or the pause before a retry. WAITING is how long it
    has waited; TIMES OUT IN is how long until its timeout (a task's) or its timer (a wait's
    or retry's) ends it: "due" when that time has come, "never" for a task without a timeout.

    A waitForCallback task whose step sets no timeoutSeconds times out after
    [engine] default_callback_timeout_seconds (7 days unless configured), so that a lost
    token ends in FnF.TaskTimeout.

    --json prints every item as ListWaitingWork has it (FlowName, ExecutionName, StepName,
    Kind, Resource, Pattern, Attempt, WaitingSince, TimeoutSeconds, Due). The command reads
    every page; on a terminal it shows how many it has read so far.
    """
    progress = not as_json and sys.stderr.isatty()
    with connect(config_path) as client:
        found = _fetch(client, flow, older_than, progress)
    if as_json:
        echo_json({"Waiting": [w.to_api() for w in found]})
        return
    if not found:
        click.echo("nothing is waiting" + (" that long" if older_than else ""))
        return
    now = time.time()
    table(COLUMNS, [_row(w, now) for w in found])


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
    group.add_command(executions_waiting)
