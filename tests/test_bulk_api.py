"""StopExecutions, RedriveExecutions and CountExecutions over HTTP, on real servers (the
session's on SQLite, and one on PostgreSQL): parameters as text, paging with NextToken, DryRun,
refusals with one sentence, hostile parameters, roles.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_server import KEYS, ApiServer, config_text, serving, utc_stamp
from tests.fuzz_strategies import hostile_ints, hostile_texts

PARKED = "version: v1\ntype: flow\nsteps:\n  - type: wait\n    name: nap\n    duration: 3600\n"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The session's server (SQLite), or one of this module's on a PostgreSQL database."""
    if request.param == "sqlite":
        yield request.getfixturevalue("api_server")
        return
    pytest.importorskip("psycopg")
    from tests.services import fresh_database

    pg = request.getfixturevalue("postgres_url")
    with fresh_database(pg, "bulk_api_" + uuid.uuid4().hex[:10]) as url:
        config = config_text(keys=KEYS).replace('"sqlite:///relayflow.db"', f'"{url}"')
        with serving(tmp_path_factory.mktemp("bulk-pg"), config) as running:
            yield running


def parked(server: ApiServer, names: list[str]) -> str:
    flow = "bapi_" + uuid.uuid4().hex[:10]
    server.ok({"Action": "CreateFlow", "Name": flow, "Definition": PARKED, "Type": "FDL"})
    for name in names:
        server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": name})
    return flow


def refused(answer: httpx.Response, code: str, status: int) -> str:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    message: str = answer.json()["Message"]
    assert message and "\n" not in message
    return message


def test_pages_of_a_bulk_stop_then_a_bulk_redrive(server: ApiServer) -> None:
    names = ["e-1", "e-2", "e-3", "other"]
    flow = parked(server, names)
    since = utc_stamp(time.time() - 600)
    stop = {"Action": "StopExecutions", "FlowName": flow, "ExecutionNamePrefix": "e-"}
    stop |= {"StartedTimeBegin": since, "Limit": "2", "Error": "Bulk", "Cause": "by the test"}

    dry = server.ok({**stop, "DryRun": "True"})
    assert dry == {
        "Matched": 3,
        "Done": [],
        "Skipped": [],
        "Failed": [],
        "NextToken": "e-2",
        "DryRun": True,
        "Selected": ["e-1", "e-2"],
    }
    first = server.ok(stop)
    assert (first["Matched"], first["Done"], first["NextToken"]) == (3, ["e-1", "e-2"], "e-2")
    second = server.ok({**stop, "NextToken": first["NextToken"]})
    assert (second["Matched"], second["Done"], second["NextToken"]) == (1, ["e-3"], "")
    assert server.describe(flow, "e-3")["Cause"] == "by the test"
    assert server.describe(flow, "other")["Status"] == "Running"

    count = {"Action": "CountExecutions", "FlowName": flow, "Status": "Stopped"}
    assert server.ok(count, role="reader") == {"Matched": 3}
    # A bounded count stops past MaxCount and says so; at or above the count it is exact.
    assert server.ok({**count, "MaxCount": "2"}) == {"Matched": 2, "MoreThan": True}
    assert server.ok({**count, "MaxCount": "3"}) == {"Matched": 3, "MoreThan": False}
    redrive = {"Action": "RedriveExecutions", "FlowName": flow, "Status": "Stopped"}
    again = server.ok({**redrive, "UseCurrentDefinition": "false"})
    assert (again["Matched"], again["Done"], again["Failed"]) == (3, ["e-1", "e-2", "e-3"], [])
    assert server.describe(flow, "e-1")["Status"] == "Running"
    assert server.ok(count, role="reader") == {"Matched": 0}
    nothing = server.ok(redrive)
    assert (nothing["Matched"], nothing["Done"], nothing["NextToken"]) == (0, [], "")


def test_bad_parameters_are_refused_with_one_sentence(server: ApiServer) -> None:
    flow = parked(server, [])
    stop = {"Action": "StopExecutions", "FlowName": flow}

    def stop_with(**params: str) -> httpx.Response:
        return server.rpc({**stop, **params})

    assert "Limit must be a whole number" in refused(
        stop_with(Limit="many"), "InvalidArgument", 400
    )
    assert "Limit must be from 1 to 1000" in refused(
        stop_with(Limit="5000"), "InvalidArgument", 400
    )
    assert "StartedTimeBegin must be an RFC 3339 time" in refused(
        stop_with(StartedTimeBegin="yesterday"), "InvalidArgument", 400
    )
    assert "after StartedTimeEnd" in refused(
        stop_with(StartedTimeBegin="2026-12-02T00:00:00Z", StartedTimeEnd="2026-12-01T00:00:00Z"),
        "InvalidArgument",
        400,
    )
    assert "Status must be one of" in refused(stop_with(Status="Paused"), "InvalidArgument", 400)
    assert "Running executions only" in refused(stop_with(Status="Failed"), "InvalidArgument", 400)
    refused(stop_with(ExecutionNamePrefix="a\x00b"), "InvalidArgument", 400)
    refused(stop_with(NextToken="../x"), "InvalidArgument", 400)
    refused(stop_with(DryRun="maybe"), "InvalidArgument", 400)
    refused(stop_with(Error="E" * 200), "InvalidArgument", 400)
    assert "NUL" in refused(stop_with(Cause="a\x00b"), "InvalidArgument", 400)
    redrive = server.rpc({"Action": "RedriveExecutions", "FlowName": flow})
    assert "needs a Status" in refused(redrive, "MissingParameter", 400)
    refused(server.rpc({"Action": "CountExecutions"}), "MissingParameter", 400)
    for bad in ("0", "1000001", "ten"):
        count = {"Action": "CountExecutions", "FlowName": flow, "MaxCount": bad}
        refused(server.rpc(count), "InvalidArgument", 400)
    refused(
        server.rpc({"Action": "StopExecutions", "FlowName": "no_such_flow"}),
        "FlowNotExists",
        404,
    )


def test_only_keys_that_may_stop_may_act_in_bulk(server: ApiServer) -> None:
    flow = parked(server, ["r-1"])
    for role in ("reader", "worker"):
        for action in ("StopExecutions", "RedriveExecutions"):
            answer = server.rpc({"Action": action, "FlowName": flow}, role=role)
            assert answer.status_code == 403, answer.text
    assert server.describe(flow, "r-1")["Status"] == "Running"


_FLOWS: dict[int, str] = {}  # one flow of parked executions per server, for every example


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    action=st.sampled_from(["StopExecutions", "RedriveExecutions", "CountExecutions"]),
    params=st.fixed_dictionaries(
        {},
        optional={
            "Status": st.one_of(st.sampled_from(["Running", "Stopped", "Failed"]), hostile_texts()),
            "ExecutionNamePrefix": hostile_texts(300),
            "StartedTimeBegin": st.one_of(st.just("2020-01-01T00:00:00Z"), hostile_texts(300)),
            "StartedTimeEnd": hostile_texts(300),
            "Limit": hostile_ints(),
            "NextToken": hostile_texts(300),
            "DryRun": st.one_of(st.just("true"), hostile_texts(50)),
            "Error": hostile_texts(300),
            "UseCurrentDefinition": hostile_texts(50),
        },
    ),
)
def test_hostile_parameters_get_an_answer_or_one_sentence(
    server: ApiServer, action: str, params: dict[str, str]
) -> None:
    if server.port not in _FLOWS:
        _FLOWS[server.port] = parked(server, [])
    flow = _FLOWS[server.port]
    # A running execution each time, so that hostile values reach a stop, not only the checks.
    server.ok({"Action": "StartExecution", "FlowName": flow, "ExecutionName": f"h-{uuid.uuid4()}"})
    answer = server.rpc({"Action": action, "FlowName": flow, **params})
    assert answer.status_code in (200, 400, 413), answer.text  # 413: over the body limit
    if answer.status_code != 200:
        message = answer.json()["Message"]
        assert message and "\n" not in message and "Traceback" not in message
