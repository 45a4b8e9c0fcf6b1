"""`relayflow <args>` in-process against a real server, with a [client] table for one key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from relayflow.cli import main
from tests.api_server import KEYS, ApiServer

__all__ = ["Run", "client_config", "remote_cli"]

#: `invoke(*args, input=None)`: the command's result; ``input`` is what it reads on stdin.
Run = Callable[..., Result]


def client_config(server: ApiServer, folder: Path, role: str = "admin") -> Path:
    """A relayflow.toml whose [client] table reaches ``server`` with ``role``'s key."""
    key_id, secret = KEYS[role]
    config = folder / f"client-{role}.toml"
    config.write_text(
        f'[client]\nendpoint = "{server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n'
    )
    return config


def remote_cli(
    server: ApiServer, folder: Path, monkeypatch: pytest.MonkeyPatch, role: str = "admin"
) -> Run:
    """Run `relayflow` commands against ``server`` as ``role``, never with a traceback.

    The caller's RELAYFLOW_CONFIG and endpoint variables are set aside, so only the
    configuration written here is read.
    """
    for name in ("RELAYFLOW_CONFIG", "RELAYFLOW_CLIENT__ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    config = client_config(server, folder, role)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(main, [*args, "--config", str(config)], input=input)
        assert "Traceback" not in result.output, result.output
        return result

    return invoke
