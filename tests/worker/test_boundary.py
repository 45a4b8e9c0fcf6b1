"""The core worker is light: importing it loads neither the server side nor a broker library."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "relayflow.engine",
    "relayflow.fdl",
    "relayflow.store",
    "relayflow.api",
    "relayflow.config",
    "relayflow.plugins",
    "pydantic_settings",
    "kombu",
    "redis",
    "amqp",
)


def loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_importing_the_core_worker_loads_no_engine_server_or_broker() -> None:
    modules = loaded_by("import relayflow.worker")
    assert "relayflow.worker" in modules
    found = [m for m in modules if m.startswith(FORBIDDEN)]
    assert found == [], f"importing relayflow.worker loaded {found}"


def test_the_plugin_worker_builds_on_the_core() -> None:
    import relayflow.worker as core
    import relayflow_mns.worker as mns

    for name in ("SETTLED_CODES", "INVALID_OUTPUT", "EngineReporter", "WorkerError", "WorkerStats"):
        assert getattr(mns, name) is getattr(core, name), name
