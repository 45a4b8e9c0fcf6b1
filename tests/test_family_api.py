"""Parents and children over HTTP: a real `relayflow server` on SQLite and one on PostgreSQL.

DescribeExecution names a parent's children (`ChildExecutions`) and a child's parent
(`ParentExecution`), with their statuses; the parent's history names each child; StopExecution
on the parent stops every running descendant, each with a cause naming its own parent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_server import KEYS, QUEUE_ARN, TOKEN_FLOW, ApiServer, config_text, serving
from tests.services import fresh_database

WAIT_SECONDS = 10.0


def mid_flow(leaf: str) -> str:
    """A flow that waits (sync) on one execution of ``leaf``."""
    return f"""version: v1
type: flow
steps:
  - type: task
    name: grandchild
    resourceArn: acs:fnf:::flow/{leaf}
    pattern: sync
"""


def parent_flow(mid: str, leaf: str) -> str:
    """Three children at once, one per pattern; the requestResponse branch then waits too."""
    return f"""version: v1
type: flow
steps:
  - type: parallel
    name: kids
    branches:
      - steps:
          - type: task
            name: sync_kid
            resourceArn: acs:fnf:::flow/{mid}
            pattern: sync
      - steps:
          - type: task
            name: callback_kid
            resourceArn: acs:fnf:::flow/{leaf}
            pattern: waitForCallback
      - steps:
          - type: task
            name: rr_kid
            action: fnf:StartExecution
            pattern: requestResponse
            serviceParams:
              FlowName: {leaf}
          - type: task
            name: gate
            resourceArn: {QUEUE_ARN}
            pattern: waitForCallback
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The session's server (SQLite), or one of this module's own on a PostgreSQL database."""
    if request.param == "sqlite":
        yield request.getfixturevalue("api_server")
        return
    postgres: str = request.getfixturevalue("postgres_url")
    with fresh_database(postgres, "family_api_" + uuid.uuid4().hex[:8]) as url:
        text = config_text(keys=KEYS).replace("sqlite:///relayflow.db", url)
        with serving(tmp_path_factory.mktemp("family-pg"), text) as pg_server:
            yield pg_server


def wait_for(check: Any, what: str) -> Any:
    """Poll ``check`` until it answers something true, for at most `WAIT_SECONDS`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT_SECONDS} s")
        time.sleep(0.02)


def make_family(server: ApiServer) -> dict[str, str]:
    """Create the three flows and start a parent; once its family all runs: role -> flow/name.

    Roles: `parent`, `sync_kid` (a mid), `callback_kid` and `rr_kid` (leaves), `grandchild`.
    """
    tag = uuid.uuid4().hex[:8]
    leaf, mid, parent = f"leaf-{tag}", f"mid-{tag}", f"parent-{tag}"
    for name, definition in [
        (leaf, TOKEN_FLOW),
        (mid, mid_flow(leaf)),
        (parent, parent_flow(mid, leaf)),
    ]:
        server.ok({"Action": "CreateFlow", "Name": name, "Definition": definition, "Type": "FDL"})
    server.ok({"Action": "StartExecution", "FlowName": parent, "ExecutionName": "p1"})
    wait_for(lambda: len(server.messages(leaf)) >= 3, "three leaf executions sending messages")
    wait_for(lambda: server.messages(parent, "p1"), "the parent's gate message")
    family = {"parent": f"{parent}/p1"}
    for event in server.history(parent, "p1"):
        if event["Type"] in ("TaskSubmitted", "TaskSucceeded") and event["StepName"] != "gate":
            detail = _detail(event)
            named = detail.get("output", detail)
            family[event["StepName"]] = f"{named['FlowName']}/{named['Name']}"
    mid_name = family["sync_kid"].split("/", 1)[1]
    grandchildren = server.describe(mid, mid_name).get("ChildExecutions", [])
    assert len(grandchildren) == 1, grandchildren
    family["grandchild"] = f"{leaf}/{grandchildren[0]['Name']}"
    return family


def _detail(event: dict[str, Any]) -> dict[str, Any]:
    import json

    raw = event.get("EventDetail") or "{}"
    detail: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return detail


def describe(server: ApiServer, path: str) -> dict[str, Any]:
    flow, name = path.split("/", 1)
    return server.describe(flow, name)


def test_describe_links_parents_and_children_both_ways(server: ApiServer) -> None:
    family = make_family(server)
    assert set(family) == {"parent", "sync_kid", "callback_kid", "rr_kid", "grandchild"}
    parent = describe(server, family["parent"])
    assert "ParentExecution" not in parent
    children = parent["ChildExecutions"]
    assert {f"{c['FlowName']}/{c['Name']}" for c in children} == {
        family[role] for role in ("sync_kid", "callback_kid", "rr_kid")
    }
    assert {c["Status"] for c in children} == {"Running"}
    parent_flow_name, _ = family["parent"].split("/", 1)
    for role in ("sync_kid", "callback_kid", "rr_kid"):
        child = describe(server, family[role])
        assert child["ParentExecution"] == {
            "FlowName": parent_flow_name,
            "Name": "p1",
            "Status": "Running",
        }
        flow, name = family[role].split("/", 1)
        started = server.history(flow, name)[0]
        assert started["Type"] == "ExecutionStarted"
        assert _detail(started)["ParentExecution"] == {"FlowName": parent_flow_name, "Name": "p1"}
    assert (
        describe(server, family["grandchild"])["ParentExecution"]["Name"]
        == (family["sync_kid"].split("/", 1)[1])
    )


def test_stopping_the_parent_over_http_stops_its_descendants(server: ApiServer) -> None:
    family = make_family(server)
    flow, name = family["parent"].split("/", 1)
    server.ok({"Action": "StopExecution", "FlowName": flow, "ExecutionName": name})
    assert describe(server, family["parent"])["Status"] == "Stopped"
    for role in ("sync_kid", "callback_kid", "rr_kid", "grandchild"):
        child = describe(server, family[role])
        owner = family["sync_kid"] if role == "grandchild" else family["parent"]
        assert (child["Status"], child["Cause"]) == (
            "Stopped",
            f"stopped because its parent execution {owner} was stopped",
        ), role
    statuses = {c["Status"] for c in describe(server, family["parent"])["ChildExecutions"]}
    assert statuses == {"Stopped"}
