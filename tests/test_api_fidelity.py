"""The API's details as the service has them: codes, sentences, bounds, booleans, Environment.

Tools built on Serverless Workflow match on codes and on some messages (a tool creates a flow
when DescribeFlow says `Flow '<name>' does not exist`), send `Limit=1000`, write booleans as
`True`, `true` or `TRUE`, and send a flow's Environment as JSON text. These tests hold the
server to that, over raw signed HTTP against the session's shared server
(`tests.api_server`), and check the readers behind it (`relayflow.api.params`,
`relayflow.engine.arguments`) directly.

Every refusal must be one sentence: the service's code, a message of one line that names the
parameter or the resource, and no traceback.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models as sdk_models

from relayflow.api.params import optional_bool, optional_environment, optional_status
from relayflow.engine.arguments import (
    MAX_ENVIRONMENT_BYTES,
    MAX_VARIABLE_VALUE,
    MAX_VARIABLES,
    check_environment,
    environment_variables,
    page_size,
)
from relayflow.errors import CODES, EngineError, already_exists, not_exists
from tests.api_server import TOKEN_FLOW, ApiServer, config_text, serving

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refusal(server: ApiServer, params: dict[str, str], code: str, status: int) -> str:
    """A signed call the server must refuse with ``code`` and ``status``; its one sentence."""
    answer = server.rpc(params)
    doc: dict[str, Any] = answer.json()
    assert (answer.status_code, doc["Code"]) == (status, code), doc
    message: str = doc["Message"]
    assert message and "\n" not in message and "Traceback" not in message, message
    assert len(message) < 600, message
    return message


def create_flow(server: ApiServer, name: str, definition: str = PASS_FLOW, **more: str) -> Any:
    return server.ok(
        {"Action": "CreateFlow", "Name": name, "Definition": definition, "Type": "FDL", **more}
    )


# -- the readers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False)],
)
def test_booleans_are_read_case_insensitively(text, value):
    assert optional_bool({"Enable": text}, "Enable") is value
    assert optional_bool({}, "Enable") is None
    assert optional_bool({"Enable": ""}, "Enable") is None


def test_a_boolean_that_is_neither_is_refused_naming_it():
    with pytest.raises(EngineError) as caught:
        optional_bool({"Enable": "yes"}, "Enable")
    assert (caught.value.code, caught.value.message) == (
        "InvalidArgument",
        "Enable must be true or false, got 'yes'",
    )


def test_status_filter_takes_the_services_values_only():
    for status in ("Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut"):
        assert optional_status({"Status": status}) == status
    with pytest.raises(EngineError, match="Status must be one of Starting, Running"):
        optional_status({"Status": "running"})


@pytest.mark.parametrize(
    ("limit", "top"), [(1000, 1000), (1, 1000), (100, 100)], ids=["flows", "one", "executions"]
)
def test_page_sizes_take_what_the_sdks_send(limit, top):
    assert page_size(limit, 60, top, "Limit") == limit
    assert page_size(None, 60, top, "Limit") == 60
    with pytest.raises(EngineError, match=f"Limit must be from 1 to {top}, got {top + 1}"):
        page_size(top + 1, 60, top, "Limit")


def test_environment_is_kept_as_the_sdks_send_it():
    sent = '{"Variables": [{"Description": "d", "Name": "A", "Value": "1"}, {"Name": "_b"}]}'
    kept = check_environment(sent)
    assert environment_variables(kept) == [
        {"Name": "A", "Value": "1", "Description": "d"},
        {"Name": "_b", "Value": "", "Description": ""},
    ]
    assert check_environment(kept) == kept  # idempotent: the engine checks it again
    assert check_environment({"Variables": []}) == check_environment("") == ""
    assert optional_environment({}) is None  # absent: UpdateFlow keeps the flow's
    assert optional_environment({"Environment": ""}) == ""  # empty: UpdateFlow clears it


@pytest.mark.parametrize(
    ("environment", "says"),
    [
        ("[]", "must be a JSON object"),
        ("{", "is not valid JSON"),
        ('{"Vars": []}', "has 'Vars'; the only field is Variables"),
        ('{"Variables": {}}', "Variables must be a JSON array"),
        ('{"Variables": [{"Name": "a b"}]}', "Variables[0].Name 'a b' must be 1 to 128"),
        ('{"Variables": [{"Name": "A"}, {"Name": "A"}]}', "names the variable 'A' twice"),
        ('{"Variables": [{"Name": "A", "Value": 1}]}', "variable 'A': Value must be text"),
        ('{"Variables": [{"Name": "A", "Secret": "x"}]}', "Variables[0] has 'Secret'"),
        (
            json.dumps({"Variables": [{"Name": f"V{i}"} for i in range(MAX_VARIABLES + 1)]}),
            f"has {MAX_VARIABLES + 1} variables, more than {MAX_VARIABLES}",
        ),
        (
            json.dumps({"Variables": [{"Name": "A", "Value": "x" * (MAX_VARIABLE_VALUE + 1)}]}),
            f"at most {MAX_VARIABLE_VALUE} characters",
        ),
        (
            json.dumps(
                {
                    "Variables": [
                        {"Name": f"V{i}", "Value": "x" * MAX_VARIABLE_VALUE}
                        for i in range(MAX_VARIABLES)
                    ]
                }
            ),
            f"is larger than {MAX_ENVIRONMENT_BYTES} bytes",
        ),
    ],
    ids=[
        "array",
        "not-json",
        "unknown-field",
        "variables-object",
        "bad-name",
        "twice",
        "number-value",
        "unknown-variable-field",
        "too-many",
        "long-value",
        "too-large",
    ],
)
def test_a_bad_environment_is_refused_naming_what_is_wrong(environment, says):
    with pytest.raises(EngineError) as caught:
        check_environment(environment)
    assert caught.value.code == "InvalidArgument"
    assert caught.value.message.startswith("Environment ")
    assert says in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_and_taken_resources_are_written_as_the_service_writes_them():
    gone = not_exists("FlowNotExists", "Flow", "orders")
    assert (gone.code, gone.status, gone.message) == (
        "FlowNotExists",
        404,
        "Flow 'orders' does not exist",
    )
    inner = not_exists("ScheduleNotExists", "Schedule", "s", "orders")
    assert inner.message == "Schedule 's' does not exist in flow 'orders'"
    taken = already_exists("FlowAliasAlreadyExists", "Flow alias", "live", "orders")
    assert (taken.status, taken.message) == (
        409,
        "Flow alias 'live' already exists in flow 'orders'",
    )
    # Every code the engine refuses with has its status; not-found codes are 404s.
    assert all(CODES[code] == 404 for code in CODES if code.endswith("NotExists"))
    assert all(CODES[code] == 409 for code in CODES if code.endswith("AlreadyExists"))


# -- the server ------------------------------------------------------------------------------


def test_missing_flow_execution_schedule_alias_and_version_sentences(api_server):
    missing = unique("fid-none")
    for action, params in [
        ("DescribeFlow", {"Name": missing}),
        ("UpdateFlow", {"Name": missing, "Description": "x"}),
        ("DeleteFlow", {"Name": missing}),
        ("StartExecution", {"FlowName": missing}),
        ("ListExecutions", {"FlowName": missing}),
        (
            "CreateSchedule",
            {"FlowName": missing, "ScheduleName": "s", "CronExpression": "0 * * * * *"},
        ),
        ("PublishFlowVersion", {"FlowName": missing}),
    ]:
        message = refusal(api_server, {"Action": action, **params}, "FlowNotExists", 404)
        assert message == f"Flow '{missing}' does not exist", action

    flow = unique("fid-flow")
    create_flow(api_server, flow)
    cases = [
        ("DescribeExecution", {"ExecutionName": "e"}, "ExecutionNotExists", "Execution 'e'"),
        ("DescribeSchedule", {"ScheduleName": "s"}, "ScheduleNotExists", "Schedule 's'"),
        ("DescribeFlowAlias", {"Name": "a"}, "FlowAliasNotExists", "Flow alias 'a'"),
        ("DeleteFlowVersion", {"FlowVersion": "7"}, "FlowVersionNotExists", "Flow version '7'"),
    ]
    for action, params, code, kind in cases:
        message = refusal(api_server, {"Action": action, "FlowName": flow, **params}, code, 404)
        assert message == f"{kind} does not exist in flow '{flow}'", action


def test_bad_input_named_in_the_done_when_gets_the_code_and_one_sentence(api_server):
    flow = unique("fid-bad")
    create_flow(api_server, flow)
    five = refusal(
        api_server,
        {
            "Action": "CreateSchedule",
            "FlowName": flow,
            "ScheduleName": "five",
            "CronExpression": "*/5 * * * *",
        },
        "InvalidArgument",
        400,
    )
    assert "CronExpression" in five
    api_server.ok({"Action": "PublishFlowVersion", "FlowName": flow})
    weights = refusal(
        api_server,
        {
            "Action": "CreateFlowAlias",
            "FlowName": flow,
            "Name": "half",
            "RoutingConfigurations": json.dumps([{"Version": "1", "Weight": 50}]),
        },
        "InvalidArgument",
        400,
    )
    assert "50" in weights
    nothing = refusal(
        api_server,
        {"Action": "StartExecution", "FlowName": flow, "Qualifier": "nothing"},
        "FlowAliasNotExists",
        404,
    )
    assert "'nothing'" in nothing
    express = refusal(
        api_server,
        {
            "Action": "CreateFlow",
            "Name": unique("fid-express"),
            "Definition": TOKEN_FLOW,
            "Type": "FDL",
            "ExecutionMode": "Express",
        },
        "InvalidDefinition",
        400,
    )
    assert "waitForCallback" in express


@pytest.mark.parametrize("enable", ["true", "True", "TRUE", "false", "FALSE"])
def test_schedules_read_enable_case_insensitively(api_server, enable):
    flow = unique("fid-enable")
    create_flow(api_server, flow)
    created = api_server.ok(
        {
            "Action": "CreateSchedule",
            "FlowName": flow,
            "ScheduleName": "s",
            "CronExpression": "0 0 * * * *",
            "Enable": enable,
        }
    )
    assert created["Enable"] is (enable.lower() == "true")


def test_limits_as_the_sdks_send_them(api_server):
    flow = unique("fid-limit")
    create_flow(api_server, flow)
    assert api_server.ok({"Action": "ListFlows", "Limit": "1000"})["Flows"]
    api_server.ok({"Action": "ListExecutions", "FlowName": flow, "Limit": "100"})
    api_server.ok({"Action": "ListSchedules", "FlowName": flow, "Limit": "1000"})
    api_server.ok({"Action": "ListFlowVersions", "FlowName": flow, "Limit": "1000"})
    api_server.ok({"Action": "ListFlowAliases", "FlowName": flow, "Limit": "1000"})
    for action, top in [
        ("ListFlows", 1000),
        ("ListExecutions", 100),
        ("ListSchedules", 1000),
        ("ListFlowVersions", 1000),
        ("ListFlowAliases", 1000),
    ]:
        message = refusal(
            api_server,
            {"Action": action, "FlowName": flow, "Limit": str(top + 1)},
            "InvalidArgument",
            400,
        )
        assert message == f"Limit must be from 1 to {top}, got {top + 1}", action
    message = refusal(api_server, {"Action": "ListFlows", "Limit": "ten"}, "InvalidArgument", 400)
    assert message == "Limit must be a whole number, got 'ten'"


def test_environment_round_trip_and_clearing(api_server):
    name = unique("fid-env")
    sent = {"Variables": [{"Name": "A", "Value": "1", "Description": "first"}]}
    created = create_flow(api_server, name, Environment=json.dumps(sent))
    assert created["Environment"] == sent
    kept = api_server.ok({"Action": "UpdateFlow", "Name": name, "Description": "x"})
    assert kept["Environment"] == sent  # UpdateFlow without Environment keeps it
    cleared = api_server.ok({"Action": "UpdateFlow", "Name": name, "Environment": ""})
    assert cleared["Environment"] == {"Variables": []}
    message = refusal(
        api_server,
        {"Action": "UpdateFlow", "Name": name, "Environment": '{"Variables": [{"Name": "9"}]}'},
        "InvalidArgument",
        400,
    )
    assert message.startswith("Environment Variables[0].Name '9'")


def test_unknown_action_suggests_the_nearest(api_server):
    message = refusal(api_server, {"Action": "DescribeFlows"}, "ActionNotSupported", 400)
    assert "did you mean DescribeFlow?" in message


def test_without_keys_get_may_send_update_map_run_but_not_a_write(tmp_path):
    """The current SDK sends UpdateMapRun as GET; it changes nothing, so a key-less server
    lets it through (to its MapRunNotExists), while GET of a real write stays refused."""
    with serving(tmp_path, config_text(plugin=False)) as server:
        flow = unique("fid-keyless")
        server.post({"Action": "CreateFlow", "Name": flow, "Definition": PASS_FLOW})
        server.post({"Action": "StartExecution", "FlowName": flow, "ExecutionName": "e"})
        query = {"Action": "UpdateMapRun", "FlowName": flow, "ExecutionName": "e"}
        answer = server.http.get("/", params={**query, "MapRunName": "m"})
        assert (answer.status_code, answer.json()["Code"]) == (404, "MapRunNotExists")
        write = server.http.get("/", params={"Action": "DeleteFlow", "Name": flow})
        assert (write.status_code, write.json()["Code"]) == (405, "MethodNotAllowed")


# -- field names against the current SDK's response models ----------------------------------

# What the answers leave out of a model's fields, on purpose (docs/api.md says why): relayflow
# keeps no resource groups or external storage, and a successful StartSyncExecution has no
# error to give.
LEFT_OUT = {
    ("CreateFlow", ""): {"ResourceGroupId"},
    ("UpdateFlow", ""): {"ResourceGroupId", "ExternalStorageLocation"},
    ("DescribeFlow", ""): {"ResourceGroupId"},
    ("ListFlows", "Flows"): {"ResourceGroupId"},
    ("StartSyncExecution", ""): {"ErrorCode", "ErrorMessage"},
}


def _model_fields(cls: type) -> set[str]:
    """The answer keys an SDK response model reads (its `from_map`)."""
    return set(re.findall(r"m\.get\('(\w+)'\)", inspect.getsource(cls.from_map)))


def test_answers_carry_every_field_the_current_sdks_models_read(api_server):
    flow, express = unique("fid-fields"), unique("fid-fields-x")
    routes = json.dumps([{"Version": "1", "Weight": 100}])
    calls: list[tuple[str, dict[str, str]]] = [
        ("CreateFlow", {"Name": flow, "Definition": PASS_FLOW, "Type": "FDL"}),
        ("CreateFlow", {"Name": express, "Definition": PASS_FLOW, "ExecutionMode": "Express"}),
        ("UpdateFlow", {"Name": flow, "Description": "d"}),
        ("DescribeFlow", {"Name": flow}),
        ("ListFlows", {"Limit": "1000"}),
        ("StartExecution", {"FlowName": flow, "ExecutionName": "e"}),
        ("DescribeExecution", {"FlowName": flow, "ExecutionName": "e"}),
        ("ListExecutions", {"FlowName": flow}),
        ("GetExecutionHistory", {"FlowName": flow, "ExecutionName": "e"}),
        ("StartSyncExecution", {"FlowName": express}),
        (
            "CreateSchedule",
            {"FlowName": flow, "ScheduleName": "s", "CronExpression": "0 0 * * * *"},
        ),
        ("DescribeSchedule", {"FlowName": flow, "ScheduleName": "s"}),
        ("UpdateSchedule", {"FlowName": flow, "ScheduleName": "s", "Description": "x"}),
        ("ListSchedules", {"FlowName": flow}),
        ("PublishFlowVersion", {"FlowName": flow}),
        ("ListFlowVersions", {"FlowName": flow}),
        ("CreateFlowAlias", {"FlowName": flow, "Name": "a", "RoutingConfigurations": routes}),
        ("DescribeFlowAlias", {"FlowName": flow, "Name": "a"}),
        ("UpdateFlowAlias", {"FlowName": flow, "Name": "a", "Description": "z"}),
        ("ListFlowAliases", {"FlowName": flow}),
        ("DescribeRegions", {}),
    ]
    missing: dict[tuple[str, str], set[str]] = {}
    for action, params in calls:
        doc = {**api_server.ok({"Action": action, **params}), "RequestId": ""}
        body = getattr(sdk_models, f"{action}ResponseBody")
        gone = _model_fields(body) - set(doc)
        if gone:
            missing[(action, "")] = gone
        for key, value in doc.items():
            nested = getattr(sdk_models, f"{action}ResponseBody{key}", None)
            item = value[0] if isinstance(value, list) and value else value
            if nested is None or key == "Environment" or not isinstance(item, dict):
                continue
            gone = _model_fields(nested) - set(item)
            if gone:
                missing[(action, key)] = gone
    assert missing == LEFT_OUT
