"""What every `relayflow` command shares: `--config`, JSON-object options, one way to fail.

This module imports nothing but click and the standard library, so that a command module (the
core's or a plugin's) can import it at no cost; the configuration is loaded, lazily, by
`load_config_or_fail`.

A user's mistake ends a command with ONE line on stderr and a documented exit code:

    relayflow: <Code>: <message>

- `Invalid` (exit 2): the input on this side is wrong (a flow, JSON, a file, the
  configuration, a handler); nothing was done.
- `Refused` (exit 1): the server or the execution said no, or the server cannot be reached.

Click's own usage errors (an unknown option, a missing argument) keep click's form and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, overload

import click

if TYPE_CHECKING:
    from relayflow.config import Config

__all__ = [
    "CONTEXT",
    "EXIT_INVALID",
    "EXIT_REFUSED",
    "JSON_OBJECT",
    "CommandError",
    "Invalid",
    "JsonObject",
    "Refused",
    "config_option",
    "echo_json",
    "json_option",
    "load_config_or_fail",
    "one_of",
    "parse_object",
    "read_file",
    "table",
]

#: Exit status when the server or an execution said no (or the server cannot be reached).
EXIT_REFUSED = 1
#: Exit status when the input on this side is wrong: nothing was done.
EXIT_INVALID = 2
#: Context settings of every group and command: `-h` too, and wider help.
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])

_CONFIG_HELP = "relayflow.toml to use (default: $RELAYFLOW_CONFIG, then ./relayflow.toml)."


class CommandError(click.ClickException):
    """A command cannot go on: one line `relayflow: <Code>: <message>` and an exit code.

    Attributes:
        code: a stable name, such as `InvalidJSON` or the server's `FlowNotExists`.
        message: one sentence for a person (whitespace runs collapse to one space).
    """

    exit_code = EXIT_INVALID

    def __init__(self, code: str, message: str, *, mask: bool = False) -> None:
        message = " ".join(str(message).split())
        if mask:
            # Messages quoting URLs (a store's, a broker's) must not print their passwords.
            from relayflow.masking import mask_text

            message = mask_text(message)
        super().__init__(message)
        self.code = code

    def format_message(self) -> str:
        """The line without its `relayflow: ` prefix."""
        return f"{self.code}: {self.message}"

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one line on stderr (or ``file``)."""
        click.echo(f"relayflow: {self.format_message()}", file=file or sys.stderr)


class Invalid(CommandError):
    """The input on this side is wrong (exit 2)."""

    exit_code = EXIT_INVALID


class Refused(CommandError):
    """The server or the execution said no, or the server cannot be reached (exit 1)."""

    exit_code = EXIT_REFUSED


@overload
def config_option(func: F, /) -> F: ...
@overload
def config_option(*, help: str = _CONFIG_HELP) -> Callable[[F], F]: ...
def config_option(func: F | None = None, /, *, help: str = _CONFIG_HELP) -> Any:
    """The `--config FILE` option, passed to the command as ``config_path``.

    Use it bare (`@config_option`) or with the help that says what the command reads from the
    file (`@config_option(help="...")`).
    """
    decorator = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help=help,
    )
    return decorator(func) if func is not None else decorator


def json_option(func: F) -> F:
    """The `--json` flag, passed as ``as_json``: print data as JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def load_config_or_fail(path: str | None) -> Config:
    """The configuration (`--config`, `$RELAYFLOW_CONFIG`, `./relayflow.toml`), or `Invalid`."""
    from relayflow.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise Invalid("InvalidConfig", str(exc), mask=True) from None


def read_file(path: str, what: str) -> str:
    """A UTF-8 text file (`-` reads stdin), or `Invalid` naming ``what`` and the file."""
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Invalid("FileNotReadable", f"cannot read {what} {path}: {reason}") from None


def parse_object(text: str, where: str, *, blank_is_empty: bool = False) -> dict[str, Any]:
    """A JSON object from ``text``, or `Invalid` (`InvalidJSON`) naming ``where`` it came from."""
    if blank_is_empty and not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Invalid("InvalidJSON", f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Invalid("InvalidJSON", f"{where} must be a JSON object, not {type(data).__name__}")
    return data


class JsonObject(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """An option whose value is a JSON object: given inline or, with ``from_file``, a file.

    Args:
        from_file: the value names a file holding the object (`-` reads stdin).
        blank_is_empty: empty text means `{}` instead of an error.
    """

    name = "json"

    def __init__(self, *, from_file: bool = False, blank_is_empty: bool = False) -> None:
        self.from_file = from_file
        self.blank_is_empty = blank_is_empty
        self.name = "file" if from_file else "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse the option's text; raise `Invalid` with the option's name or the file's."""
        if isinstance(value, dict):
            return value
        where = max(param.opts, key=len) if param is not None and param.opts else "the value"
        text = str(value)
        if self.from_file:
            where = text
            text = read_file(text, "the input file")
        return parse_object(text, where, blank_is_empty=self.blank_is_empty)


#: An inline JSON object option (`--input '{"id": 7}'`).
JSON_OBJECT = JsonObject()


def one_of(first: tuple[str, Any], second: tuple[str, Any]) -> Any:
    """The value of whichever of two exclusive options was given (`Invalid` when both were)."""
    if first[1] is not None and second[1] is not None:
        raise Invalid("InvalidArgument", f"give {first[0]} or {second[0]}, not both")
    return first[1] if first[1] is not None else second[1]


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows under a header, in columns as wide as their widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(cell).ljust(widths[i]) for i, cell in enumerate(row)]
        click.echo("  ".join(cells).rstrip())
