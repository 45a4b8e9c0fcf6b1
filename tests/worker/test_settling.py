"""relayflow.worker: what a worker reports for a handler's result, and whether it acknowledges."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from relayflow.worker import (
    CHECK_TOKEN,
    INVALID_OUTPUT,
    Outcome,
    WorkerError,
    check_credentials,
    report,
    run_handler,
)


class Refusal(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(f"{code}: refused")
        self.code = code


class Recorder:
    """A reporter that records its calls and raises ``error`` when given one."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls: list[tuple[Any, ...]] = []

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> Any:
        self.calls.append(("succeeded", token, output))
        if self.error is not None:
            raise self.error
        return 1

    def report_task_failed(self, token: str, error: str, cause: str) -> Any:
        self.calls.append(("failed", token, error, cause))
        if self.error is not None:
            raise self.error
        return 1


def boom(body: Any) -> Any:
    raise KeyError("rows")


@pytest.mark.parametrize(
    ("handler", "failure"),
    [
        (lambda body: {"n": body}, None),
        (boom, ("KeyError", "'rows'")),
        (lambda body: [1], (INVALID_OUTPUT, "the handler returned list, not a dict")),
        (lambda body: {"at": object()}, INVALID_OUTPUT),
    ],
)
def test_run_handler(handler: Any, failure: Any) -> None:
    _, found = run_handler(handler, 1)
    if isinstance(failure, str):
        assert found is not None and found[0] == failure
    else:
        assert found == failure


@pytest.mark.parametrize(
    ("error", "outcome", "ack", "stops"),
    [
        (None, "succeeded", True, False),
        (Refusal("TaskAlreadyCompleted"), "settled", True, False),
        (Refusal("ConnectionFailed"), "kept", False, False),
        (Refusal("SignatureDoesNotMatch"), "refused", False, True),
        (Refusal("InvalidAccessKeyId.NotFound"), "refused", False, True),
        (Refusal("AccessDenied"), "refused", False, True),
    ],
)
def test_report_then_acknowledge(
    error: BaseException | None, outcome: str, ack: bool, stops: bool
) -> None:
    result = report(Recorder(error), "tok", {"n": 1}, None)
    assert isinstance(result, Outcome)
    assert (result.outcome, result.ack, result.stop is not None) == (outcome, ack, stops)
    if stops:
        assert result.level == logging.ERROR
        assert "refuses this worker's credentials" in str(result.stop)


def test_no_token_means_nothing_to_report() -> None:
    reporter = Recorder()
    result = report(reporter, None, None, ("KeyError", "x"))
    assert (result.outcome, result.ack, reporter.calls) == ("no-token", True, [])


@pytest.mark.parametrize(
    ("error", "answer"),
    [
        (Refusal("TaskTokenMalformed"), ""),
        (Refusal("TaskTokenInvalid"), ""),
        (Refusal("ConnectionFailed"), "cannot check the credentials yet (ConnectionFailed: "),
    ],
)
def test_check_credentials_tells_a_refusal_from_the_rest(error: Exception, answer: str) -> None:
    reporter = Recorder(error)
    assert check_credentials(reporter).startswith(answer)
    assert reporter.calls[0][:2] == ("failed", CHECK_TOKEN)


def test_check_credentials_raises_when_the_server_refuses_them() -> None:
    with pytest.raises(WorkerError, match=r"refuses this worker's credentials \(Signature"):
        check_credentials(Recorder(Refusal("SignatureDoesNotMatch")))
