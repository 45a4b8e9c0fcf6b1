"""`relayflow --version` and `--help` import only what they print; remote commands, no server.

Each case runs the command in a fresh interpreter and lists the modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.services import free_port

PROBE = """
import json, sys
from relayflow.cli import main
try:
    main(sys.argv[1:], prog_name="relayflow")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
SERVER_SIDE = ("relayflow.engine", "relayflow.fdl", "relayflow.api", "relayflow.server")
HEAVY = ("pydantic", "pydantic_settings", "httpx", "relayflow.config", "relayflow.plugins")


def loaded(*args: str, cwd: str | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def among(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)]


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["flows", "--help"]])
def test_version_and_help_load_nothing_heavy(args):
    modules = loaded(*args)
    assert among(modules, SERVER_SIDE + HEAVY) == []


def test_a_remote_command_loads_no_server_side_module(tmp_path):
    config = tmp_path / "client.toml"
    config.write_text(f'[client]\nendpoint = "http://127.0.0.1:{free_port()}"\n')
    modules = loaded("executions", "describe", "f", "e", "--config", str(config), cwd=tmp_path)
    assert "relayflow.client" in modules
    assert among(modules, (*SERVER_SIDE, "pydantic_settings", "relayflow.config")) == []


def test_a_remote_command_reads_a_wrong_configuration_fully(tmp_path):
    config = tmp_path / "client.toml"
    config.write_text('[client]\nendpont = "http://x"\n')
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "flows", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    first = done.stderr.splitlines()[0]
    assert first.startswith("relayflow: InvalidConfig: ") and "client.endpont" in first
