"""PurgeExecutions and DeleteFlow's Force through a real `relayflow server`.

The module runs a server of its own (a purge without FlowName would take the ended
executions of every other test module from the session's shared server). Executions end
before a time the test reads from the server's answers, then more end after it, so no test
depends on how long anything took.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkfnf.request.v20190315 import DeleteFlowRequest

from tests.api_server import KEYS, TOKEN_FLOW, ApiServer, config_text, serving

PASS = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with serving(tmp_path_factory.mktemp("retention-api"), config_text(keys=KEYS)) as running:
        yield running


def flow(server: ApiServer, definition: str = PASS) -> str:
    name = "ret_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": name, "Definition": definition, "Type": "FDL"})
    return name


def run_to_end(server: ApiServer, flow_name: str, names: list[str]) -> str:
    """Run pass executions to their end; the latest StoppedTime among them."""
    latest = ""
    for name in names:
        server.ok({"Action": "StartExecution", "FlowName": flow_name, "ExecutionName": name})
        doc = server.ok(
            {
                "Action": "DescribeExecution",
                "FlowName": flow_name,
                "ExecutionName": name,
                "WaitTimeSeconds": "5",
            }
        )
        assert doc["Status"] == "Succeeded", doc
        latest = max(latest, doc["StoppedTime"])
    return latest


def just_after(stamp: str) -> str:
    """A time one millisecond after the API's time ``stamp`` (which carries milliseconds)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def purge(server: ApiServer, **params: str) -> dict[str, Any]:
    return server.ok({"Action": "PurgeExecutions", **params})


def refusal(server: ApiServer, params: dict[str, str], role: str = "admin") -> tuple[int, str, str]:
    answer = server.rpc({"Action": "PurgeExecutions", **params}, role)
    doc = answer.json()
    message: str = doc["Message"]
    assert "\n" not in message and "Traceback" not in message, message
    return answer.status_code, doc["Code"], message


def listed(server: ApiServer, flow_name: str) -> set[str]:
    doc = server.ok({"Action": "ListExecutions", "FlowName": flow_name, "Limit": "99"})
    return {e["Name"] for e in doc["Executions"]}


def test_purge_by_time_and_flow_with_dry_run_and_limit(server: ApiServer) -> None:
    a, b = flow(server), flow(server)
    cut = just_after(max(run_to_end(server, a, ["a1", "a2", "a3"]), run_to_end(server, b, ["b1"])))
    time.sleep(0.01)  # the next ones end after `cut` whatever the clock's resolution
    run_to_end(server, a, ["later"])

    dry = purge(server, EndedBefore=cut, FlowName=a, DryRun="true")
    assert dry == {"Count": 3, "Remaining": 0, "More": False, "DryRun": True}
    assert listed(server, a) == {"a1", "a2", "a3", "later"}
    assert purge(server, EndedBefore=cut, FlowName=a, DryRun="TRUE", Limit="2")["More"] is True

    some = purge(server, EndedBefore=cut, FlowName=a, Limit="2")
    assert some == {"Count": 2, "Remaining": 1, "More": True, "DryRun": False}
    rest = purge(server, EndedBefore=cut, FlowName=a)
    assert rest == {"Count": 1, "Remaining": 0, "More": False, "DryRun": False}
    assert listed(server, a) == {"later"}
    assert listed(server, b) == {"b1"}  # another flow's are left alone when FlowName is given

    everything = purge(server, EndedBefore=cut)
    assert (everything["Count"], everything["More"]) == (1, False)
    assert listed(server, b) == set()
    # What was purged is gone with its history.
    gone = server.rpc({"Action": "GetExecutionHistory", "FlowName": a, "ExecutionName": "a1"})
    assert (gone.status_code, gone.json()["Code"]) == (404, "ExecutionNotExists")
    # Filters that match nothing delete nothing and say so.
    assert purge(server, EndedBefore=cut) == {
        "Count": 0,
        "Remaining": 0,
        "More": False,
        "DryRun": False,
    }
    assert purge(server, EndedBefore="2000-01-01T00:00:00+08:00", FlowName=a)["Count"] == 0
    assert listed(server, a) == {"later"}


def test_purge_keeps_running_executions(server: ApiServer) -> None:
    waiting = flow(server, TOKEN_FLOW)
    server.ok({"Action": "StartExecution", "FlowName": waiting, "ExecutionName": "w"})
    server.wait_messages(waiting, "w")
    far = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert purge(server, EndedBefore=far, FlowName=waiting)["Count"] == 0
    assert listed(server, waiting) == {"w"}


@pytest.mark.parametrize(
    ("params", "status", "code", "words"),
    [
        ({}, 400, "MissingParameter", "EndedBefore is required"),
        ({"EndedBefore": "yesterday"}, 400, "InvalidArgument", "EndedBefore must be an RFC 3339"),
        ({"EndedBefore": "2026-01-01T00:00:00"}, 400, "InvalidArgument", "with its zone"),
        ({"EndedBefore": "2026-01-01", "Limit": "5"}, 400, "InvalidArgument", "with its zone"),
        ({"EndedBefore": "2026-01-01T00:00:00Z", "Limit": "0"}, 400, "InvalidArgument", "1 to"),
        ({"EndedBefore": "2026-01-01T00:00:00Z", "Limit": "10001"}, 400, "InvalidArgument", ""),
        ({"EndedBefore": "2026-01-01T00:00:00Z", "Limit": "many"}, 400, "InvalidArgument", ""),
        ({"EndedBefore": "2026-01-01T00:00:00Z", "DryRun": "maybe"}, 400, "InvalidArgument", ""),
        (
            {"EndedBefore": "2026-01-01T00:00:00Z", "FlowName": "no/such"},
            400,
            "InvalidArgument",
            "",
        ),
        ({"EndedBefore": "2026-01-01T00:00:00Z", "FlowName": "ghost"}, 404, "FlowNotExists", ""),
    ],
)
def test_purge_refuses_bad_parameters_in_one_sentence(
    server: ApiServer, params: dict[str, str], status: int, code: str, words: str
) -> None:
    got_status, got_code, message = refusal(server, params)
    assert (got_status, got_code) == (status, code), message
    assert words in message


def test_only_an_admin_key_purges(server: ApiServer) -> None:
    for role in ("reader", "worker"):
        status, _code, _message = refusal(server, {"EndedBefore": "2026-01-01T00:00:00Z"}, role)
        assert status == 403


def test_delete_flow_refused_while_executions_run_unless_forced(server: ApiServer) -> None:
    busy = flow(server, TOKEN_FLOW)
    for name in ("one", "two"):
        server.ok({"Action": "StartExecution", "FlowName": busy, "ExecutionName": name})
        server.wait_messages(busy, name)
    # The official SDK's DeleteFlow (it has no Force) is refused in one sentence.
    refused = server.refused(_sdk_delete(busy))
    assert (refused.get_error_code(), refused.get_http_status()) == (
        "FlowHasRunningExecutions",
        409,
    )
    message = refused.get_error_msg()
    assert f"Flow '{busy}' has 2 running executions" in message
    assert f"relayflow flows delete {busy} --force" in message and "Force=true" in message
    assert listed(server, busy) == {"one", "two"}

    server.ok({"Action": "DeleteFlow", "Name": busy, "Force": "true"})
    gone = server.rpc({"Action": "DescribeFlow", "Name": busy})
    assert (gone.status_code, gone.json()["Code"]) == (404, "FlowNotExists")
    # The tokens those executions handed out now find nothing.
    token = server.messages(busy, "one")[0]["token"]
    late = server.rpc(
        {"Action": "ReportTaskSucceeded", "TaskToken": token, "Output": "{}"}, "worker"
    )
    assert late.status_code == 404


def test_the_sdk_deletes_a_flow_without_running_executions(server: ApiServer) -> None:
    quiet = flow(server)
    run_to_end(server, quiet, ["done"])
    server.call(_sdk_delete(quiet))
    gone = server.rpc({"Action": "DescribeFlow", "Name": quiet})
    assert gone.json()["Code"] == "FlowNotExists"
    bad = server.rpc({"Action": "DeleteFlow", "Name": quiet, "Force": "perhaps"})
    assert (bad.status_code, bad.json()["Code"]) == (400, "InvalidArgument")


def _sdk_delete(name: str) -> Any:
    request = DeleteFlowRequest.DeleteFlowRequest()
    request.set_Name(name)
    return request


def test_the_answer_reaches_the_python_client(server: ApiServer, tmp_path: Path) -> None:
    """`Client.request` carries relayflow's own action like any other."""
    from relayflow.client import Client

    quiet = flow(server)
    cut = just_after(run_to_end(server, quiet, ["x"]))
    key_id, secret = KEYS["admin"]
    with Client(server.url, key_id, secret) as client:
        answer = client.request(
            "PurgeExecutions", {"EndedBefore": cut, "FlowName": quiet, "DryRun": True}
        )
    assert (answer["Count"], answer["DryRun"]) == (1, True)
