"""The worker runtime: take task messages off a queue, run a handler, report, then delete.

A waitForCallback task step on an MNS queue sends one message per task attempt and waits for
a report with the attempt's task token. A worker closes that loop::

    from relayflow.client import Client
    from relayflow_mns.worker import Worker


    def handle(body):
        return {"rows": len(body["rows"])}  # the task's output: a dict


    with Client("http://127.0.0.1:8765", "worker-key", "worker-secret") as client:
        worker = Worker("fnf-demo", handle, transport_url="redis://localhost:6379/0",
                        reporter=client, concurrency=4)
        worker.run()  # until worker.request_stop() or worker.stop() from elsewhere

One worker may serve several queues: ``Worker(["warehouse", "notify"], ...)``.

For every message, in this order:

1. the body is decoded: JSON (a content type of `application/json`, or any body that is a
   JSON object or array) becomes Python values, other bodies stay text;
2. the task token is taken from the `x-relayflow-task-token` header, else from the body's
   `taskToken` key (the style of Serverless Workflow's MNS integration);
3. ``handler(body)`` runs on one of the worker's threads. A returned dict is reported with
   `ReportTaskSucceeded`; an exception with `ReportTaskFailed`, its class name as the error
   and its message as the cause; anything else fails the task with `InvalidOutput`;
4. only once the report has been taken is the message acknowledged, which deletes it.

Delivery is at least once, and the engine's first-report-wins rule makes that safe:

- a report refused because the task already has its answer or nobody waits for one any more
  (`TaskAlreadyCompleted`, `TaskExpired`, `ExecutionNotRunning`; see `SETTLED_CODES`) means
  the message was a duplicate: it is deleted;
- a report that fails for any other reason (the API is down, a timeout) leaves the message
  alone: it comes back once its visibility timeout runs out, and the job runs again;
- a report refused for the worker's credentials (a wrong key or secret; see
  `relayflow.worker.REFUSED_CODES`) leaves the message for another worker and stops this one;
- a message without a token is handled and deleted; there is nobody to report to.

Long jobs keep their message hidden: while a handler runs, the worker calls the transport's
visibility hook every `extend_every` seconds (see `visibility_hook_for`). The embedded
`relayflow-sqlite` transport and the Redis transport bring their own (`extend_visibility`),
kombu's SQS transport gets one here, and kombu's `memory://` needs none.

When the broker goes away, each thread reconnects with kombu's `ensure_connection` (the first
retry after half a second, then up to 30 s apart); any other error is a bug, logged with its
traceback, and stops the worker (`Worker.error`).

Each message produces one log line on the `relayflow_mns.worker` logger, such as
``queue=fnf-demo flow=seed execution=run-3 step=extract outcome=succeeded duration_ms=12``.

What to report and whether to delete is the core's (`relayflow.worker`); this package holds
the kombu side: `_messages` (decoding), `_visibility` (hooks and the extender thread) and
`_consumer` (`Worker`, `run_worker`).
"""

from __future__ import annotations

from relayflow.worker import (
    INVALID_OUTPUT,
    SETTLED_CODES,
    AsyncReporter,
    EngineReporter,
    Reporter,
    WorkerError,
    WorkerStats,
)
from relayflow_mns.worker._consumer import Worker, run_worker
from relayflow_mns.worker._messages import (
    EXECUTION_HEADER,
    FLOW_HEADER,
    MESSAGE_ID_HEADER,
    STEP_HEADER,
    TOKEN_HEADER,
    TaskMessage,
    decode_message,
)
from relayflow_mns.worker._visibility import (
    VisibilityHook,
    register_visibility_hook,
    visibility_hook_for,
)

__all__ = [
    "EXECUTION_HEADER",
    "FLOW_HEADER",
    "INVALID_OUTPUT",
    "MESSAGE_ID_HEADER",
    "SETTLED_CODES",
    "STEP_HEADER",
    "TOKEN_HEADER",
    "AsyncReporter",
    "EngineReporter",
    "Reporter",
    "TaskMessage",
    "VisibilityHook",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "decode_message",
    "register_visibility_hook",
    "run_worker",
    "visibility_hook_for",
]
