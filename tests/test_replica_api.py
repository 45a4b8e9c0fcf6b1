"""Two real `relayflow server` replicas on one PostgreSQL database: every API action, either one.

Each replica runs in a folder of its own with the test queue of tests/api_server.py (task
messages, with their tokens, go to that folder's messages.jsonl) and the same access keys; the
database is made fresh for this module. Requests sent "at once" leave two threads together
through a barrier, so that both replicas work on them concurrently:

- StartExecution of one name on both gives one execution (and one task message);
- CreateFlow of one name on both gives one flow and one FlowAlreadyExists;
- a task token minted by one replica is accepted by the other, exactly once;
- a signed request replayed to the other replica is refused (SignatureNonceUsed);
- a long poll on one replica wakes when the other ends the execution (LISTEN/NOTIFY).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest

from tests.api_server import (
    KEYS,
    TOKEN_FLOW,
    ApiServer,
    config_text,
    serving,
)
from tests.services import fresh_database

T = TypeVar("T")
ROUNDS = 5  # races per test: each a fresh name, sent to both replicas at once
BOUND = 10.0  # seconds: a wait that takes longer fails the test


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """A fresh database for this module: its URL."""
    with fresh_database(postgres_url, "rf_test_replica_api") as url:
        yield url


@pytest.fixture(scope="module")
def replicas(
    database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two replicas on the database, A and B; each must exit 0 on SIGTERM at the end."""
    config = config_text(keys=KEYS).replace("sqlite:///relayflow.db", database)
    with contextlib.ExitStack() as stack:
        a, b = (
            stack.enter_context(serving(tmp_path_factory.mktemp(f"replica-{name}"), config))
            for name in ("a", "b")
        )
        yield a, b
    for server in (a, b):
        bad = [line for line in server.log().splitlines() if re.search(r"Traceback| ERROR ", line)]
        assert not bad, f"{server.folder.name} logged errors:\n{server.log()[-5000:]}"


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run ``calls`` in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(BOUND)
            results[index] = call()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND * 3)
    assert not errors, errors
    return results


def answer(response: httpx.Response) -> tuple[int, str]:
    doc = response.json()
    return response.status_code, doc.get("Code", "ok")


def all_messages(a: ApiServer, b: ApiServer, flow: str, execution: str) -> list[dict]:
    return a.messages(flow, execution) + b.messages(flow, execution)


def wait_token(a: ApiServer, b: ApiServer, flow: str, execution: str) -> tuple[str, str]:
    """The token of the execution's first task message, and which replica sent it."""
    deadline = time.monotonic() + BOUND
    while True:
        for server in (a, b):
            found = server.messages(flow, execution)
            if found:
                return found[0]["token"], server.folder.name
        assert time.monotonic() < deadline, f"{flow}/{execution} sent no task message"
        time.sleep(0.01)


def create_flow(server: ApiServer, name: str) -> None:
    server.ok({"Action": "CreateFlow", "Name": name, "Definition": TOKEN_FLOW, "Type": "FDL"})


def test_one_start_name_on_both_replicas_at_once_gives_one_execution(replicas):
    a, b = replicas
    create_flow(a, "starts")
    for round in range(ROUNDS):
        name = f"same-{round}"
        params = {"Action": "StartExecution", "FlowName": "starts", "ExecutionName": name}
        first, second = at_once(partial(a.rpc, params), partial(b.rpc, params))
        assert first.status_code == 200, first.text
        assert second.status_code == 200, second.text  # the running one, answered again
        assert first.json()["StartedTime"] == second.json()["StartedTime"]
        wait_token(a, b, "starts", name)
        assert len(all_messages(a, b, "starts", name)) == 1
    for server in (a, b):
        listed = server.ok({"Action": "ListExecutions", "FlowName": "starts", "Limit": "99"})
        names = sorted(e["Name"] for e in listed["Executions"])
        assert names == [f"same-{r}" for r in range(ROUNDS)]


def test_one_flow_name_created_on_both_at_once_gives_one_flow(replicas):
    a, b = replicas
    for round in range(ROUNDS):
        params = {
            "Action": "CreateFlow",
            "Name": f"race-{round}",
            "Definition": TOKEN_FLOW,
            "Type": "FDL",
        }
        results = [answer(r) for r in at_once(partial(a.rpc, params), partial(b.rpc, params))]
        assert sorted(results) == [(200, "ok"), (409, "FlowAlreadyExists")], results
        for server in (a, b):
            described = server.ok({"Action": "DescribeFlow", "Name": f"race-{round}"})
            assert described["Name"] == f"race-{round}"


def test_a_token_minted_by_one_replica_is_accepted_by_the_other_once(replicas):
    a, b = replicas
    create_flow(a, "tokens")
    a.ok({"Action": "StartExecution", "FlowName": "tokens", "ExecutionName": "t"})
    token, sender = wait_token(a, b, "tokens", "t")
    other = b if sender == a.folder.name else a  # the replica that did not mint it
    minter = a if other is b else b
    report = {"Action": "ReportTaskSucceeded", "TaskToken": token, "Output": '{"done": true}'}
    assert answer(other.rpc(report, "worker")) == (200, "ok")
    assert answer(minter.rpc(report, "worker")) == (409, "TaskAlreadyCompleted")
    for server in (a, b):
        described = server.describe("tokens", "t")
        assert described["Status"] == "Succeeded", described
        assert json.loads(described["Output"]) == {"done": True}


def test_reports_sent_to_both_replicas_at_once_are_applied_once(replicas):
    a, b = replicas
    create_flow(a, "reports")
    for round in range(ROUNDS):
        name = f"r-{round}"
        a.ok({"Action": "StartExecution", "FlowName": "reports", "ExecutionName": name})
        token, _ = wait_token(a, b, "reports", name)
        succeeded = {"Action": "ReportTaskSucceeded", "TaskToken": token, "Output": "{}"}
        failed = {"Action": "ReportTaskFailed", "TaskToken": token, "Error": "ByB"}
        results = [
            answer(r)
            for r in at_once(partial(a.rpc, succeeded, "worker"), partial(b.rpc, failed, "worker"))
        ]
        assert sorted(results) == [(200, "ok"), (409, "TaskAlreadyCompleted")], results
        history = a.history("reports", name)
        assert history == b.history("reports", name)
        ends = [e["Type"] for e in history if e["Type"] in ("TaskSucceeded", "TaskFailed")]
        assert len(ends) == 1, history


def test_a_signed_request_replayed_to_the_other_replica_is_refused(replicas):
    a, b = replicas
    request = a.signed({"Action": "ListFlows"}, "reader")
    assert answer(a.post(request)) == (200, "ok")
    assert answer(b.post(request)) == (400, "SignatureNonceUsed")
    assert answer(a.post(request)) == (400, "SignatureNonceUsed")
    again = b.signed({"Action": "ListFlows"}, "reader")
    assert answer(b.post(again)) == (200, "ok")
    assert answer(a.post(again)) == (400, "SignatureNonceUsed")


def test_a_long_poll_on_one_replica_wakes_when_the_other_ends_the_execution(replicas):
    a, b = replicas
    create_flow(a, "polls")
    a.ok({"Action": "StartExecution", "FlowName": "polls", "ExecutionName": "p"})
    wait_token(a, b, "polls", "p")
    poll = {
        "Action": "DescribeExecution",
        "FlowName": "polls",
        "ExecutionName": "p",
        "WaitTimeSeconds": "20",
    }
    result: dict[str, Any] = {}

    def long_poll() -> None:
        with httpx.Client(base_url=b.url, timeout=30) as http:
            result["answer"] = http.post("/", data=b.signed(poll, "reader"))
            result["returned"] = time.monotonic()

    waiting = threading.Thread(target=long_poll)
    waiting.start()
    # B's poll may or may not be waiting yet: either way it must answer with the end.
    time.sleep(0.3)
    a.ok({"Action": "StopExecution", "FlowName": "polls", "ExecutionName": "p"})
    stopped = time.monotonic()
    waiting.join(30)
    assert not waiting.is_alive()
    assert result["answer"].status_code == 200, result["answer"].text
    assert result["answer"].json()["Status"] == "Stopped"
    # Woken by A's notification, not by B's 5-second backstop re-check nor its 20 s wait: a
    # bound far above a notification's milliseconds, below the backstop.
    assert result["returned"] - stopped < 4.0


def test_both_replicas_are_ready(replicas):
    for server in replicas:
        answer = server.http.get("/ready")
        assert (answer.status_code, answer.json()) == (200, {"Status": "ok"})


def test_ready_fails_while_the_database_does_not_answer_and_recovers(replicas, database):
    import psycopg

    a, b = replicas
    # /ready's read waits for this lock: to the replicas the database hangs.
    with psycopg.connect(database) as blocker:
        blocker.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
        for server in (a, b):
            answer = server.http.get("/ready")
            assert (answer.status_code, answer.json()["Status"]) == (503, "unavailable")
        assert b.http.get("/health").status_code == 200  # the process itself is fine
        blocker.rollback()
    deadline = time.monotonic() + BOUND
    for server in (a, b):
        while (answer := server.http.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.05)
