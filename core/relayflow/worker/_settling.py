"""What a worker does with one task: run the handler, report, and decide whether to acknowledge."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from relayflow.worker._reporting import (
    Reporter,
    WorkerError,
    credentials_refused,
    refused_credentials,
)

__all__ = [
    "INVALID_OUTPUT",
    "MAX_CAUSE",
    "MAX_ERROR",
    "SETTLED_CODES",
    "Outcome",
    "WorkerStats",
    "check_output",
    "report",
    "run_handler",
]

#: Report refusals that mean the task needs nothing more from this message: delete it.
SETTLED_CODES = frozenset(
    {
        # The task already has its answer, or never will: the message has done its work.
        "TaskAlreadyCompleted",
        "TaskExpired",
        "ExecutionNotRunning",
        # The token can never be accepted: keeping the message would rerun the job forever.
        "TaskTokenInvalid",
        "TaskTokenMalformed",
        "ExecutionNotExists",
    }
)

#: The error reported when a handler returns something other than a JSON object.
INVALID_OUTPUT = "InvalidOutput"

#: Serverless Workflow takes causes of up to 4096 characters; longer ones are cut.
MAX_CAUSE = 4096
#: Serverless Workflow takes error names of 1 to 128 characters.
MAX_ERROR = 128

Failure = tuple[str, str]


@dataclass(slots=True)
class WorkerStats:
    """What a worker has done since it started; `Worker.stats` gives a copy.

    Attributes:
        received: messages taken off the queue and handled.
        succeeded: reported with ReportTaskSucceeded and deleted.
        failed: reported with ReportTaskFailed (including `InvalidOutput`) and deleted.
        settled: refused with one of `SETTLED_CODES` (a duplicate delivery) and deleted.
        no_token: handled without a token, so not reported, and deleted.
        kept: reports that could not be made; the message was left for redelivery.
    """

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    settled: int = 0
    no_token: int = 0
    kept: int = 0


@dataclass(slots=True)
class Outcome:
    """How one message ended: the log's word, the `WorkerStats` counter, whether to delete it.

    Attributes:
        outcome: the word of the log line (`succeeded`, `failed`, `settled`, `kept`, ...).
        counter: the `WorkerStats` field to count it in.
        ack: acknowledge (delete) the message; False leaves it for redelivery.
        detail: more words for the log line; "" when there is nothing to add.
        level: the log level of the line.
        stop: None, or why the worker must stop: the server refuses its credentials, so
            every other message would fail the same way and come back again.
    """

    outcome: str
    counter: str
    ack: bool
    detail: str = ""
    level: int = logging.INFO
    stop: WorkerError | None = None


def run_handler(handler: Callable[[Any], Any], body: Any) -> tuple[Any, Failure | None]:
    """Call ``handler(body)``: its output and None, or None and the failure to report.

    Any exception, SystemExit included, fails the task with its class name as the error and
    its message as the cause, cut to what Serverless Workflow accepts; so does an output that
    is not a JSON object (`INVALID_OUTPUT`).
    """
    try:
        output = handler(body)
    except BaseException as exc:  # SystemExit too: the task fails with its name
        return None, (type(exc).__name__[:MAX_ERROR], str(exc)[:MAX_CAUSE])
    return output, check_output(output)


def check_output(output: Any) -> Failure | None:
    """None when ``output`` can be reported as a task's output, else the failure to report."""
    if not isinstance(output, dict):
        return INVALID_OUTPUT, f"the handler returned {type(output).__name__}, not a dict"
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        return INVALID_OUTPUT, f"the handler's output is not JSON: {exc}"[:MAX_CAUSE]
    return None


def report(
    reporter: Reporter,
    token: str | None,
    output: Any,
    failure: Failure | None,
    settled_codes: Collection[str] = SETTLED_CODES,
) -> Outcome:
    """Report a task's result, and say whether its message may be deleted.

    Delete (acknowledge) when the report was taken, when it was refused with one of
    ``settled_codes`` (the task already has its answer: the message was a duplicate), and
    when there is no token (nobody to report to). Keep the message for redelivery when the
    report could not be made; stop the worker as well when the server refuses its
    credentials (`REFUSED_CODES`).
    """
    if token is None:
        detail = "no task token, nothing to report"
        if failure is not None:
            detail += f"; the handler failed with {failure[0]}: {failure[1]}"
        return Outcome("no-token", "no_token", True, detail, logging.WARNING)
    try:
        if failure is None:
            reporter.report_task_succeeded(token, output)
        else:
            reporter.report_task_failed(token, failure[0], failure[1])
    except Exception as exc:  # sorted by the refusal's code below
        code = getattr(exc, "code", None)
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(code, str) and code in settled_codes:
            return Outcome("settled", "settled", True, f"report refused: {reason}")
        if refused_credentials(exc):
            return Outcome(
                "refused",
                "kept",
                False,
                f"report refused ({reason}); the message is left for redelivery and the "
                "worker stops",
                logging.ERROR,
                stop=credentials_refused(exc),
            )
        return Outcome(
            "kept",
            "kept",
            False,
            f"report not made ({reason}); the message will be delivered again",
            logging.WARNING,
        )
    if failure is None:
        return Outcome("succeeded", "succeeded", True)
    return Outcome("failed", "failed", True, f"error={failure[0]} cause={failure[1]!r}")
