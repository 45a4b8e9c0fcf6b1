"""What the `flows`, `executions` and `tasks` commands share: a client, and how they print.

These commands talk to a running `relayflow server` through `relayflow.client`. The endpoint and
the access key come from the `[client]` table of relayflow.toml (found from `--config`,
`$RELAYFLOW_CONFIG`, then `./relayflow.toml`) or from `RELAYFLOW_CLIENT__ENDPOINT`,
`RELAYFLOW_CLIENT__ACCESS_KEY_ID` and `RELAYFLOW_CLIENT__ACCESS_KEY_SECRET`. For an `https://`
endpoint whose certificate a private CA signed, `--ca-file` (or `[client] ca_file`,
`RELAYFLOW_CLIENT__CA_FILE`) names that CA's certificate; certificates are always verified.

Exit codes: 0 done; 1 the server refused (or could not be reached), or a waited-for execution
did not succeed, or a bulk action could not act on some executions; 2 bad local input (JSON,
files, configuration); 130 a bulk action stopped by Ctrl-C (running it again goes on). Errors
are one line on stderr, `relayflow: <Code>: <Message>`.

Nothing here imports the engine, the FDL models or the API. The `[client]` table is read
without pydantic when that is safe (`client_settings`): loading the whole configuration costs
more than the call these commands make. Whenever the fast reading meets anything it does not
handle (a TOML error, an unknown key, a wrong type, an unusual RELAYFLOW_* variable), the full
`relayflow.config.load_config` reads the file instead and says what is wrong, as before.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from relayflow.cli._common import Invalid, Refused, config_option, load_config_or_fail

if TYPE_CHECKING:
    from relayflow.client import Client, Execution
    from relayflow.config import ClientConfig

__all__ = [
    "CLIENT_CONFIG_HELP",
    "ClientSettings",
    "RawConfig",
    "ca_file_option",
    "client_config_option",
    "compact",
    "connect",
    "execution_doc",
    "fast_client_settings",
    "raw_config",
    "with_ca_option",
]

DETAIL_WIDTH = 60
CLIENT_CONFIG_HELP = (
    "relayflow.toml whose [client] table to use (default: $RELAYFLOW_CONFIG, then "
    "./relayflow.toml)."
)

F = TypeVar("F", bound=Callable[..., Any])
# Where `--ca-file` leaves its value for `client_settings` (the click context's meta).
_CA_FILE_META = "relayflow.client.ca_file"


def _remember_ca_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_CA_FILE_META] = value


def ca_file_option(func: F) -> F:
    """`--ca-file FILE`: the CA to trust for an https:// endpoint, over `[client] ca_file`.

    The command does not get it as an argument: `client_settings` reads it from the context.
    """
    return click.option(
        "--ca-file",
        metavar="FILE",
        type=click.Path(dir_okay=True),
        expose_value=False,
        callback=_remember_ca_file,
        help="PEM file of the CA that signed the server's certificate, for an https:// "
        "endpoint (default: [client] ca_file, $RELAYFLOW_CLIENT__CA_FILE, else the public CAs).",
    )(func)


def client_config_option(func: F) -> F:
    """`--config` as the remote commands describe it, and `--ca-file`."""
    return config_option(help=CLIENT_CONFIG_HELP)(ca_file_option(func))


#: The `[client]` endpoint when nothing says otherwise (the server's default address).
DEFAULT_ENDPOINT = "http://127.0.0.1:8765"


class ClientSettings(NamedTuple):
    """The `[client]` table's keys."""

    endpoint: str = DEFAULT_ENDPOINT
    access_key_id: str | None = None
    access_key_secret: str | None = None
    timeout_seconds: float = 30.0
    ca_file: str | None = None

    @classmethod
    def of(cls, table: ClientConfig) -> ClientSettings:
        """The settings of a checked `[client]` table."""
        return cls(
            table.endpoint,
            table.access_key_id,
            table.access_key_secret,
            table.timeout_seconds,
            table.ca_file,
        )

    def client(self) -> Client:
        """A `relayflow.client.Client` with these settings.

        Raises:
            ValueError: the endpoint, the key or the CA file cannot be used.
        """
        from relayflow.client import Client

        return Client(
            self.endpoint,
            self.access_key_id,
            self.access_key_secret,
            self.timeout_seconds,
            ca_file=self.ca_file,
        )


_ENV = "RELAYFLOW_CLIENT__"
# The variables relayflow.config reads: a table's (RELAYFLOW_ENGINE, RELAYFLOW_SERVER__PORT...).
# Others, such as RELAYFLOW_CONFIG, it does not apply to the configuration.
_ENV_TABLES = ("RELAYFLOW_ENGINE", "RELAYFLOW_PLUGINS", "RELAYFLOW_SERVER", "RELAYFLOW_CLIENT")
_KEYS = {"endpoint", "access_key_id", "access_key_secret", "timeout_seconds", "ca_file"}


class RawConfig(NamedTuple):
    """relayflow.toml as TOML only, for commands that need one or two tables of it."""

    source: str
    tables: dict[str, Any]
    client_env: dict[str, str]


def raw_config(config_path: str | None) -> RawConfig | None:
    """The configuration file's tables, unchecked, or None when only the full reading will do.

    None when the file cannot be read or parsed, or when a variable that the configuration
    reads (`RELAYFLOW_ENGINE__*`, `RELAYFLOW_SERVER__*`, `RELAYFLOW_PLUGINS__*`, a whole
    `RELAYFLOW_CLIENT` table) is set. The full `relayflow.config.load_config` then reads
    everything and says what is wrong.
    """
    tables: dict[str, Any] = {}
    explicit = config_path or os.environ.get("RELAYFLOW_CONFIG")
    path = Path(explicit) if explicit else Path("relayflow.toml")
    source = "(defaults)"
    if explicit or path.is_file():
        try:
            tables = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        source = str(path)
    client_env: dict[str, str] = {}
    for name, value in os.environ.items():
        upper = name.upper()
        if upper.startswith(_ENV):
            client_env[upper.removeprefix(_ENV).lower()] = value
        elif upper.startswith(_ENV_TABLES):
            return None  # a variable the full reading applies to a table: it checks it
    return RawConfig(source, tables, client_env)


def fast_client_settings(raw: RawConfig) -> ClientSettings | None:
    """`[client]` from an unchecked reading, or None when any of it looks unusual."""
    found = raw.tables.get("client", {})
    if not isinstance(found, dict):
        return None
    table = dict(found)
    table.update(raw.client_env)
    if not set(table) <= _KEYS:
        return None
    timeout = table.get("timeout_seconds", 30.0)
    if isinstance(timeout, str):
        try:
            timeout = float(timeout)
        except ValueError:
            return None
    names = ("endpoint", "access_key_id", "access_key_secret", "ca_file")
    texts = [table.get(key) for key in names]
    if not all(text is None or isinstance(text, str) for text in texts):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        return None
    if table.get("ca_file") == "":
        return None  # the full reading says why an empty ca_file is wrong
    return ClientSettings(
        table.get("endpoint", DEFAULT_ENDPOINT),
        table.get("access_key_id"),
        table.get("access_key_secret"),
        float(timeout),
        table.get("ca_file"),
    )


def _fast_settings(config_path: str | None) -> ClientSettings | None:
    """`[client]` from the file and RELAYFLOW_CLIENT__* variables, or None when unsure."""
    raw = raw_config(config_path)
    return None if raw is None else fast_client_settings(raw)


def client_settings(config_path: str | None) -> ClientSettings:
    """The `[client]` settings, with `--ca-file` when the command was given one.

    Raises:
        Invalid: `InvalidConfig` when the configuration is wrong.
    """
    settings = _fast_settings(config_path)
    if settings is None:
        settings = ClientSettings.of(load_config_or_fail(config_path).client)
    return with_ca_option(settings)


def with_ca_option(settings: ClientSettings) -> ClientSettings:
    """``settings`` with the running command's `--ca-file`, when it was given one."""
    context = click.get_current_context(silent=True)
    ca_file = None if context is None else context.meta.get(_CA_FILE_META)
    return settings if ca_file is None else settings._replace(ca_file=ca_file)


@contextmanager
def connect(config_path: str | None) -> Iterator[Client]:
    """A client for `[client]`; the server's refusals become `Refused` (exit 1)."""
    from relayflow.client import ClientError

    settings = client_settings(config_path)
    try:
        client = settings.client()
    except ValueError as exc:
        raise Invalid("InvalidConfig", str(exc)) from None
    try:
        with client:
            yield client
    except ClientError as exc:
        raise Refused(exc.code, exc.message) from None


def execution_doc(execution: Execution) -> dict[str, Any]:
    """The execution as DescribeExecution has it, without the fields that are not set."""
    raw = execution.raw
    keys = (
        "Name",
        "FlowName",
        "FlowVersion",
        "Status",
        "Input",
        "Output",
        "StartedTime",
        "StoppedTime",
    )
    doc = {key: raw[key] for key in keys if key in raw}
    doc.update({key: raw[key] for key in ("Error", "Cause") if raw.get(key)})
    # relayflow's own fields, which the server sends only when they say something.
    own = ("RedriveCount", "ParentExecution", "ChildExecutions", "Waiting")
    doc.update({key: raw[key] for key in own if key in raw})
    return doc


def execution_json(execution: Execution) -> str:
    """`execution_doc` as indented JSON."""
    return json.dumps(execution_doc(execution), indent=2, ensure_ascii=False)


def compact(value: Any) -> str:
    """JSON on one line, without spaces."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def short(text: str, width: int = DETAIL_WIDTH) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"
