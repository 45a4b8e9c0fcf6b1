"""`relayflow run` and `relayflow server`, as separate processes, the way people use them."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import EXAMPLES

EXE = str(Path(sys.executable).with_name("relayflow"))
FAILING = """version: v1
type: flow
steps:
  - type: choice
    name: check
    choices:
      - condition: $.n > 3
        steps:
          - type: fail
            name: tooBig
            error: TooBig
            cause: n is too big
"""
TASK = """version: v1
type: flow
steps:
  - type: task
    name: t
    resourceArn: acs:fc:::services/nowhere/functions/nothing
"""


def run(*args, timeout=30):
    return subprocess.run([EXE, "run", *args], capture_output=True, text=True, timeout=timeout)


def test_run_prints_the_output_and_exits_0():
    done = run(str(EXAMPLES / "greeting.yaml"), "--input", '{"names": ["Ada", "Lin"]}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "greeting": "Hello",
        "greeted": ["Ada", "Lin"],
        "size": "several",
    }


def test_run_failure_exits_1_with_status_error_cause(tmp_path):
    flow = tmp_path / "failing.yaml"
    flow.write_text(FAILING)
    done = run(str(flow), "--input", '{"n": 5}')
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "status": "Failed",
        "error": "TooBig",
        "cause": "n is too big",
    }
    ok = run(str(flow), "--input-file", str(_write(tmp_path / "in.json", '{"n": 1}')))
    assert (ok.returncode, json.loads(ok.stdout)) == (0, {})


def test_task_without_an_integration_fails_clearly(tmp_path):
    flow = _write(tmp_path / "task.yaml", TASK)
    done = run(str(flow))
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["error"] == "FnF.RuntimeError"
    assert "acs:fc:::services/nowhere/functions/nothing" in result["cause"]


def test_invalid_flow_input_or_config_exit_2(tmp_path):
    broken = _write(tmp_path / "broken.yaml", "version: v1\ntype: flow\nsteps:\n  - type: pass\n")
    done = run(str(broken))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{broken}:4: steps[0]: a pass step needs 'name'" in done.stderr
    greeting = str(EXAMPLES / "greeting.yaml")
    for args, message in (
        (["--input", "{nope"], "relayflow: InvalidJSON: --input is not valid JSON"),
        (["--input", "[1]"], "relayflow: InvalidJSON: --input must be a JSON object, not list"),
        (["--input-file", str(tmp_path / "missing.json")], "cannot read the input file"),
        (
            ["--config", str(_write(tmp_path / "bad.toml", "[engine]\nstor = 1\n"))],
            "unknown key 'engine.stor'",
        ),
    ):
        done = run(greeting, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr


def test_run_keeps_executions_in_the_configured_store(tmp_path):
    config = _write(
        tmp_path / "relayflow.toml", f'[engine]\nstore = "sqlite:///{tmp_path}/rf.db"\n'
    )
    greeting = str(EXAMPLES / "greeting.yaml")
    first = run(greeting, "--config", str(config), "--name", "once", "--input", '{"names": []}')
    assert first.returncode == 0, first.stderr
    again = run(greeting, "--config", str(config), "--name", "once", "--input", '{"names": []}')
    assert again.returncode == 2
    assert "ExecutionAlreadyExists" in again.stderr


def test_server_stops_on_sigterm_and_refuses_a_second_engine(tmp_path):
    config = _write(
        tmp_path / "relayflow.toml",
        f'[engine]\nstore = "sqlite:///{tmp_path}/rf.db"\n[server]\nport = 0\n',
    )
    server = subprocess.Popen(
        [EXE, "server", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "rf.db.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        second = subprocess.run(
            [EXE, "server", "--config", str(config)], capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 2
        assert "another relayflow engine is running" in second.stderr
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert "stopped" in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
