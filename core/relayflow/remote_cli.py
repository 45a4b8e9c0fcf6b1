"""`relayflow flows`, `relayflow executions` and `relayflow tasks`: the API from the shell.

These commands talk to a running `relayflow server` through `relayflow.client`. The endpoint and
the access key come from the `[client]` table of relayflow.toml (found from `--config`,
`$RELAYFLOW_CONFIG`, then `./relayflow.toml`) or from `RELAYFLOW_CLIENT__ENDPOINT`,
`RELAYFLOW_CLIENT__ACCESS_KEY_ID` and `RELAYFLOW_CLIENT__ACCESS_KEY_SECRET`.

Exit codes: 0 done; 1 the server refused (or could not be reached), or a waited-for execution
did not succeed; 2 bad local input (JSON, files, configuration). Errors are one line on stderr,
`relayflow: <Code>: <Message>`.

The main command adds the groups with `register(main)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from relayflow.client import Client, ClientError, Execution, Flow, HistoryEvent
from relayflow.config import ConfigError, load_config

__all__ = ["EXIT_INVALID", "EXIT_REFUSED", "executions", "flows", "register", "tasks"]

EXIT_REFUSED = 1
EXIT_INVALID = 2
STATUSES = ("Starting", "Running", "Succeeded", "Failed", "TimedOut", "Stopped")
DETAIL_WIDTH = 60
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


class _LocalError(Exception):
    """Bad input on this side: nothing was sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _fail(code: str, message: str, exit_code: int) -> NoReturn:
    click.echo(f"relayflow: {code}: {' '.join(message.split())}", err=True)
    sys.exit(exit_code)


class _Command(click.Command):
    """A command whose errors become one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            _fail(exc.code, exc.message, EXIT_REFUSED)
        except _LocalError as exc:
            _fail(exc.code, exc.message, EXIT_INVALID)


class _Group(click.Group):
    command_class = _Command


def _config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="relayflow.toml whose [client] table to use "
        "(default: $RELAYFLOW_CONFIG, then ./relayflow.toml).",
    )(func)


def _client(config_path: str | None) -> Client:
    try:
        return Client.from_config(load_config(config_path))
    except (ConfigError, ValueError) as exc:
        raise _LocalError("InvalidConfig", str(exc)) from None


def _read_file(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _LocalError("FileNotReadable", f"cannot read {what} {path}: {reason}") from None


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _LocalError("InvalidJSON", f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _LocalError(
            "InvalidJSON", f"{where} must be a JSON object, not {type(data).__name__}"
        )
    return data


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(cell).ljust(widths[i]) for i, cell in enumerate(row)]
        click.echo("  ".join(cells).rstrip())


def _execution_json(execution: Execution) -> str:
    raw = execution.raw
    keys = ("Name", "FlowName", "Status", "Input", "Output", "StartedTime", "StoppedTime")
    doc = {key: raw[key] for key in keys if key in raw}
    doc.update({key: raw[key] for key in ("Error", "Cause") if raw.get(key)})
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _short(text: str, width: int = DETAIL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# flows


@click.group(cls=_Group, context_settings=CONTEXT)
def flows() -> None:
    """Create, change, show, list and delete flows on a relayflow server.

    \b
      relayflow flows create orders --definition flows/orders.yaml
      relayflow flows list
      relayflow flows describe orders

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
@_config_option
def flows_create(
    name: str, definition_path: str, description: str, config_path: str | None
) -> None:
    """Create the flow NAME from an FDL definition.

    \b
      relayflow flows create orders --definition flows/orders.yaml --description "order intake"

    The server checks the definition; problems come back as InvalidDefinition.
    """
    definition = _read_file(definition_path, "the definition")
    with _client(config_path) as client:
        flow = client.create_flow(name, definition, description)
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
@_config_option
def flows_update(
    name: str, definition_path: str, description: str | None, config_path: str | None
) -> None:
    """Replace the definition of the flow NAME.

    \b
      relayflow flows update orders --definition flows/orders.yaml

    Executions already running keep the definition they started with.
    """
    definition = _read_file(definition_path, "the definition")
    with _client(config_path) as client:
        flow = client.update_flow(name, definition, description)
    click.echo(f"updated flow {flow.name}")


@flows.command("describe")
@click.argument("name")
@_config_option
def flows_describe(name: str, config_path: str | None) -> None:
    """Show the flow NAME: its fields, then its definition.

    \b
      relayflow flows describe orders
    """
    with _client(config_path) as client:
        flow = client.describe_flow(name)
    _print_flow(flow)


def _print_flow(flow: Flow) -> None:
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
    click.echo("")
    click.echo(flow.definition.rstrip("\n"))


@flows.command("list")
@_config_option
def flows_list(config_path: str | None) -> None:
    """List every flow: name, type, last change and description.

    \b
      relayflow flows list
    """
    with _client(config_path) as client:
        found = list(client.iter_flows())
    if not found:
        click.echo("no flows")
        return
    _table(
        ("NAME", "TYPE", "MODIFIED", "DESCRIPTION"),
        [
            (f.name, f.type, str(f.raw.get("LastModifiedTime") or "-"), f.description or "-")
            for f in found
        ],
    )


@flows.command("delete")
@click.argument("name")
@_config_option
def flows_delete(name: str, config_path: str | None) -> None:
    """Delete the flow NAME; its running executions stop after their current step.

    \b
      relayflow flows delete orders
    """
    with _client(config_path) as client:
        client.delete_flow(name)
    click.echo(f"deleted flow {name}")


# executions


@click.group(cls=_Group, context_settings=CONTEXT)
def executions() -> None:
    """Start, watch, list and stop executions on a relayflow server.

    \b
      relayflow executions start orders --input '{"id": 7}' --name order-7 --wait
      relayflow executions describe orders order-7 --json
      relayflow executions history orders order-7
      relayflow executions list orders --status Running
    """


@executions.command("start")
@click.argument("flow")
@click.option("--input", "input_text", metavar="JSON", help="The input object (default: {}).")
@click.option(
    "--input-file", metavar="FILE", help="Read the input object from a file; - reads stdin."
)
@click.option("--name", help="The execution's name (default: one the server makes up).")
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the end, print the execution as JSON, and exit 0 only if it succeeded.",
)
@_config_option
def executions_start(
    flow: str,
    input_text: str | None,
    input_file: str | None,
    name: str | None,
    wait: bool,
    config_path: str | None,
) -> None:
    """Start an execution of FLOW and print its name.

    \b
      relayflow executions start orders --input '{"id": 7}'
      relayflow executions start orders --name order-7 --input-file order.json --wait

    \b
    With --wait, the command long-polls until the execution ends and prints it as
    DescribeExecution shows it (Name, FlowName, Status, Input, Output, StartedTime,
    StoppedTime, and Error and Cause when set). It exits 0 if the execution succeeded
    and 1 if it failed, timed out or was stopped.
    """
    if input_text is not None and input_file is not None:
        raise _LocalError("InvalidArgument", "give --input or --input-file, not both")
    data: dict[str, Any] | None = None
    if input_file is not None:
        data = _json_object(_read_file(input_file, "the input file"), input_file)
    elif input_text is not None:
        data = _json_object(input_text, "--input")
    with _client(config_path) as client:
        started = client.start_execution(flow, data, name=name)
        if not wait:
            click.echo(started.name)
            return
        final = client.wait_for_execution(flow, started.name)
    click.echo(_execution_json(final))
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
@click.option("--json", "as_json", is_flag=True, help="Print the execution as JSON.")
@_config_option
def executions_describe(
    flow: str, name: str, wait_seconds: int, as_json: bool, config_path: str | None
) -> None:
    """Show the execution NAME of FLOW: status, times, input and output.

    \b
      relayflow executions describe orders order-7
      relayflow executions describe orders order-7 --wait 30 --json

    --json prints DescribeExecution's fields: Name, FlowName, Status, Input and Output
    (JSON text, as the API has them), StartedTime, StoppedTime, and Error and Cause when set.
    """
    with _client(config_path) as client:
        execution = client.describe_execution(flow, name, wait_seconds)
    if as_json:
        click.echo(_execution_json(execution))
        return
    raw = execution.raw
    rows = [
        ("Name", execution.name),
        ("Flow", execution.flow_name),
        ("Status", execution.status),
        ("Started", str(raw.get("StartedTime") or "-")),
        ("Stopped", str(raw.get("StoppedTime") or "-")),
    ]
    if execution.error or execution.cause:
        rows += [("Error", execution.error or "-"), ("Cause", execution.cause or "-")]
    rows.append(("Input", _compact(execution.input)))
    rows.append(("Output", "-" if execution.output is None else _compact(execution.output)))
    for label, value in rows:
        click.echo(f"{label + ':':<9}{value}")


@executions.command("list")
@click.argument("flow")
@click.option(
    "--status",
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only executions with this status.",
)
@click.option("--name-prefix", help="Only executions whose names start with this.")
@_config_option
def executions_list(
    flow: str, status: str | None, name_prefix: str | None, config_path: str | None
) -> None:
    """List the executions of FLOW: name, status, start and stop times.

    \b
      relayflow executions list orders
      relayflow executions list orders --status Failed
    """
    with _client(config_path) as client:
        found = list(client.iter_executions(flow, status=status, name_prefix=name_prefix))
    if not found:
        click.echo("no executions")
        return
    _table(
        ("NAME", "STATUS", "STARTED", "STOPPED"),
        [
            (
                e.name,
                e.status,
                str(e.raw.get("StartedTime") or "-"),
                str(e.raw.get("StoppedTime") or "-"),
            )
            for e in found
        ],
    )


@executions.command("history")
@click.argument("flow")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"Events": [...]} as the API has it.')
@_config_option
def executions_history(flow: str, name: str, as_json: bool, config_path: str | None) -> None:
    """Show every event of the execution NAME of FLOW, oldest first.

    \b
      relayflow executions history orders order-7
      relayflow executions history orders order-7 --json | jq '.Events[].Type'

    The table shows each event's id, time, type, step and the start of its detail; --json
    prints every page's Events (EventId, ScheduleEventId, StepName, Type, Time, EventDetail)
    as one {"Events": [...]}.
    """
    with _client(config_path) as client:
        events = list(client.iter_history(flow, name))
    if as_json:
        click.echo(json.dumps({"Events": [e.raw for e in events]}, indent=2, ensure_ascii=False))
        return
    _table(("ID", "TIME", "TYPE", "STEP", "DETAIL"), [_event_row(e) for e in events])


def _event_row(event: HistoryEvent) -> tuple[str, str, str, str, str]:
    detail = _short(_compact(event.detail)) if event.detail else ""
    return (
        str(event.event_id),
        str(event.raw.get("Time") or "-"),
        event.type,
        event.step_name or "-",
        detail,
    )


@executions.command("stop")
@click.argument("flow")
@click.argument("name")
@click.option("--error", default="", help="An error name to stop with, such as Cancelled.")
@click.option("--cause", default="", help="Why, for whoever reads the execution later.")
@_config_option
def executions_stop(flow: str, name: str, error: str, cause: str, config_path: str | None) -> None:
    """Stop the running execution NAME of FLOW.

    \b
      relayflow executions stop orders order-7 --error Cancelled --cause "customer called"
    """
    with _client(config_path) as client:
        execution = client.stop_execution(flow, name, error, cause)
    click.echo(f"{execution.name}: {execution.status}")


# tasks


@click.group(cls=_Group, context_settings=CONTEXT)
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
    "output_text",
    required=True,
    metavar="JSON",
    help="The task's output object; it becomes the step's $local.",
)
@_config_option
def tasks_succeed(token: str, output_text: str, config_path: str | None) -> None:
    """Complete the task that handed out TOKEN, with an output object.

    \b
      relayflow tasks succeed "$TOKEN" --output '{"booked": true, "seat": "12A"}'

    Prints the id of the TaskSucceeded event the report became.
    """
    output = _json_object(output_text, "--output")
    with _client(config_path) as client:
        event_id = client.report_task_succeeded(token, output)
    click.echo(f"reported TaskSucceeded (event {event_id})")


@tasks.command("fail")
@click.argument("token")
@click.option("--error", required=True, metavar="NAME", help="The error name; catch matches it.")
@click.option("--cause", default="", metavar="TEXT", help="What went wrong, for a person.")
@_config_option
def tasks_fail(token: str, error: str, cause: str, config_path: str | None) -> None:
    """Fail the task that handed out TOKEN; the step's retry and catch apply.

    \b
      relayflow tasks fail "$TOKEN" --error Booking.SoldOut --cause "no seats left on 2024-06-01"

    Prints the id of the TaskFailed event the report became.
    """
    with _client(config_path) as client:
        event_id = client.report_task_failed(token, error, cause)
    click.echo(f"reported TaskFailed (event {event_id})")


def register(main: click.Group) -> None:
    """Add the `flows`, `executions` and `tasks` groups to the `relayflow` command."""
    for group in (flows, executions, tasks):
        main.add_command(group)
