"""The generic half of a worker: report a task's result, then say whether to acknowledge it.

A queue plugin (such as relayflow-mns, over kombu) receives messages and decodes them; this
package decides the rest, the same way for every queue::

    from relayflow.worker import report, run_handler

    output, failure = run_handler(handle, body)  # the handler's output, or its failure
    outcome = report(client, token, output, failure)  # ReportTaskSucceeded/Failed
    if outcome.ack:
        message.ack()  # only once the report has been taken (or was a duplicate)
    if outcome.stop:
        ...  # the server refuses the credentials: stop rather than loop

- `Reporter` is where results go: `relayflow.client.Client`, or `EngineReporter` for an
  in-process engine (an `AsyncReporter`) running on its own event loop;
- `SETTLED_CODES` are the refusals after which a message is deleted all the same (the task
  already has its answer); `REFUSED_CODES` those that stop the worker (wrong credentials);
- `check_credentials` makes one cheap signed report at start, so that a worker with a wrong
  key stops at once instead of taking jobs it can never report;
- `WorkerStats` counts what a worker did; `WorkerError` is why it cannot start or go on.

Importing it loads neither the engine, the API, the configuration, nor any broker library.
"""

from __future__ import annotations

from relayflow.worker._reporting import (
    CHECK_TOKEN,
    REFUSED_CODES,
    AsyncReporter,
    EngineReporter,
    Reporter,
    WorkerError,
    check_credentials,
    credentials_refused,
    refused_credentials,
)
from relayflow.worker._settling import (
    INVALID_OUTPUT,
    MAX_CAUSE,
    MAX_ERROR,
    SETTLED_CODES,
    Outcome,
    WorkerStats,
    check_output,
    report,
    run_handler,
)

__all__ = [
    "CHECK_TOKEN",
    "INVALID_OUTPUT",
    "MAX_CAUSE",
    "MAX_ERROR",
    "REFUSED_CODES",
    "SETTLED_CODES",
    "AsyncReporter",
    "EngineReporter",
    "Outcome",
    "Reporter",
    "WorkerError",
    "WorkerStats",
    "check_credentials",
    "check_output",
    "credentials_refused",
    "refused_credentials",
    "report",
    "run_handler",
]
