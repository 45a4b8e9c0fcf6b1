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

__all__ = ["CLIENT_CONFIG_HELP", "client_config_option", "compact", "connect", "execution_doc"]

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
_KEYS = {"endpoint", "access_key_id", "access_key_secret", "timeout_seconds"}


def _fast_settings(config_path: str | None) -> ClientSettings | None:
    """`[client]` from the file and RELAYFLOW_CLIENT__* variables, or None when unsure."""
    table: dict[str, Any] = {}
    explicit = config_path or os.environ.get("RELAYFLOW_CONFIG")
    path = Path(explicit) if explicit else Path("relayflow.toml")
    if explicit or path.is_file():
        try:
            found = tomllib.loads(path.read_text(encoding="utf-8")).get("client", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        if not isinstance(found, dict):
            return None
        table = dict(found)
    for name, value in os.environ.items():
        upper = name.upper()
        if not upper.startswith("RELAYFLOW_") or upper == "RELAYFLOW_CONFIG":
            continue
        key = upper.removeprefix(_ENV).lower()
        if not upper.startswith(_ENV) or key not in _KEYS:
            return None  # another table's variable: the full reading checks it
        table[key] = value
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
