"""How the client reports error answers, broken answers and unreachable servers."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from relayflow.client import Client, ClientError
from tests.client.fake_server import KEY_ID, SECRET, execution_doc, free_port


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "ExecutionNotExists"),
        (409, "TaskAlreadyCompleted"),
        (403, "AccessDenied"),
        (500, "InternalError"),
    ],
)
def test_error_answers_become_client_errors(fake, client, status, code):
    fake.fail("ReportTaskSucceeded", status, code, "the first report won")
    with pytest.raises(ClientError) as info:
        client.report_task_succeeded("tok", {})
    err = info.value
    assert (err.code, err.message, err.status, err.request_id) == (
        code,
        "the first report won",
        status,
        "REQ-ERR",
    )
    assert str(err) == f"{code}: the first report won"


def test_an_answer_that_is_not_the_api_is_invalid_response(fake, client):
    fake.on("DescribeFlow", lambda p: (502, b"<html>bad gateway</html>"))
    with pytest.raises(ClientError) as info:
        client.describe_flow("orders")
    assert info.value.code == "InvalidResponse" and info.value.status == 502
    assert "bad gateway" in info.value.message

    fake.on("DescribeExecution", lambda p: {**execution_doc(), "Input": "[1, 2]"})
    with pytest.raises(ClientError, match="not a JSON object"):
        client.describe_execution("orders", "order-7")


def test_connection_refused_is_connection_failed():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, KEY_ID, SECRET, timeout=2) as c, pytest.raises(ClientError) as info:
        c.describe_flow("orders")
    assert info.value.code == "ConnectionFailed" and info.value.status == 0
    assert url in info.value.message


def test_long_poll_gets_more_time_than_the_timeout(fake):
    def slow(p: dict[str, str]) -> dict[str, Any]:
        time.sleep(1.0)
        return execution_doc(status="Succeeded")

    fake.on("DescribeExecution", slow)
    with Client(fake.url, KEY_ID, SECRET, timeout=0.5) as c:
        assert c.describe_execution("orders", "order-7", wait_seconds=1).succeeded
        with pytest.raises(ClientError) as info:
            c.describe_execution("orders", "order-7")
    assert info.value.code == "RequestTimeout"


@pytest.mark.parametrize("wait", [-1, 61, 1.5])
def test_wait_seconds_out_of_range_is_refused_before_sending(fake, client, wait):
    with pytest.raises(ValueError, match="wait_seconds"):
        client.describe_execution("orders", "order-7", wait_seconds=wait)
    assert fake.requests == []


def test_naive_datetimes_are_refused(client):
    with pytest.raises(ValueError, match="timezone-aware"):
        client.list_executions("orders", started_after=datetime(2024, 1, 1))


def test_client_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(ClientError("X", "y", 409, "r")))
    assert (err.code, err.message, err.status, err.request_id) == ("X", "y", 409, "r")


def test_mock_transport_as_documented():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"RequestId": "1", "EventId": 5})

    with Client("http://relayflow.test", transport=httpx.MockTransport(answer)) as c:
        assert c.report_task_succeeded("token", {}) == 5
