"""The client does not load the server: importing it leaves the engine, the FDL models, the API
application and the configuration (pydantic-settings) unloaded, so that workers and scripts
start fast and carry little."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "relayflow.engine",
    "relayflow.fdl",
    "relayflow.dataflow",
    "relayflow.store",
    "relayflow.api",
    "relayflow.config",
    "relayflow.plugins",
    "pydantic_settings",
    "uvicorn",
)


def loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_importing_the_client_loads_nothing_of_the_server():
    modules = loaded_by("import relayflow.client")
    assert "relayflow.client" in modules
    found = [
        m for m in modules if m.split(".")[0] != "relayflow.client" and m.startswith(FORBIDDEN)
    ]
    assert found == [], f"importing relayflow.client loaded {found}"


def test_the_server_and_the_client_sign_with_one_recipe():
    from relayflow.api import signature
    from relayflow.client import _calls
    from relayflow.signing import signed_params

    assert signature.signed_params is signed_params
    assert _calls.signed_params is signed_params
