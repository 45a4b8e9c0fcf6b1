"""Where a worker's results go: the reporter protocols, `EngineReporter`, the credentials check."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from relayflow.errors import RelayflowError

__all__ = [
    "CHECK_TOKEN",
    "REFUSED_CODES",
    "AsyncReporter",
    "EngineReporter",
    "Reporter",
    "WorkerError",
    "check_credentials",
    "credentials_refused",
    "refused_credentials",
]

T = TypeVar("T")

#: Refusals that say the server will not take this worker's reports at all (a wrong key or
#: secret, a key whose role may not report, a clock far off): retrying cannot help.
REFUSED_CODES = frozenset(
    {
        "MissingAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidTimeStamp.Expired",
        "InvalidSignatureMethod",
        "InvalidSignatureVersion",
    }
)

#: The token `check_credentials` reports with: no task has it, so no task is touched.
CHECK_TOKEN = "relayflow-worker-credentials-check"


class WorkerError(RelayflowError):
    """The worker cannot start or must stop; the message is one sentence saying why.

    Attributes:
        code: a stable name for the reason: `UnknownTransport`, `BrokerUnreachable`,
            `CredentialsRefused`, `InvalidCertificate`, or `WorkerError` when none fits.
        message: the sentence (also `str(error)`).
    """

    def __init__(self, message: str, code: str = "WorkerError") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Reporter(Protocol):
    """Where results go. `relayflow.client.Client` is one; `EngineReporter` is another."""

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> Any:
        """Complete the task that handed out ``token`` with ``output``."""

    def report_task_failed(self, token: str, error: str, cause: str) -> Any:
        """Fail the task that handed out ``token`` with an error name and a cause."""


class AsyncReporter(Protocol):
    """The asyncio reporting methods that `relayflow.engine.Engine` has.

    It is also what an integration gets in `Integration.bind` (there named `TaskReporter`).
    """

    async def report_task_succeeded(self, token: str, output: Any) -> Any:
        """Complete a task attempt."""

    async def report_task_failed(self, token: str, error: str, cause: str = "") -> Any:
        """Fail a task attempt."""


class EngineReporter:
    """A `Reporter` for an in-process engine: reports run on the engine's event loop.

    Worker threads call the synchronous methods; each hands its coroutine to ``loop`` with
    `asyncio.run_coroutine_threadsafe` and waits for the answer. An `EngineError` (such as
    `TaskAlreadyCompleted`) comes back to the worker unchanged.

    Args:
        engine: the engine, or anything with its two async report methods.
        loop: the running event loop the engine belongs to.
        timeout: seconds to wait for each report; None waits as long as it takes.
    """

    def __init__(
        self, engine: AsyncReporter, loop: asyncio.AbstractEventLoop, *, timeout: float | None = 30
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.timeout = timeout

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> Any:
        """Report success on the engine's loop and return its answer (the EventId)."""
        return self._call(self.engine.report_task_succeeded(token, output))

    def report_task_failed(self, token: str, error: str, cause: str) -> Any:
        """Report failure on the engine's loop and return its answer (the EventId)."""
        return self._call(self.engine.report_task_failed(token, error, cause))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coroutine.close()
            raise RuntimeError(
                "EngineReporter blocks until the report is done; call it from a worker thread, "
                "not from the engine's event loop"
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            raise


def refused_credentials(exc: BaseException) -> bool:
    """Whether a report failed because the server refuses the worker's credentials."""
    code = getattr(exc, "code", None)
    return isinstance(code, str) and code in REFUSED_CODES


def credentials_refused(exc: BaseException) -> WorkerError:
    """The error a worker stops with when the server refused its credentials with ``exc``."""
    return WorkerError(
        f"the server refuses this worker's credentials ({_reason(exc)}); check [client] "
        "access_key_id and access_key_secret",
        "CredentialsRefused",
    )


def check_credentials(reporter: Reporter) -> str:
    """Make one cheap signed report to learn whether the server takes this worker's reports.

    It fails a task that does not exist (`CHECK_TOKEN`): a server that accepts the credentials
    answers that the token is malformed, one that does not answers with an authentication
    code (see `REFUSED_CODES`). Checking the report action itself, rather than reading
    something, also catches a key whose role may read but not report.

    Returns:
        "" when the credentials were accepted; otherwise, when the answer says nothing about
        them (the server cannot be reached, say), one sentence for a warning.

    Raises:
        WorkerError: the server refuses the credentials (`CredentialsRefused`), or the worker
            does not accept the server's TLS certificate (`InvalidCertificate`): neither
            gets better by waiting.
    """
    try:
        reporter.report_task_failed(CHECK_TOKEN, "relayflow.CredentialsCheck", "")
    except Exception as exc:  # sorted by its code
        if refused_credentials(exc):
            raise credentials_refused(exc) from exc
        code = getattr(exc, "code", None)
        if code == "InvalidCertificate":
            raise WorkerError(str(getattr(exc, "message", exc)), "InvalidCertificate") from exc
        if isinstance(code, str) and code.startswith("TaskToken"):
            return ""
        return f"cannot check the credentials yet ({_reason(exc)})"
    return ""


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
