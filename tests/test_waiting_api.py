"""ListWaitingWork and DescribeExecution's IncludeWaiting over HTTP, against the session's server.

The server runs on the real clock: the work listed here waits on callbacks (with the default
timeout of 7 days) and on an hour-long wait step, none of which comes due during the session.
Executions are stopped at the end so that other tests listing every flow see little of them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx

from relayflow.results import WaitingWork
from tests.api_server import QUEUE_ARN, TOKEN_FLOW, ApiServer

WAITS = """version: v1
type: flow
steps:
  - type: wait
    name: nap
    duration: 3600
"""


def refused(answer: httpx.Response, code: str, status: int = 400) -> str:
    assert (answer.status_code, answer.json().get("Code")) == (status, code), answer.text
    message: str = answer.json()["Message"]
    assert message and "\n" not in message
    return message


def test_waiting_work_is_listed_and_described(api_server: ApiServer) -> None:
    prefix = "wait_" + uuid.uuid4().hex[:8]
    callbacks, waits = prefix + "_cb", prefix + "_w"
    for flow, definition in ((callbacks, TOKEN_FLOW), (waits, WAITS)):
        api_server.ok({"Action": "CreateFlow", "Name": flow, "Definition": definition})
    for execution in ("a", "b", "c"):
        api_server.ok(
            {"Action": "StartExecution", "FlowName": callbacks, "ExecutionName": execution}
        )
        api_server.wait_messages(callbacks, execution)
    api_server.ok({"Action": "StartExecution", "FlowName": waits, "ExecutionName": "n"})
    try:
        # One flow, page by page, with the reader's key.
        seen: list[dict[str, object]] = []
        token = ""
        while True:
            params = {"Action": "ListWaitingWork", "FlowName": callbacks, "Limit": "2"}
            page = api_server.ok({**params, "NextToken": token}, role="reader")
            assert len(page["Waiting"]) <= 2
            seen += page["Waiting"]
            token = page["NextToken"]
            if not token:
                break
        assert [w["ExecutionName"] for w in seen] == ["a", "b", "c"]
        first = WaitingWork.from_api(seen[0])
        assert (first.step_name, first.kind, first.resource) == ("job", "task", QUEUE_ARN)
        assert (first.pattern, first.attempt, first.timeout_seconds) == (
            "waitForCallback",
            1,
            604800,
        )
        assert first.since is not None and first.due == first.since + timedelta(days=7)
        assert set(seen[0]) == {
            "FlowName",
            "ExecutionName",
            "StepName",
            "Kind",
            "Resource",
            "Pattern",
            "Attempt",
            "WaitingSince",
            "TimeoutSeconds",
            "Due",
        }

        # Every flow: ours are among them; OlderThanSeconds leaves out what is younger.
        everything = listed(api_server, {})
        ours = [w for w in everything if w["FlowName"].startswith(prefix)]
        assert [(w["FlowName"], w["Kind"]) for w in ours] == [(callbacks, "task")] * 3 + [
            (waits, "wait")
        ]
        assert not [
            w
            for w in listed(api_server, {"OlderThanSeconds": "3600"})
            if w["FlowName"].startswith(prefix)
        ]

        # DescribeExecution says the same for one execution when asked.
        described = api_server.ok(
            {
                "Action": "DescribeExecution",
                "FlowName": waits,
                "ExecutionName": "n",
                "IncludeWaiting": "true",
            }
        )
        (nap,) = described["Waiting"]
        assert (nap["StepName"], nap["Kind"], nap["Resource"], nap["Attempt"]) == (
            "nap",
            "wait",
            "",
            0,
        )
        since = datetime.fromisoformat(nap["WaitingSince"].replace("Z", "+00:00"))
        due = datetime.fromisoformat(nap["Due"].replace("Z", "+00:00"))
        assert due - since == timedelta(seconds=3600) and "TimeoutSeconds" not in nap
        assert "Waiting" not in api_server.describe(waits, "n")

        # Refusals name what is wrong.
        base = {"Action": "ListWaitingWork", "FlowName": callbacks}
        assert "Limit" in refused(api_server.rpc({**base, "Limit": "0"}), "InvalidArgument")
        assert "Limit" in refused(api_server.rpc({**base, "Limit": "many"}), "InvalidArgument")
        message = refused(api_server.rpc({**base, "OlderThanSeconds": "-5"}), "InvalidArgument")
        assert "OlderThanSeconds" in message
        message = refused(api_server.rpc({**base, "NextToken": "w1.garbage"}), "InvalidArgument")
        assert "NextToken" in message
        missing = {"Action": "ListWaitingWork", "FlowName": prefix + "_none"}
        refused(api_server.rpc(missing), "FlowNotExists", 404)
        # The worker role reports tasks; it does not list them.
        assert api_server.rpc({"Action": "ListWaitingWork"}, role="worker").status_code == 403
    finally:
        for flow, execution in [(callbacks, e) for e in "abc"] + [(waits, "n")]:
            api_server.ok({"Action": "StopExecution", "FlowName": flow, "ExecutionName": execution})
    assert listed(api_server, {"FlowName": callbacks}) == []


def listed(server: ApiServer, params: dict[str, str]) -> list[dict[str, object]]:
    """Every page of ListWaitingWork with ``params``."""
    found: list[dict[str, object]] = []
    token = ""
    for _ in range(1000):
        page = server.ok({"Action": "ListWaitingWork", **params, "NextToken": token})
        found += page["Waiting"]
        token = page["NextToken"]
        if not token:
            return found
    raise AssertionError("the listing did not end")
