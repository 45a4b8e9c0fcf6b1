"""The `context` a handler receives: Function Compute's Python context, plus callbacks.

The attribute names follow Function Compute's Python runtime (`request_id`, `function.name`,
`function.handler`, `function.memory`, `function.timeout`, `service.name`,
`service.qualifier`, `region`, `account_id`, `credentials`, `logger`, `tracing`). relayflow
adds `get_remaining_time_in_millis()`, the task's `token`, and `report_succeeded` /
`report_failed`, which finish a waitForCallback task from inside the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relayflow_fc.tracing import Tracing

__all__ = [
    "REPORT_TIMEOUT_SECONDS",
    "Credentials",
    "FcContext",
    "FunctionMeta",
    "Reporter",
    "ServiceMeta",
]

#: How long `report_succeeded` / `report_failed` wait for the engine to commit the report.
REPORT_TIMEOUT_SECONDS = 30.0


class Reporter(Protocol):
    """What finishes a waiting task: `relayflow.engine.Engine` has both methods."""

    def report_task_succeeded(self, token: str, output: Any, /) -> Awaitable[Any]:
        """Finish a task attempt with its output."""

    def report_task_failed(self, token: str, error: str, cause: str, /) -> Awaitable[Any]:
        """Fail a task attempt with an error name and a cause."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Function Compute's temporary AccessKey; relayflow has none to give (all None)."""

    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionMeta:
    """The invoked function, as Function Compute describes it.

    Attributes:
        name: the function's name, from the resourceArn.
        handler: the `module:attribute` it is mapped to.
        memory: its memory in MB; None, since relayflow does not limit it.
        timeout: its timeout in seconds (the step's `timeoutSeconds`, else
            `default_timeout_seconds`), or None.
    """

    name: str
    handler: str
    memory: int | None = None
    timeout: float | None = None

    @property
    def memory_size(self) -> int | None:
        """The same as `memory` (the name other runtimes use)."""
        return self.memory


@dataclass(frozen=True, slots=True)
class ServiceMeta:
    """The function's service. `qualifier` is the ARN's version or alias, or None."""

    name: str
    qualifier: str | None = None
    version_id: str | None = None
    log_project: str | None = None
    log_store: str | None = None


class FcContext:
    """What a handler gets as its second argument.

    Attributes:
        request_id: a unique id of this invocation. It is derived from the task token, so a
            re-dispatch of the same attempt after an engine crash has the same id (an
            idempotency key), and every attempt has its own.
        function, service, region, account_id, credentials: as in Function Compute.
        token: the task token of this attempt (also in the event when the flow maps
            `$context.task.token` into it).
        flow_name, execution_name, step_name, attempt: where the invocation comes from.
        logger: a logger named after the function.
        tracing: the task attempt's trace (W3C `traceparent`/`tracestate`, and Function
            Compute's `span_context`); empty when the engine traces nothing.

    The integration also passes the deadline (a `time.monotonic()` value), the reporter, the
    loop reports are scheduled on, and for waitForCallback an event set once `invoke` has
    answered `Submitted`: reports wait for it, so TaskSubmitted is always recorded first.
    """

    def __init__(
        self,
        *,
        request_id: str,
        token: str,
        function: FunctionMeta,
        service: ServiceMeta,
        region: str = "",
        account_id: str = "",
        flow_name: str = "",
        execution_name: str = "",
        step_name: str = "",
        attempt: int = 0,
        deadline: float | None = None,
        reporter: Reporter | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        submitted: asyncio.Event | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.request_id = request_id
        self.token = token
        self.function = function
        self.service = service
        self.region = region
        self.account_id = account_id
        self.credentials = Credentials()
        self.flow_name = flow_name
        self.execution_name = execution_name
        self.step_name = step_name
        self.attempt = attempt
        self.logger = logging.getLogger(f"relayflow_fc.{service.name}.{function.name}")
        self.tracing = tracing if tracing is not None else Tracing()
        self._deadline = deadline
        self._reporter = reporter
        self._loop = loop
        self._submitted = submitted

    def __repr__(self) -> str:
        return (
            f"FcContext(request_id={self.request_id!r}, "
            f"function={self.service.name}/{self.function.name})"
        )

    def get_remaining_time_in_millis(self) -> int | None:
        """Milliseconds left before the task times out (never below 0); None without a timeout."""
        if self._deadline is None:
            return None
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def report_succeeded(self, output: dict[str, Any] | str) -> int:
        """Finish this task with ``output`` (a dict or JSON object text), like ReportTaskSucceeded.

        Call it from the handler (which runs on its own thread) or from any thread the handler
        starts, never from the engine's event loop. It returns once the report is committed.

        Returns:
            The EventId of the TaskSucceeded event.

        Raises:
            RuntimeError: the integration has no reporter, or this is the event loop's thread.
            relayflow.errors.EngineError: the engine refused the report (for example
                `TaskAlreadyCompleted` when another report won).
        """
        reporter, loop = self._bridge("report_succeeded")
        return self._run(loop, lambda: reporter.report_task_succeeded(self.token, output))

    def report_failed(self, error: str, cause: str = "") -> int:
        """Fail this task with an error name and a cause, like ReportTaskFailed.

        Retry and catch policies match ``error``. The same rules as `report_succeeded` apply.

        Returns:
            The EventId of the TaskFailed event.

        Raises:
            RuntimeError: the integration has no reporter, or this is the event loop's thread.
            relayflow.errors.EngineError: the engine refused the report.
        """
        reporter, loop = self._bridge("report_failed")
        return self._run(loop, lambda: reporter.report_task_failed(self.token, error, cause))

    def _bridge(self, what: str) -> tuple[Reporter, asyncio.AbstractEventLoop]:
        if self._reporter is None or self._loop is None:
            raise RuntimeError(
                f"context.{what} needs the engine, and this FcIntegration has no reporter: "
                "the engine sets one when it starts (FcIntegration.bind); when you build the "
                "integration yourself, set integration.reporter = engine"
            )
        if self._loop.is_closed():
            raise RuntimeError(f"context.{what}: the engine's event loop has closed")
        if _running_loop() is self._loop:
            raise RuntimeError(
                f"context.{what} blocks until the report is committed, so it cannot be "
                "called on the engine's event loop; call it from the handler's thread"
            )
        return self._reporter, self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, report: Callable[[], Awaitable[Any]]) -> int:
        submitted = self._submitted

        async def on_the_loop() -> Any:  # the reporter is called on its loop, not here
            if submitted is not None:  # let the engine record TaskSubmitted first
                await submitted.wait()
            return await report()

        coro = on_the_loop()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop closed in between
            coro.close()
            raise RuntimeError(
                "the engine's event loop has closed; the report was not sent"
            ) from None
        return int(future.result(REPORT_TIMEOUT_SECONDS))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
