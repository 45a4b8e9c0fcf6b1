"""The `relayflow flows|executions|tasks` commands against a real server, as a worker uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.api_server import KEYS, QUEUE_ARN

EXE = str(Path(sys.executable).with_name("relayflow"))
FLOW = f"""version: v1
type: flow
steps:
  - type: task
    name: ask
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: $input.job
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
  - type: task
    name: confirm
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    inputMappings:
      - target: taskToken
        source: $context.task.token
    catch:
      - errors: [Rejected]
        goto: rejected
  - type: succeed
    name: done
  - type: fail
    name: rejected
    error: JobRejected
    cause: the confirmation was refused
"""


def client_config(api_server, role: str) -> str:
    key_id, secret = KEYS[role]
    path = api_server.folder / f"client-{role}.toml"
    path.write_text(
        f'[client]\nendpoint = "{api_server.url}"\naccess_key_id = "{key_id}"\n'
        f'access_key_secret = "{secret}"\n'
    )
    return str(path)


def run(api_server, role: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, *args, "--config", client_config(api_server, role)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_worker_finishes_tasks_with_the_cli(api_server, tmp_path):
    definition = tmp_path / "job.yaml"
    definition.write_text(FLOW)
    created = run(
        api_server, "admin", "flows", "create", "cli-jobs", "--definition", str(definition)
    )
    assert created.returncode == 0, created.stderr
    started = run(
        api_server,
        "admin",
        "executions",
        "start",
        "cli-jobs",
        "--name",
        "j1",
        "--input",
        '{"job": "print"}',
    )
    assert (started.returncode, started.stdout.strip()) == (0, "j1")

    (ask,) = api_server.wait_messages("cli-jobs", "j1", 1)
    done = run(api_server, "worker", "tasks", "succeed", ask["token"], "--output", '{"pages": 3}')
    assert done.returncode == 0, done.stderr
    again = run(api_server, "worker", "tasks", "succeed", ask["token"], "--output", "{}")
    assert again.returncode == 1
    assert again.stderr.startswith("relayflow: TaskAlreadyCompleted: ")

    confirm = api_server.wait_messages("cli-jobs", "j1", 2)[1]
    refused = run(api_server, "worker", "executions", "start", "cli-jobs")
    assert refused.returncode == 1 and "AccessDenied" in refused.stderr
    failed = run(
        api_server,
        "worker",
        "tasks",
        "fail",
        confirm["token"],
        "--error",
        "Rejected",
        "--cause",
        "no",
    )
    assert failed.returncode == 0, failed.stderr

    described = run(
        api_server, "reader", "executions", "describe", "cli-jobs", "j1", "--wait", "10", "--json"
    )
    doc = json.loads(described.stdout)
    assert (doc["Status"], doc["Name"], json.loads(doc["Input"])) == (
        "Failed",
        "j1",
        {"job": "print"},
    )
    history = json.loads(
        run(api_server, "reader", "executions", "history", "cli-jobs", "j1", "--json").stdout
    )
    types = [e["Type"] for e in history["Events"]]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionFailed"
    assert [e["EventId"] for e in history["Events"]] == list(range(1, len(types) + 1))
    table = run(api_server, "reader", "executions", "history", "cli-jobs", "j1")
    assert "TaskSucceeded" in table.stdout and "ask" in table.stdout
    listed = run(api_server, "reader", "executions", "list", "cli-jobs", "--status", "Failed")
    assert "j1" in listed.stdout


def test_start_wait_and_stop(api_server, tmp_path):
    definition = tmp_path / "job.yaml"
    definition.write_text(FLOW)
    assert (
        run(
            api_server, "admin", "flows", "create", "cli-stop", "--definition", str(definition)
        ).returncode
        == 0
    )
    waiting = subprocess.Popen(
        [
            EXE,
            "executions",
            "start",
            "cli-stop",
            "--name",
            "s1",
            "--wait",
            "--config",
            client_config(api_server, "admin"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    api_server.wait_messages("cli-stop", "s1", 1)
    stopped = run(
        api_server,
        "admin",
        "executions",
        "stop",
        "cli-stop",
        "s1",
        "--error",
        "Halt",
        "--cause",
        "by the test",
    )
    assert stopped.returncode == 0, stopped.stderr
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, err
    assert json.loads(out)["Status"] == "Stopped"
    flows = run(api_server, "reader", "flows", "list")
    assert "cli-stop" in flows.stdout
    assert run(api_server, "admin", "flows", "delete", "cli-stop", "--yes").returncode == 0
    gone = run(api_server, "reader", "flows", "describe", "cli-stop")
    assert gone.returncode == 1 and "FlowNotExists" in gone.stderr
