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


def test_the_worker_command_loads_no_engine_nor_pydantic_settings(tmp_path) -> None:
    # The broker is down, so the command ends at once; what it loaded by then is the point.
    (tmp_path / "light_jobs.py").write_text("def handle(body):\n    return {}\n")
    (tmp_path / "w.toml").write_text('[integrations.mns]\ntransport = "redis://127.0.0.1:9/0"\n')
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['relayflow', 'worker', 'q', '--handler', 'light_jobs:handle',"
        " '--config', 'w.toml']\n"
        "from relayflow.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "BrokerUnreachable" in done.stderr, done.stderr
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "relayflow_mns.worker" in modules
    heavy = ("relayflow.engine", "relayflow.fdl", "relayflow.api", "relayflow.store")
    heavy += ("relayflow.config", "pydantic_settings")
    found = [m for m in modules if m.startswith((*heavy, "relayflow_mns.integration"))]
    assert found == [], f"relayflow worker loaded {found}"


def test_the_worker_reads_a_wrong_broker_table_in_one_line_without_the_full_config(tmp_path):
    (tmp_path / "light_jobs.py").write_text("def handle(body):\n    return {}\n")
    (tmp_path / "w.toml").write_text("[integrations.mns]\ntransport_options = 3\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from relayflow.cli import main; main(prog_name='relayflow')",
            "worker",
            "q",
            "--handler",
            "light_jobs:handle",
            "--config",
            "w.toml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "relayflow: InvalidConfig: w.toml: [integrations.mns] transport_options must be a table, "
        "got 3"
    ]
