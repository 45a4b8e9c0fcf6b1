"""Loading handlers and running each call on its own daemon thread.

A handler runs on a fresh `threading.Thread(daemon=True)`, never on the event loop and never on
a thread pool: a pool's threads are joined when the interpreter exits, so a handler that never
returns would keep the process alive. The thread hands its results back to the loop with
`loop.call_soon_threadsafe`, resolving asyncio futures the integration awaits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

from relayflow.engine.integration import Failed, Succeeded, TaskOutcome
from relayflow.errors import ERROR_INVALID_LOCAL, ERROR_RUNTIME
from relayflow.importing import ImportTargetError, import_callable
from relayflow_fc.context import FcContext
from relayflow_fc.tracing import SpanOpener

__all__ = ["HandlerCall", "HandlerImportError", "failure_of", "resolve_handler", "to_local"]

log = logging.getLogger("relayflow_fc")

Handler = Callable[[bytes, FcContext], Any]


#: The error of a handler that cannot be loaded: the project's one `module:function` error.
HandlerImportError = ImportTargetError


def resolve_handler(target: str) -> Handler:
    """Import ``module:attribute`` (the attribute may be dotted) and return the callable.

    The current directory is put at the front of the Python path first (once), so handler
    modules next to `relayflow.toml` are found the way pytest finds a conftest.py.

    Raises:
        HandlerImportError: the module is not found or does not import, it lacks the
            attribute, or the attribute is not callable (see `relayflow.importing`).
    """
    return import_callable(target)


def to_local(key: str, value: Any) -> Succeeded | Failed:
    """Turn a handler's return value into the task's local, which must be a JSON object.

    A dict is used as it is; `str`, `bytes` and `bytearray` are parsed as JSON (UTF-8). Anything
    else, text that is not JSON, and JSON that is not an object fail with `FnF.InvalidLocal`.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Failed(ERROR_INVALID_LOCAL, f"{key} returned bytes that are not UTF-8: {exc}")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            return Failed(ERROR_INVALID_LOCAL, f"{key} returned text that is not JSON: {exc}")
    if not isinstance(value, Mapping):
        return Failed(
            ERROR_INVALID_LOCAL,
            f"{key} returned {_kind(value)}; a handler's result must be a JSON object "
            "(a dict, or its JSON text or bytes)",
        )
    try:
        local = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        return Failed(ERROR_INVALID_LOCAL, f"{key} returned a dict that is not JSON: {exc}")
    return Succeeded(local)


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def failure_of(exc: BaseException) -> Failed:
    """The task failure for an exception: its class name is the error, its message the cause."""
    return Failed(type(exc).__name__, str(exc))


class HandlerCall:
    """One handler invocation on its own daemon thread.

    Two futures, resolved on ``loop``, report its progress: `loaded` gets None once the handler
    is imported (or the `FnF.RuntimeError` failure if it cannot be), and `finished` gets the
    outcome: the local (`Succeeded`), or the failure of an exception or of a bad result. With
    ``wants_result`` false (waitForCallback, asynchronous invocations) the return value is
    ignored and a normal return gives `Succeeded({})`. With ``span``, the handler runs inside
    the span it opens (on the handler's thread, so that the span is current there).
    """

    def __init__(
        self,
        *,
        key: str,
        target: str,
        event: bytes,
        context: FcContext,
        loop: asyncio.AbstractEventLoop,
        wants_result: bool = True,
        span: SpanOpener | None = None,
    ) -> None:
        self.key = key
        self.target = target
        self.event = event
        self.context = context
        self.loop = loop
        self.wants_result = wants_result
        self.span = span
        self.loaded: asyncio.Future[Failed | None] = loop.create_future()
        self.finished: asyncio.Future[TaskOutcome] = loop.create_future()
        self.thread = threading.Thread(
            target=self._run, name=f"relayflow-fc-{key}-{context.request_id[:8]}", daemon=True
        )

    def start(self) -> None:
        """Start the thread; results arrive through `loaded` and `finished`."""
        self.thread.start()

    def _run(self) -> None:
        try:
            handler = resolve_handler(self.target)
        except HandlerImportError as exc:
            failed = Failed(
                ERROR_RUNTIME,
                f"the fc handler of '{self.key}' ({self.target}) cannot be loaded: {exc}",
            )
            self._settle(self.loaded, failed)
            self._settle(self.finished, failed)
            return
        self._settle(self.loaded, None)
        outcome: TaskOutcome
        try:
            opened = self.span() if self.span is not None else None
            with opened if opened is not None else nullcontext():
                value = handler(self.event, self.context)
        except BaseException as exc:  # the thread must always hand an outcome back
            outcome = failure_of(exc)
        else:
            outcome = to_local(self.key, value) if self.wants_result else Succeeded({})
        self._settle(self.finished, outcome)

    def _settle(self, future: asyncio.Future[Any], value: Any) -> None:
        def deliver() -> None:
            if not future.done():  # the engine may have stopped waiting (timeout, shutdown)
                future.set_result(value)

        try:
            self.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop has closed: nobody waits for this result any more
            log.debug("fc handler %s finished after its event loop closed", self.key)
