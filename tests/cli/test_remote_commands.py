"""The `flows` / `executions` / `tasks` commands against the strict fake server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner

from relayflow.cli import executions as executions_module
from relayflow.cli import flows as flows_module
from relayflow.cli import tasks as tasks_module
from relayflow.cli.executions import executions
from relayflow.cli.flows import flows
from relayflow.cli.tasks import tasks
from tests.client.fake_server import (
    DEFINITION,
    KEY_ID,
    SECRET,
    FakeServer,
    event_doc,
    execution_doc,
    free_port,
    serve_fake,
)


def register(main: click.Group) -> None:
    """Add the three remote groups the way the relayflow command does."""
    for module in (flows_module, executions_module, tasks_module):
        module.register(main)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A strict fake of the API server; the test fails if a command broke the protocol."""
    with serve_fake() as server:
        yield server


@pytest.fixture
def cli(fake, tmp_path, monkeypatch):
    """Run `relayflow <args>` with a relayflow.toml that points at the fake server."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "RELAYFLOW_CONFIG",
        "RELAYFLOW_CLIENT__ENDPOINT",
        "RELAYFLOW_CLIENT__ACCESS_KEY_ID",
        "RELAYFLOW_CLIENT__ACCESS_KEY_SECRET",
        "RELAYFLOW_CLIENT__TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "client.toml"  # not ./relayflow.toml: --config must be what finds it
    config.write_text(
        f'[client]\nendpoint = "{fake.url}"\naccess_key_id = "{KEY_ID}"\n'
        f'access_key_secret = "{SECRET}"\ntimeout_seconds = 5\n'
    )

    @click.group()
    def main() -> None:
        pass

    register(main)
    runner = CliRunner()

    def run(*args: str, config_path: str | None = str(config), input: str | None = None):
        extra = ["--config", config_path] if config_path else []
        result = runner.invoke(main, [*args, *extra], input=input)
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


def test_register_adds_the_three_groups():
    @click.group()
    def main() -> None:
        pass

    register(main)
    assert {"flows", "executions", "tasks"} <= set(main.commands)
    assert main.commands["flows"] is flows and main.commands["executions"] is executions
    assert main.commands["tasks"] is tasks
    assert set(flows.commands) == {
        "create",
        "update",
        "describe",
        "list",
        "delete",
        "publish",
        "versions",
        "delete-version",
    }
    assert set(executions.commands) == {
        "start",
        "describe",
        "list",
        "history",
        "stop",
        "redrive",
        "waiting",
        "purge",
        "tree",
    }
    assert set(tasks.commands) == {"succeed", "fail"}


@pytest.mark.parametrize(
    "path",
    [
        ("flows", "create"),
        ("flows", "update"),
        ("flows", "describe"),
        ("flows", "list"),
        ("flows", "delete"),
        ("executions", "start"),
        ("executions", "describe"),
        ("executions", "list"),
        ("executions", "history"),
        ("executions", "stop"),
        ("tasks", "succeed"),
        ("tasks", "fail"),
    ],
)
def test_every_command_teaches_with_an_example(cli, path):
    result = cli(*path, "--help", config_path=None)
    assert result.exit_code == 0
    assert re.search(rf"^ +relayflow {' '.join(path)}\b", result.stdout, re.M)
    assert "--config" in result.stdout


def test_flows_create_update_describe_list_delete(cli, fake, tmp_path):
    definition = tmp_path / "orders.yaml"
    definition.write_text(DEFINITION)
    result = cli("flows", "create", "orders", "--definition", str(definition))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "created flow orders (id 5a0b5f6e-1c47-4a8e-9b1e-2f5a8e2f0c11)"
    assert fake.last().params == {
        "Name": "orders",
        "Definition": DEFINITION,
        "Description": "",
        "Type": "FDL",
    }

    result = cli("flows", "update", "orders", "--definition", "-", input="version: v1\n")
    assert result.exit_code == 0 and result.stdout.strip() == "updated flow orders"
    assert fake.last().params == {"Name": "orders", "Definition": "version: v1\n"}

    result = cli("flows", "describe", "orders")
    assert result.exit_code == 0
    assert "Name:        orders" in result.stdout and "Description: order intake" in result.stdout
    assert result.stdout.rstrip().endswith("name: hello")

    result = cli("flows", "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "MODIFIED", "DESCRIPTION"]
    assert lines[1].split() == ["orders", "FDL", "2024-01-02T03:04:06.007Z", "order", "intake"]
    assert lines[2].split() == ["refunds", "FDL", "2024-01-02T03:04:06.007Z", "-"]

    result = cli("flows", "delete", "orders", "--yes")
    assert result.exit_code == 0 and result.stdout.strip() == "deleted flow orders"
    assert fake.actions() == ["CreateFlow", "UpdateFlow", "DescribeFlow", "ListFlows", "DeleteFlow"]


def test_flows_delete_without_a_terminal_needs_yes(cli, fake):
    result = cli("flows", "delete", "orders")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("relayflow: ConfirmationRequired: deleting the flow orders ")
    assert "--yes" in result.stderr and result.stderr.count("\n") == 1
    assert fake.requests == []
    assert cli("flows", "delete", "orders", "-y").exit_code == 0
    assert fake.actions() == ["DeleteFlow"]


def test_flows_delete_asks_on_a_terminal(cli, fake, monkeypatch):
    from relayflow.cli import flows as module

    monkeypatch.setattr(module, "_interactive", lambda: True)
    result = cli("flows", "delete", "orders", input="n\n")
    assert result.exit_code == 1 and "history of all its executions?" in result.output
    assert fake.requests == []
    result = cli("flows", "delete", "orders", input="y\n")
    assert result.exit_code == 0 and "deleted flow orders" in result.stdout
    assert fake.actions() == ["DeleteFlow"]


def test_flows_delete_help_says_it_asks():
    result = CliRunner().invoke(flows, ["delete", "--help"])
    text = " ".join(result.stdout.split())
    assert "asks for confirmation unless --yes (-y)" in text, text


def test_every_data_command_has_json(cli, fake, tmp_path):
    definition = tmp_path / "orders.yaml"
    definition.write_text(DEFINITION)
    for args, check in (
        (("flows", "create", "orders", "--definition", str(definition)), lambda d: d["Name"]),
        (("flows", "update", "orders", "--definition", str(definition)), lambda d: d["Name"]),
        (("flows", "describe", "orders"), lambda d: d["Definition"]),
        (("flows", "list"), lambda d: [f["Name"] for f in d["Flows"]] == ["orders", "refunds"]),
        (("executions", "start", "orders"), lambda d: d["Status"] == "Running"),
        (("executions", "list", "orders"), lambda d: len(d["Executions"]) == 2),
        (("executions", "stop", "orders", "order-7"), lambda d: d["Status"] == "Stopped"),
        (("tasks", "succeed", "t", "--output", "{}"), lambda d: d == {"EventId": 12}),
        (("tasks", "fail", "t", "--error", "E"), lambda d: d == {"EventId": 12}),
    ):
        result = cli(*args, "--json")
        assert result.exit_code == 0, (args, result.output)
        assert check(json.loads(result.stdout)), (args, result.stdout)


def test_start_again_with_another_input_warns(cli, fake):
    fake.on("StartExecution", lambda p: execution_doc("order-7", "Running", p["FlowName"]))
    same = cli("executions", "start", "orders", "--name", "order-7", "--input", '{"id": 7}')
    assert same.exit_code == 0 and same.stdout == "order-7\n" and same.stderr == ""
    other = cli("executions", "start", "orders", "--name", "order-7", "--input", '{"id": 8}')
    assert other.exit_code == 0 and other.stdout == "order-7\n"
    assert other.stderr.startswith("relayflow: warning: execution order-7 of orders was already")
    assert "the input given was not used" in other.stderr and other.stderr.count("\n") == 1


def test_unreadable_definition_is_exit_2_and_nothing_is_sent(cli, fake):
    result = cli("flows", "create", "orders", "--definition", "missing.yaml")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "relayflow: FileNotReadable: cannot read the definition missing.yaml: No such file or directory\n"
    )
    assert fake.requests == []


def test_flow_refused_by_the_server_is_exit_1(cli, fake, tmp_path):
    fake.fail("CreateFlow", 409, "FlowAlreadyExists", "flow orders already exists")
    (tmp_path / "f.yaml").write_text(DEFINITION)
    result = cli("flows", "create", "orders", "--definition", str(tmp_path / "f.yaml"))
    assert result.exit_code == 1
    assert result.stderr == "relayflow: FlowAlreadyExists: flow orders already exists\n"
    assert result.stdout == ""


@pytest.mark.parametrize("action", ["create", "update"])
def test_invalid_definition_names_the_file_and_is_exit_2(cli, fake, tmp_path, action):
    verb = "CreateFlow" if action == "create" else "UpdateFlow"
    broken = tmp_path / "f.yaml"
    broken.write_text("version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n    goto: x\n")
    problem = "steps[0].goto: unknown attribute 'goto'; a pass step takes: type, name, "
    problem += "inputMappings, outputMappings, end"
    fake.fail(verb, 400, "InvalidDefinition", problem)  # what the server answers: no line
    result = cli("flows", action, "orders", "--definition", str(broken))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"relayflow: InvalidDefinition: {broken}:6: {problem}\n"
    # A problem the local check does not see (the server's own limits) still names the file.
    fake.fail(verb, 400, "InvalidDefinition", "the definition has more than 5 steps")
    result = cli("flows", action, "orders", "--definition", "-", input=DEFINITION)
    assert result.exit_code == 2
    assert result.stderr == (
        "relayflow: InvalidDefinition: <stdin>: the definition has more than 5 steps\n"
    )


def test_executions_start_prints_the_name(cli, fake):
    result = cli("executions", "start", "orders", "--input", '{"id": 7}', "--name", "order-7")
    assert result.exit_code == 0 and result.stdout == "order-7\n"
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "Input": '{"id":7}',
    }

    result = cli("executions", "start", "orders")
    assert result.stdout == "generated-1\n"
    assert fake.last().params == {"FlowName": "orders"}


def test_executions_start_input_file(cli, fake, tmp_path):
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    result = cli("executions", "start", "orders", "--input-file", "in.json")
    assert result.exit_code == 0
    assert json.loads(fake.last().params["Input"]) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "relayflow: InvalidJSON: --input is not valid JSON: "),
        ("[1, 2]", "relayflow: InvalidJSON: --input must be a JSON object, not list"),
    ],
)
def test_executions_start_bad_input_is_exit_2(cli, fake, text, message):
    result = cli("executions", "start", "orders", "--input", text)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    ("final", "code"), [("Succeeded", 0), ("Failed", 1), ("Stopped", 1), ("TimedOut", 1)]
)
def test_executions_start_wait_prints_the_end_and_exits_by_status(cli, fake, final, code):
    fake.sequence("DescribeExecution", execution_doc(status="Running"), execution_doc(status=final))
    result = cli(
        "executions", "start", "orders", "--input", '{"id": 7}', "--name", "order-7", "--wait"
    )
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["Name"] == "order-7" and doc["FlowName"] == "orders" and doc["Status"] == final
    assert {"Input", "StartedTime", "StoppedTime"} <= doc.keys()
    assert "FlowDefinition" not in doc
    if final == "Succeeded":
        assert json.loads(doc["Output"]) == {"id": 7, "ok": True}
    else:
        assert (doc["Error"], doc["Cause"]) == ("Booking.SoldOut", "no seats")
    assert fake.actions() == ["StartExecution", "DescribeExecution", "DescribeExecution"]
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "WaitTimeSeconds": "60",
    }


def test_executions_describe_json_and_wait(cli, fake):
    result = cli("executions", "describe", "orders", "order-7", "--wait", "30", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert list(doc) == [
        "Name",
        "FlowName",
        "Status",
        "Input",
        "Output",
        "StartedTime",
        "StoppedTime",
    ]
    assert doc["Status"] == "Succeeded" and doc["Input"] == '{"id": 7}'
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "WaitTimeSeconds": "30",
    }


def test_executions_describe_readable(cli, fake):
    fake.on("DescribeExecution", lambda p: execution_doc(status="Running"))
    result = cli("executions", "describe", "orders", "order-7")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "Name:    order-7",
        "Flow:    orders",
        "Status:  Running",
        "Started: 2024-01-02T03:04:05.006Z",
        "Stopped: -",
        'Input:   {"id":7}',
        "Output:  -",
    ]
    assert "WaitTimeSeconds" not in fake.last().params


def test_executions_describe_wait_over_60_is_a_usage_error(cli, fake):
    result = cli("executions", "describe", "orders", "order-7", "--wait", "61")
    assert result.exit_code == 2 and fake.requests == []


def test_executions_describe_missing_is_exit_1(cli, fake):
    fake.fail("DescribeExecution", 404, "ExecutionNotExists", "no execution order-9 of flow orders")
    result = cli("executions", "describe", "orders", "order-9", "--json")
    assert result.exit_code == 1
    assert result.stderr == "relayflow: ExecutionNotExists: no execution order-9 of flow orders\n"


def test_executions_list_table_and_status(cli, fake):
    fake.sequence(
        "ListExecutions",
        {"Executions": [execution_doc("order-1", "Running")], "NextToken": "order-1"},
        {"Executions": [execution_doc("order-2", "Succeeded")], "NextToken": ""},
    )
    result = cli("executions", "list", "orders", "--status", "running")
    assert result.exit_code == 0
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["NAME", "STATUS", "STARTED", "STOPPED"],
        ["order-1", "Running", "2024-01-02T03:04:05.006Z", "-"],
        ["order-2", "Succeeded", "2024-01-02T03:04:05.006Z", "2024-01-02T03:04:09.010Z"],
    ]
    assert [r.params for r in fake.requests] == [
        {"FlowName": "orders", "Status": "Running"},
        {"FlowName": "orders", "Status": "Running", "NextToken": "order-1"},
    ]


def test_executions_list_rejects_unknown_status(cli, fake):
    result = cli("executions", "list", "orders", "--status", "Sleeping")
    assert result.exit_code == 2 and fake.requests == []


def _two_history_pages(fake: FakeServer) -> None:
    def history(p: dict[str, str]) -> dict[str, Any]:
        if not p.get("NextToken"):
            return {
                "Events": [
                    event_doc(1, "ExecutionStarted"),
                    event_doc(2, "TaskSubmitted", "book", {"messageId": "x" * 100}),
                ],
                "NextToken": "2",
            }
        return {
            "Events": [event_doc(3, "TaskSucceeded", "book", {"output": {"ok": True}})],
            "NextToken": "",
        }

    fake.on("GetExecutionHistory", history)


def test_executions_history_json_follows_pages(cli, fake):
    _two_history_pages(fake)
    result = cli("executions", "history", "orders", "order-7", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert list(doc) == ["Events"]
    assert [e["EventId"] for e in doc["Events"]] == [1, 2, 3]
    assert set(doc["Events"][0]) == {
        "EventId",
        "ScheduleEventId",
        "StepName",
        "Type",
        "Time",
        "EventDetail",
    }
    assert json.loads(doc["Events"][2]["EventDetail"]) == {"output": {"ok": True}}
    assert [r.params.get("NextToken") for r in fake.requests] == [None, "2"]


def test_executions_history_table(cli, fake):
    _two_history_pages(fake)
    result = cli("executions", "history", "orders", "order-7")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "TYPE", "STEP", "DETAIL"]
    assert lines[1].split() == ["1", "2024-01-02T03:04:01.000Z", "ExecutionStarted", "-"]
    assert lines[2].split()[:4] == ["2", "2024-01-02T03:04:02.000Z", "TaskSubmitted", "book"]
    assert lines[2].endswith("…") and len(lines[2].split()[4]) == 60
    assert lines[3].split() == [
        "3",
        "2024-01-02T03:04:03.000Z",
        "TaskSucceeded",
        "book",
        '{"output":{"ok":true}}',
    ]


def test_executions_stop(cli, fake):
    result = cli(
        "executions",
        "stop",
        "orders",
        "order-7",
        "--error",
        "Cancelled",
        "--cause",
        "customer called",
    )
    assert result.exit_code == 0 and result.stdout == "order-7: Stopped\n"
    assert fake.last().params == {
        "FlowName": "orders",
        "ExecutionName": "order-7",
        "Error": "Cancelled",
        "Cause": "customer called",
    }
    fake.fail("StopExecution", 409, "ExecutionNotRunning", "order-7 has ended")
    result = cli("executions", "stop", "orders", "order-7")
    assert (
        result.exit_code == 1
        and result.stderr == "relayflow: ExecutionNotRunning: order-7 has ended\n"
    )


def test_tasks_succeed_and_fail(cli, fake):
    result = cli("tasks", "succeed", "tok-1", "--output", '{"booked": true}')
    assert result.exit_code == 0 and result.stdout == "reported TaskSucceeded (event 12)\n"
    assert fake.last().params == {"TaskToken": "tok-1", "Output": '{"booked":true}'}

    result = cli("tasks", "fail", "tok-2", "--error", "Booking.SoldOut", "--cause", "no seats")
    assert result.exit_code == 0 and result.stdout == "reported TaskFailed (event 12)\n"
    assert fake.last().params == {
        "TaskToken": "tok-2",
        "Error": "Booking.SoldOut",
        "Cause": "no seats",
    }


def test_tasks_duplicate_report_is_exit_1(cli, fake):
    fake.fail(
        "ReportTaskSucceeded",
        409,
        "TaskAlreadyCompleted",
        "the task was completed by an earlier report",
    )
    result = cli("tasks", "succeed", "tok", "--output", "{}")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "relayflow: TaskAlreadyCompleted: the task was completed by an earlier report\n"
    )


def test_tasks_bad_output_is_exit_2(cli, fake):
    result = cli("tasks", "succeed", "tok", "--output", '"text"')
    assert result.exit_code == 2
    assert result.stderr == "relayflow: InvalidJSON: --output must be a JSON object, not str\n"
    result = cli("tasks", "fail", "tok", "--cause", "x")
    assert result.exit_code == 2  # --error is required
    assert fake.requests == []


def test_unreachable_server_is_one_line_exit_1(cli, tmp_path):
    config = tmp_path / "down.toml"
    config.write_text(f'[client]\nendpoint = "http://127.0.0.1:{free_port()}"\n')
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "relayflow: ConnectionFailed: cannot reach the server at http://127.0.0.1:"
    )
    assert result.stderr.count("\n") == 1


def test_bad_configuration_is_exit_2(cli, fake, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[client\n")
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"relayflow: InvalidConfig: {config}: not valid TOML")
    config.write_text('[client]\naccess_key_id = "only-the-id"\n')
    result = cli("flows", "list", config_path=str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "relayflow: InvalidConfig: access_key_id is set but access_key_secret"
    )
    assert fake.requests == []


def test_wrong_secret_in_configuration_is_exit_1(cli, fake, tmp_path):
    config = tmp_path / "wrong.toml"
    config.write_text(
        f'[client]\nendpoint = "{fake.url}"\naccess_key_id = "{KEY_ID}"\naccess_key_secret = "wrong-secret"\n'
    )
    result = cli("flows", "describe", "orders", config_path=str(config))
    assert result.exit_code == 1
    assert result.stderr == "relayflow: SignatureDoesNotMatch: the signature does not match\n"


def test_environment_configures_the_client(cli, fake, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_CLIENT__ENDPOINT", fake.url)
    monkeypatch.setenv("RELAYFLOW_CLIENT__ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("RELAYFLOW_CLIENT__ACCESS_KEY_SECRET", SECRET)
    result = cli("executions", "start", "orders", config_path=None)
    assert result.exit_code == 0, result.output
    assert fake.actions() == ["StartExecution"]
