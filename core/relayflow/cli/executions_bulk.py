"""What `relayflow executions stop|redrive FLOW --status ...` share: filters, times, the loop.

A bulk command counts the matches (CountExecutions), asks before acting unless `--yes`, then
calls StopExecutions or RedriveExecutions one page at a time until the last page, showing
progress on a terminal, and reports every execution it could not act on at the end. Ctrl-C
stops after the page under way; running the same command again goes on, since what was done
no longer matches. Nothing here imports the engine.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from relayflow.cli._common import EXIT_REFUSED, Invalid, Refused, echo_json, table
from relayflow.cli._remote import short
from relayflow.cli.executions_waiting import parse_duration

if TYPE_CHECKING:
    from relayflow.client import Client

__all__ = [
    "EXIT_INTERRUPTED",
    "STATUSES",
    "TIME_HELP",
    "BulkRun",
    "When",
    "filter_options",
    "filter_params",
    "interactive",
    "on_terminal",
    "parse_when",
    "refuse_name_with_filters",
]

#: The statuses ListExecutions filters on.
STATUSES = ("Starting", "Running", "Succeeded", "Failed", "TimedOut", "Stopped")
#: Exit status after Ctrl-C stopped a bulk command between two pages.
EXIT_INTERRUPTED = 130
#: Executions acted on per call: the actions' largest Limit, for the fewest round trips.
PAGE = 1000
#: A server that keeps answering NextTokens cannot hold the command forever.
_MAX_PAGES = 100_000
TIME_HELP = (
    "an RFC 3339 time (2026-12-01T08:00:00Z; without an offset it is UTC; a date alone is its "
    "midnight UTC) or a time ago such as 90s, 30m, 2h, 7d, 1h30m"
)

F = TypeVar("F", bound=Callable[..., Any])


def parse_when(text: str, now: datetime | None = None) -> str:
    """The time ``text`` names, as RFC 3339 in UTC for the API.

    ``text`` is an RFC 3339 time (an offset or `Z`; none means UTC), a date (its midnight
    UTC), or a duration ago (`parse_duration`: `90s`, `30m`, `2h`, `7d`, `1h30m`).

    Raises:
        ValueError: neither, in one sentence.
    """
    cleaned = text.strip()
    moment: datetime
    try:
        ago = parse_duration(cleaned)
    except ValueError:
        try:
            moment = datetime.fromisoformat(cleaned.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r:.60} is neither an RFC 3339 time nor a time ago") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        moment = (now or datetime.now(UTC)) - timedelta(seconds=ago)
    stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class When(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """A click type for times (`parse_when`): RFC 3339 text in UTC, or a usage error."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """RFC 3339 text, or a usage error naming the option."""
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(f"{exc} (try 2026-12-01T08:00:00Z or 2h)", param, ctx)


def filter_options(func: F) -> F:
    """`--name-prefix`, `--started-after` and `--started-before` (the status is per command)."""
    options = [
        click.option(
            "--started-before",
            type=When(),
            metavar="TIME",
            help=f"Only executions started at or before TIME: {TIME_HELP}.",
        ),
        click.option(
            "--started-after",
            type=When(),
            metavar="TIME",
            help="Only executions started at or after TIME (as --started-before).",
        ),
        click.option("--name-prefix", metavar="PREFIX", help="Only names that start with this."),
    ]
    for option in options:
        func = option(func)
    return func


def filter_params(
    status: str | None,
    name_prefix: str | None,
    started_after: str | None,
    started_before: str | None,
) -> dict[str, str | None]:
    """The API's filter parameters (ListExecutions' names); None leaves one out."""
    return {
        "Status": status,
        "ExecutionNamePrefix": name_prefix or None,
        "StartedTimeBegin": started_after,
        "StartedTimeEnd": started_before,
    }


def refuse_name_with_filters(name: str, **given: Any) -> None:
    """`Invalid` when a command got NAME and a filter or bulk option too (one or the other)."""
    extra = [f"--{k.replace('_', '-')}" for k, v in given.items() if v]
    if extra:
        raise Invalid(
            "InvalidArgument",
            f"give the execution NAME ({name}) or filters, not both: {', '.join(extra)} "
            "applies only without NAME",
        )


def interactive() -> bool:
    """Whether a person can answer a question on stdin."""
    return sys.stdin.isatty()


def on_terminal() -> bool:
    """Whether stderr is a terminal, where progress can be redrawn in place."""
    return sys.stderr.isatty()


@dataclass
class BulkRun:
    """One bulk command: what it calls, how it speaks of it, and what came back.

    Attributes:
        action: `StopExecutions` or `RedriveExecutions`.
        flow: the flow.
        params: the filter and the action's own parameters (None values are left out).
        verb: what it does, `stop` or `redrive`.
        done_word: what is done, `stopped` or `redriven`.
    """

    action: str
    flow: str
    params: dict[str, Any]
    verb: str
    done_word: str
    matched: int = 0
    done: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    def run(self, client: Client, *, yes: bool, dry_run: bool, as_json: bool) -> None:
        """Count, ask, act page by page, report; exits 1 if any failed, 130 if interrupted."""
        if dry_run:
            self._dry_run(client, as_json)
            return
        counted = client.request("CountExecutions", {"FlowName": self.flow, **self._filter()})
        self.matched = int(counted.get("Matched") or 0)
        if self.matched and not yes:
            self._confirm()
        if self.matched:
            self._act(client)
        self._report(as_json)

    # -- the steps ----------------------------------------------------------------------------
    def _filter(self) -> dict[str, Any]:
        keys = ("Status", "ExecutionNamePrefix", "StartedTimeBegin", "StartedTimeEnd")
        return {k: self.params.get(k) for k in keys}

    def _confirm(self) -> None:
        what = f"{self.matched} execution{'s' if self.matched != 1 else ''} of {self.flow}"
        if not interactive():
            raise Invalid(
                "ConfirmationRequired",
                f"{what} match: give --yes (-y) to {self.verb} them without a terminal to "
                "confirm on, or --dry-run to list them",
            )
        click.confirm(f"{self.verb.capitalize()} {what}?", abort=True)

    def _act(self, client: Client) -> None:
        from relayflow.client import ClientError

        token = ""
        progress = on_terminal()
        with _until_interrupted() as stop_asked:
            for _ in range(_MAX_PAGES):
                params = {**self.params, "FlowName": self.flow, "Limit": PAGE}
                params["NextToken"] = token or None
                try:
                    answer = client.request(self.action, params)
                except ClientError as exc:
                    if progress:
                        click.echo(err=True)  # end the progress line
                    if not self.done and not self.failed and not self.skipped:
                        raise  # nothing done yet: the usual one-line refusal
                    raise Refused(
                        exc.code,
                        f"{exc.message}; {len(self.done)} were {self.done_word} before it and "
                        f"{len(self.failed)} failed: run the same command again to go on",
                    ) from None
                self.done += [str(n) for n in answer.get("Done") or []]
                self.skipped += list(answer.get("Skipped") or [])
                self.failed += list(answer.get("Failed") or [])
                token = str(answer.get("NextToken") or "")
                if progress:
                    self._show_progress()
                if not token:
                    break
                if stop_asked():
                    self.interrupted = True
                    break
        if progress:
            click.echo(err=True)

    def _show_progress(self) -> None:
        seen = len(self.done) + len(self.skipped) + len(self.failed)
        total = max(self.matched, seen)
        width = 30
        filled = width * seen // total if total else width
        failed = f", {len(self.failed)} failed" if self.failed else ""
        click.echo(
            f"\r{self.verb}: [{'#' * filled}{'.' * (width - filled)}] {seen}/{total}{failed}",
            nl=False,
            err=True,
        )

    def _dry_run(self, client: Client, as_json: bool) -> None:
        selected: list[str] = []
        token = ""
        for _ in range(_MAX_PAGES):
            params = {**self.params, "FlowName": self.flow, "Limit": PAGE, "DryRun": True}
            params["NextToken"] = token or None
            answer = client.request(self.action, params)
            if not selected:
                self.matched = int(answer.get("Matched") or 0)
            selected += [str(n) for n in answer.get("Selected") or []]
            token = str(answer.get("NextToken") or "")
            if not token:
                break
        if as_json:
            echo_json({"Matched": self.matched, "DryRun": True, "Executions": selected})
            return
        click.echo(
            f"{len(selected)} execution{'s' if len(selected) != 1 else ''} of {self.flow} "
            f"match; nothing was {self.done_word} (--dry-run)"
        )
        for name in selected:
            click.echo(name)

    def _report(self, as_json: bool) -> None:
        if as_json:
            echo_json(
                {
                    "Matched": self.matched,
                    "Done": self.done,
                    "Skipped": self.skipped,
                    "Failed": self.failed,
                    "Interrupted": self.interrupted,
                }
            )
        else:
            self._text_report()
        if self.interrupted:
            click.echo(
                f"relayflow: interrupted: {len(self.done)} {self.done_word} before Ctrl-C, after "
                "the page under way was finished; run the same command again to go on (what "
                "was done no longer matches)",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        if self.failed:
            sys.exit(EXIT_REFUSED)

    def _text_report(self) -> None:
        if not self.matched:
            click.echo(f"no executions of {self.flow} match")
            return
        click.echo(f"{self.done_word} {len(self.done)} of {self.matched} matching")
        if self.skipped:
            click.echo(f"skipped {len(self.skipped)} that no longer matched:")
            table(
                ("NAME", "REASON"),
                [(str(s.get("Name")), short(str(s.get("Reason")))) for s in self.skipped],
            )
        if self.failed:
            click.echo(f"failed on {len(self.failed)}:")
            table(
                ("NAME", "CODE", "MESSAGE"),
                [
                    (str(f.get("Name")), str(f.get("Code")), short(str(f.get("Message")), 80))
                    for f in self.failed
                ],
            )


@contextlib.contextmanager
def _until_interrupted() -> Iterator[Callable[[], bool]]:
    """Note the first Ctrl-C (the callable yielded tells) instead of raising it.

    A second Ctrl-C interrupts at once.
    """
    asked = False

    def note(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        if asked:
            raise KeyboardInterrupt
        asked = True
        click.echo(
            "\nrelayflow: stopping after the page under way (Ctrl-C again to stop now)",
            err=True,
        )

    try:
        previous = signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main thread: Ctrl-C is not ours to handle
        yield lambda: False
        return
    try:
        yield lambda: asked
    finally:
        signal.signal(signal.SIGINT, previous)
