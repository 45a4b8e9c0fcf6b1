"""What the `flows`, `executions` and `tasks` commands share: a client, and how they print.

These commands talk to a running `relayflow server` through `relayflow.client`. The endpoint and
the access key come from the `[client]` table of relayflow.toml (found from `--config`,
`$RELAYFLOW_CONFIG`, then `./relayflow.toml`) or from `RELAYFLOW_CLIENT__ENDPOINT`,
`RELAYFLOW_CLIENT__ACCESS_KEY_ID` and `RELAYFLOW_CLIENT__ACCESS_KEY_SECRET`.

Exit codes: 0 done; 1 the server refused (or could not be reached), or a waited-for execution
did not succeed; 2 bad local input (JSON, files, configuration). Errors are one line on stderr,
`relayflow: <Code>: <Message>`.

Nothing here imports the engine, the FDL models or the API: the client and (inside `connect`)
the configuration only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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


@contextmanager
def connect(config_path: str | None) -> Iterator[Client]:
    """A client for `[client]`; the server's refusals become `Refused` (exit 1)."""
    from relayflow.client import Client, ClientError

    config = load_config_or_fail(config_path)
    try:
        client = Client.from_config(config)
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
