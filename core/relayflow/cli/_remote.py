"""What the `flows`, `executions` and `tasks` commands share: a client, and how they print.

These commands talk to a running `relayflow server` through `relayflow.client`. The endpoint and
the access key come from the `[client]` table of relayflow.toml (found from `--config`,
`$RELAYFLOW_CONFIG`, then `./relayflow.toml`) or from `RELAYFLOW_CLIENT__ENDPOINT`,
`RELAYFLOW_CLIENT__ACCESS_KEY_ID` and `RELAYFLOW_CLIENT__ACCESS_KEY_SECRET`.

Exit codes: 0 done; 1 the server refused (or could not be reached), or a waited-for execution
did not succeed; 2 bad local input (JSON, files, configuration). Errors are one line on stderr,
`relayflow: <Code>: <Message>`.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from relayflow.cli._common import Invalid, Refused, config_option, load_config_or_fail

if TYPE_CHECKING:
    from relayflow.client import Client, Execution

__all__ = [
    "CLIENT_CONFIG_HELP",
    "RawConfig",
    "client_config_option",
    "compact",
    "connect",
    "execution_doc",
    "fast_client_settings",
    "raw_config",
]

DETAIL_WIDTH = 60
CLIENT_CONFIG_HELP = (
    "relayflow.toml whose [client] table to use (default: $RELAYFLOW_CONFIG, then "
    "./relayflow.toml)."
)

#: `--config` as the remote commands describe it.
client_config_option = config_option(help=CLIENT_CONFIG_HELP)


#: The `[client]` endpoint when nothing says otherwise (the server's default address).
DEFAULT_ENDPOINT = "http://127.0.0.1:8765"


class ClientSettings(NamedTuple):
    """The `[client]` table's four keys."""

    endpoint: str = DEFAULT_ENDPOINT
    access_key_id: str | None = None
    access_key_secret: str | None = None
    timeout_seconds: float = 30.0


_ENV = "RELAYFLOW_CLIENT__"
# The variables relayflow.config reads: a table's (RELAYFLOW_ENGINE, RELAYFLOW_SERVER__PORT...).
# Others, such as RELAYFLOW_CONFIG, it does not apply to the configuration.
_ENV_TABLES = ("RELAYFLOW_ENGINE", "RELAYFLOW_PLUGINS", "RELAYFLOW_SERVER", "RELAYFLOW_CLIENT")
_KEYS = {"endpoint", "access_key_id", "access_key_secret", "timeout_seconds"}


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
    texts = [table.get(key) for key in ("endpoint", "access_key_id", "access_key_secret")]
    if not all(text is None or isinstance(text, str) for text in texts):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        return None
    return ClientSettings(
        table.get("endpoint", DEFAULT_ENDPOINT),
        table.get("access_key_id"),
        table.get("access_key_secret"),
        float(timeout),
    )


def _fast_settings(config_path: str | None) -> ClientSettings | None:
    """`[client]` from the file and RELAYFLOW_CLIENT__* variables, or None when unsure."""
    raw = raw_config(config_path)
    return None if raw is None else fast_client_settings(raw)


def client_settings(config_path: str | None) -> ClientSettings:
    """The `[client]` settings; `Invalid` (`InvalidConfig`) when the configuration is wrong."""
    fast = _fast_settings(config_path)
    if fast is not None:
        return fast
    table = load_config_or_fail(config_path).client
    return ClientSettings(
        table.endpoint, table.access_key_id, table.access_key_secret, table.timeout_seconds
    )


@contextmanager
def connect(config_path: str | None) -> Iterator[Client]:
    """A client for `[client]`; the server's refusals become `Refused` (exit 1)."""
    from relayflow.client import Client, ClientError

    settings = client_settings(config_path)
    try:
        client = Client(*settings)
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
    keys = ("Name", "FlowName", "Status", "Input", "Output", "StartedTime", "StoppedTime")
    doc = {key: raw[key] for key in keys if key in raw}
    doc.update({key: raw[key] for key in ("Error", "Cause") if raw.get(key)})
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
