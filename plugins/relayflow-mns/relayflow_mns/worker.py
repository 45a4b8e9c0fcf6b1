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
- a report that fails for any other reason (the API is down, a timeout, a wrong key) leaves
  the message alone: it comes back once its visibility timeout runs out, and the job runs
  again;
- a message without a token is handled and deleted; there is nobody to report to.

Long jobs keep their message hidden: while a handler runs, the worker calls the transport's
visibility hook every `extend_every` seconds (see `register_visibility_hook`). The embedded
`relayflow-sqlite` transport brings its own (`extend_visibility`), kombu's Redis transport gets
one here, and kombu's `memory://` needs none.

Each message produces one log line on the `relayflow_mns.worker` logger, such as
``queue=fnf-demo flow=seed execution=run-3 step=extract outcome=succeeded duration_ms=12``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import FrameType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

from relayflow_mns import redis_transport

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

T = TypeVar("T")

#: The header that carries the task token of a waitForCallback task.
TOKEN_HEADER = "x-relayflow-task-token"
#: Headers that say where a message comes from; they only feed the log line.
FLOW_HEADER = "x-relayflow-flow"
EXECUTION_HEADER = "x-relayflow-execution"
STEP_HEADER = "x-relayflow-step"
MESSAGE_ID_HEADER = "x-relayflow-message-id"

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

VisibilityHook = Callable[[Any, Any, float], object]
"""``hook(channel, delivery_tag, seconds)``: keep a delivered message hidden for ``seconds``.

A hook may return False to say that the message is no longer the worker's (its receipt went
stale: it was redelivered); any other return value, None included, means it worked.
"""

_DEFAULT_LOGGER = "relayflow_mns.worker"


class WorkerError(Exception):
    """The worker cannot start: the transport is unknown or the broker cannot be reached."""


class Reporter(Protocol):
    """Where results go. `relayflow.client.Client` is one; `EngineReporter` is another."""

    def report_task_succeeded(self, token: str, output: dict[str, Any]) -> Any:
        """Complete the task that handed out ``token`` with ``output``."""

    def report_task_failed(self, token: str, error: str, cause: str) -> Any:
        """Fail the task that handed out ``token`` with an error name and a cause."""


class AsyncReporter(Protocol):
    """The asyncio reporting methods that `relayflow.engine.Engine` has."""

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


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """A received message as the worker understands it.

    Attributes:
        body: the decoded body: JSON values, else text (bytes when it is not text at all).
        token: the task token, from the header or the body; None when there is none.
        flow: the flow's name from the headers; "" when absent. So are the next three.
        execution: the execution's name.
        step: the step's name.
        message_id: the id the integration gave the message.
        headers: every header of the message.
    """

    body: Any
    token: str | None
    flow: str = ""
    execution: str = ""
    step: str = ""
    message_id: str = ""
    headers: dict[str, Any] = field(default_factory=dict)


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


# -- visibility hooks ------------------------------------------------------------------------

_VISIBILITY_HOOKS: dict[str, VisibilityHook] = {}


def register_visibility_hook(transport_module: str, hook: VisibilityHook) -> None:
    """Use ``hook`` to extend message visibility on connections of a kombu transport.

    Args:
        transport_module: the module the transport class lives in, such as
            `kombu.transport.redis` (`type(connection.transport).__module__`).
        hook: called as ``hook(channel, delivery_tag, seconds)`` from a helper thread while
            the message's handler runs (the worker's own thread does not use the channel
            meanwhile); the message must stay hidden for ``seconds`` more from now. It
            returns False when the message is no longer hidden for this worker.
    """
    _VISIBILITY_HOOKS[transport_module] = hook


def visibility_hook_for(connection: Any) -> VisibilityHook | None:
    """The visibility hook for a kombu connection's transport, or None when it has none.

    A hook registered with `register_visibility_hook` wins; otherwise a transport module that
    defines ``extend_visibility(channel, delivery_tag, seconds)`` provides its own.
    """
    for cls in type(connection.transport).__mro__:  # a subclass gets its base's hook
        module_name = cls.__module__
        hook = _VISIBILITY_HOOKS.get(module_name)
        if hook is not None:
            return hook
        found = getattr(sys.modules.get(module_name), "extend_visibility", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None


def _extend_redis_visibility(channel: Any, delivery_tag: Any, seconds: float) -> None:
    """Hide a message delivered by kombu's Redis transport for ``seconds`` more.

    That transport gives a delivered message back to the queue when its entry in the
    unacked index is older than the channel's visibility timeout; moving the entry forward
    postpones that. ``xx`` leaves alone a message that was already given back.
    """
    score = time.time() + seconds - float(channel.visibility_timeout)
    with channel.conn_or_acquire() as client:
        client.zadd(channel.unacked_index_key, {delivery_tag: score}, xx=True)


register_visibility_hook("kombu.transport.redis", _extend_redis_visibility)


def _extend_sqs_visibility(channel: Any, delivery_tag: Any, seconds: float) -> None:
    """Hide a message delivered by kombu's SQS transport for ``seconds`` more.

    SQS's own ChangeMessageVisibility, with the receipt handle kombu keeps for the delivery;
    SQS allows at most 12 hours.
    """
    info = channel.qos.get(delivery_tag).delivery_info
    queue = channel.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
    channel.sqs(queue=queue).change_message_visibility(
        QueueUrl=info["sqs_queue"],
        ReceiptHandle=info["sqs_message"]["ReceiptHandle"],
        VisibilityTimeout=int(min(max(seconds, 0), 43_200)),
    )


register_visibility_hook("kombu.transport.SQS", _extend_sqs_visibility)


# -- messages --------------------------------------------------------------------------------


def _header_text(headers: dict[str, Any], name: str) -> str:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def decode_message(message: Any) -> TaskMessage:
    """Decode a kombu message into a `TaskMessage`; never raises.

    The body is decompressed (kombu's `compression` header) and decoded as text. JSON is
    parsed when the content type says JSON, and otherwise only when the text is a JSON object
    or array, so that a plain-text body such as ``42`` stays the text ``"42"``.
    """
    headers = dict(message.headers or {})
    raw: Any = message.body
    if headers.get("compression"):
        from kombu import compression

        with contextlib.suppress(Exception):  # a body that does not decompress stays as it is
            raw = compression.decompress(raw, headers["compression"])  # type: ignore[no-untyped-call]
    body: Any
    if isinstance(raw, bytes | bytearray | memoryview):
        encoding = message.content_encoding or "utf-8"
        try:
            body = bytes(raw).decode("utf-8" if encoding == "binary" else encoding)
        except (UnicodeDecodeError, LookupError):
            body = bytes(raw)
    else:
        body = raw
    if isinstance(body, str):
        content_type = (message.content_type or "").split(";")[0].strip().lower()
        is_json = content_type == "application/json" or content_type.endswith("+json")
        try:
            value = json.loads(body)
        except ValueError:
            pass
        else:
            if is_json or isinstance(value, dict | list):
                body = value
    token = _header_text(headers, TOKEN_HEADER)
    if not token and isinstance(body, dict) and isinstance(body.get("taskToken"), str):
        token = body["taskToken"]
    return TaskMessage(
        body=body,
        token=token or None,
        flow=_header_text(headers, FLOW_HEADER),
        execution=_header_text(headers, EXECUTION_HEADER),
        step=_header_text(headers, STEP_HEADER),
        message_id=_header_text(headers, MESSAGE_ID_HEADER),
        headers=headers,
    )


@functools.cache
def _register_transport_aliases() -> None:
    """Make kombu find the transports installed distributions declare.

    Distributions name their transports under the `kombu.transports` entry point group (this
    one declares `relayflow-sqlite`), which kombu itself does not read; an alias that kombu
    already knows is left as it is.
    """
    from kombu.transport import TRANSPORT_ALIASES

    for entry in entry_points(group="kombu.transports"):
        TRANSPORT_ALIASES.setdefault(entry.name, entry.value)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# -- the worker ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    """How one message ended: the log's words, the counter to bump, and whether to delete."""

    outcome: str
    counter: str
    ack: bool
    detail: str = ""
    level: int = logging.INFO


@dataclass(slots=True, eq=False)
class _Running:
    """One message whose handler is running, and when its visibility is next due to extend."""

    channel: Any
    delivery_tag: Any
    due: float
    visible_until: float
    warned: bool = False


class _Extenders:
    """One helper thread per worker that extends the visibility of every running task's message.

    The thread starts with the first task and calls the visibility hook for each message about
    every ``every`` seconds while its handler runs (it lives as long as the process). One thread
    for all tasks, rather than one per task, keeps a short task's cost down to two set
    operations.
    """

    def __init__(
        self, hook: VisibilityHook, every: float, seconds: float, log: logging.Logger, queue: str
    ) -> None:
        self.hook, self.every, self.seconds = hook, every, seconds
        self.log, self.queue = log, queue
        self._running: set[_Running] = set()
        self._lock = threading.Lock()  # held while hooks run: `remove` waits for them
        self._tick = threading.Condition(self._lock)  # waited on with the lock released
        self._thread: threading.Thread | None = None

    def add(self, channel: Any, delivery_tag: Any) -> _Running:
        """Start extending a message's visibility."""
        now = time.monotonic()
        entry = _Running(channel, delivery_tag, now + self.every, now + self.seconds)
        with self._lock:
            self._running.add(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"relayflow-worker-{self.queue}-extend", daemon=True
                )
                self._thread.start()
        return entry

    def remove(self, entry: _Running) -> float:
        """Stop extending; when the message's visibility ends.

        Returns once a hook call in progress has ended.
        """
        with self._lock:
            self._running.discard(entry)
        return entry.visible_until

    def _run(self) -> None:
        # A steady tick of half the period, rather than a wake-up per task: waking this thread
        # for every short task cost a busy worker a sixth of its CPU. An entry is extended at
        # most half a period late, well before its visibility (two periods by default) ends.
        with self._lock:
            while True:
                now = time.monotonic()
                for entry in [entry for entry in self._running if entry.due <= now]:
                    self._extend(entry)
                    entry.due = time.monotonic() + self.every
                self._tick.wait(self.every / 2)

    def _extend(self, entry: _Running) -> None:
        try:
            kept = self.hook(entry.channel, entry.delivery_tag, self.seconds) is not False
            problem = "" if kept else "its receipt is stale, it was delivered again"
        except Exception as exc:  # the job goes on; redelivery is the risk
            kept, problem = False, f"{type(exc).__name__}: {exc}"
        if kept:
            entry.visible_until = time.monotonic() + self.seconds
        elif not entry.warned:
            self.log.warning(
                "queue=%s: cannot extend the visibility of a running task's message (%s); "
                "another worker may run the task too",
                self.queue,
                problem,
            )
            entry.warned = True


class Worker:
    """Takes task messages off one queue, runs a handler for each, and reports the results.

    Each of the ``concurrency`` threads has its own broker connection and holds at most one
    message at a time, so no message waits unhandled in a local buffer.

    Args:
        queue: the queue's name (the MNS queue name; the routing key the integration uses).
        handler: called with each decoded body; returns the task's output, a dict.
        transport_url: the kombu broker URL, such as `redis://localhost:6379/0`.
        reporter: where results go, such as a `relayflow.client.Client`.
        concurrency: how many messages are handled at once, one thread each.
        visibility_timeout: seconds a received message stays hidden from other workers. It is
            passed to the transport as its `visibility_timeout` option, and a message whose
            report failed is given back when it runs out.
        extend_every: seconds between two calls of the visibility hook while a handler runs;
            None means half the visibility timeout, 0 never extends. A call may come up to
            half of this late, so keep it under two thirds of the visibility timeout.
        logger: where the per-message lines go; default `relayflow_mns.worker`.
        transport_options: more kombu transport options, such as `polling_interval`.
        poll_interval: the longest wait for a message in one go; `stop()` takes effect
            within about this long when the worker is idle.
        settled_codes: report refusals after which the message is deleted all the same.
        visibility_hook: the hook to use instead of the one the transport has.

    Raises:
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        queue: str,
        handler: Callable[[Any], Any],
        *,
        transport_url: str,
        reporter: Reporter,
        concurrency: int = 1,
        visibility_timeout: float = 30,
        extend_every: float | None = None,
        logger: logging.Logger | None = None,
        transport_options: dict[str, Any] | None = None,
        poll_interval: float = 1.0,
        settled_codes: Iterable[str] = SETTLED_CODES,
        visibility_hook: VisibilityHook | None = None,
    ) -> None:
        if not queue:
            raise ValueError("the queue name is empty")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be more than 0, got {visibility_timeout}")
        if extend_every is not None and extend_every < 0:
            raise ValueError(f"extend_every must be 0 or more, got {extend_every}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be more than 0, got {poll_interval}")
        self.queue = queue
        self.handler = handler
        self.transport_url = transport_url
        self.reporter = reporter
        self.concurrency = concurrency
        self.visibility_timeout = float(visibility_timeout)
        self.extend_every = visibility_timeout / 2 if extend_every is None else extend_every
        self.log = logger or logging.getLogger(_DEFAULT_LOGGER)
        self.transport_options = {
            **(transport_options or {}),
            "visibility_timeout": visibility_timeout,
        }
        self.poll_interval = poll_interval
        self.settled_codes = frozenset(settled_codes)
        self.visibility_hook = visibility_hook
        self._stopping = threading.Event()
        self._extenders: dict[VisibilityHook, _Extenders] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stats = WorkerStats()

    def __repr__(self) -> str:
        return (
            f"Worker({self.queue!r}, transport_url={_safe_url(self.transport_url)!r}, "
            f"concurrency={self.concurrency})"
        )

    @property
    def stats(self) -> WorkerStats:
        """A copy of the counters."""
        with self._lock:
            return replace(self._stats)

    @property
    def running(self) -> bool:
        """Whether any of the worker's threads is still alive."""
        return any(thread.is_alive() for thread in self._threads)

    def _connection(self) -> Any:
        _register_transport_aliases()
        return Connection(  # type: ignore[no-untyped-call]
            self.transport_url,
            transport=redis_transport.transport_for(self.transport_url),
            transport_options=dict(self.transport_options),
        )

    def check_broker(self) -> None:
        """Connect to the broker once, to fail early.

        Raises:
            WorkerError: the transport is unknown or the broker does not answer.
        """
        where = _safe_url(self.transport_url)
        connection: Any = None
        try:
            connection = self._connection()
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except (KeyError, ImportError) as exc:
            scheme = self.transport_url.partition(":")[0]
            raise WorkerError(
                f"cannot load the transport '{scheme}' of {where}: "
                f"{exc.args[0] if exc.args else exc}"
            ) from exc
        except Exception as exc:  # kombu raises many kinds here
            raise WorkerError(f"cannot reach the broker at {where}: {exc}") from exc
        finally:
            if connection is not None:
                connection.release()

    def start(self) -> None:
        """Check the broker, then start the threads; returns at once.

        Raises:
            WorkerError: the broker cannot be used (see `check_broker`).
            RuntimeError: the worker was started already.
        """
        if self._threads:
            raise RuntimeError("this worker was started already; make a new one")
        self.check_broker()
        self._stopping.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._serve, name=f"relayflow-worker-{self.queue}-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def request_stop(self) -> None:
        """Ask the threads to stop without waiting for them; safe in a signal handler."""
        self._stopping.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop receiving, let every message being handled finish, and wait for the threads.

        A message whose report failed and that waits out its visibility timeout is given back
        to the queue at once.

        Args:
            timeout: seconds to wait for the threads; None waits until they end.

        Returns:
            True when every thread has ended.
        """
        self._stopping.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; True when it was, False after ``timeout``."""
        return self._stopping.wait(timeout)

    def run(self) -> None:
        """Start, block until a stop is requested, then stop gracefully.

        Raises:
            WorkerError: the broker cannot be used.
        """
        self.start()
        try:
            # Short waits, so that signal handlers in the main thread run promptly.
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the threads ----------------------------------------------------------------

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)

    def _serve(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consume()
                return
            except Exception as exc:  # the broker went away: reconnect
                self.log.warning(
                    "queue=%s: lost the broker at %s (%s: %s); connecting again in %.1f s",
                    self.queue,
                    _safe_url(self.transport_url),
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)

    def _consume(self) -> None:
        inbox: list[Any] = []
        with self._connection() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            channel = connection.channel()
            try:
                consumer: Any = Consumer(  # type: ignore[no-untyped-call]
                    channel,
                    queues=[Queue(self.queue, routing_key=self.queue)],  # type: ignore[no-untyped-call]
                    on_message=inbox.append,
                    no_ack=False,
                )
                consumer.qos(prefetch_count=1)
                consumer.consume()
                hook = self.visibility_hook or visibility_hook_for(connection)
                while not self._stopping.is_set():
                    try:
                        connection.drain_events(timeout=self.poll_interval)
                    except TimeoutError:
                        continue
                    while inbox and not self._stopping.is_set():
                        self._handle(channel, inbox.pop(0), hook)
            finally:
                for message in inbox:  # received, not started: give it back
                    self._give_back(message)
                inbox.clear()
                with contextlib.suppress(Exception):  # a broken channel may not close cleanly
                    channel.close()

    def _give_back(self, message: Any) -> None:
        try:
            message.requeue()
        except Exception as exc:  # the broker's own timeout gives it back
            self.log.warning(
                "queue=%s: cannot give a message back (%s: %s); it returns after its "
                "visibility timeout",
                self.queue,
                type(exc).__name__,
                exc,
            )

    def _handle(self, channel: Any, message: Any, hook: VisibilityHook | None) -> None:
        started = time.monotonic()
        self._count("received")
        task = decode_message(message)
        visible_until = started + self.visibility_timeout
        output: Any = None
        failure: tuple[str, str] | None = None
        extenders = self._extenders_for(hook)
        running = None if extenders is None else extenders.add(channel, message.delivery_tag)
        try:
            output = self.handler(task.body)
        except BaseException as exc:  # SystemExit too: the task fails with its name
            failure = (type(exc).__name__[:MAX_ERROR], str(exc)[:MAX_CAUSE])
        finally:
            if extenders is not None and running is not None:
                visible_until = max(visible_until, extenders.remove(running))
        if failure is None:
            failure = _check_output(output)
        result = self._report(task, output, failure)
        ack_error: Exception | None = None
        if result.ack:
            try:
                message.ack()
            except Exception as exc:  # the task has its answer; a duplicate is harmless
                ack_error = exc
                result.detail += (
                    f" (the message could not be deleted: {type(exc).__name__}: {exc}; "
                    "it will be delivered again)"
                )
                result.level = logging.WARNING
        self._count(result.counter)
        self._log_line(task, result, started)
        if ack_error is not None:
            # The channel may still count the message as in hand (kombu's Redis QoS does), and
            # would never ask for another: start over on a fresh connection.
            raise ConnectionError(f"acknowledging failed: {ack_error}") from ack_error
        if not result.ack:
            self._stopping.wait(max(0.0, visible_until - time.monotonic()))
            self._give_back(message)

    def _extenders_for(self, hook: VisibilityHook | None) -> _Extenders | None:
        """The worker's extender thread for ``hook`` (one per hook: transports differ)."""
        if hook is None or self.extend_every <= 0:
            return None
        with self._lock:
            extenders = self._extenders.get(hook)
            if extenders is None:
                extenders = _Extenders(
                    hook, self.extend_every, self.visibility_timeout, self.log, self.queue
                )
                self._extenders[hook] = extenders
        return extenders

    def _report(self, task: TaskMessage, output: Any, failure: tuple[str, str] | None) -> _Outcome:
        if task.token is None:
            detail = "no task token, nothing to report"
            if failure is not None:
                detail += f"; the handler failed with {failure[0]}: {failure[1]}"
            return _Outcome("no-token", "no_token", True, detail, logging.WARNING)
        try:
            if failure is None:
                self.reporter.report_task_succeeded(task.token, output)
            else:
                self.reporter.report_task_failed(task.token, failure[0], failure[1])
        except Exception as exc:  # sorted by the refusal's code below
            code = getattr(exc, "code", None)
            reason = f"{type(exc).__name__}: {exc}"
            if isinstance(code, str) and code in self.settled_codes:
                return _Outcome("settled", "settled", True, f"report refused: {reason}")
            return _Outcome(
                "kept",
                "kept",
                False,
                f"report not made ({reason}); the message will be delivered again",
                logging.WARNING,
            )
        if failure is None:
            return _Outcome("succeeded", "succeeded", True)
        return _Outcome("failed", "failed", True, f"error={failure[0]} cause={failure[1]!r}")

    def _log_line(self, task: TaskMessage, result: _Outcome, started: float) -> None:
        duration_ms = round((time.monotonic() - started) * 1000)
        self.log.log(
            result.level,
            "queue=%s flow=%s execution=%s step=%s outcome=%s duration_ms=%d%s",
            self.queue,
            task.flow or "-",
            task.execution or "-",
            task.step or "-",
            result.outcome,
            duration_ms,
            f" {result.detail}" if result.detail else "",
        )


def _check_output(output: Any) -> tuple[str, str] | None:
    """None when ``output`` can be reported as a task's output, else the failure to report."""
    if not isinstance(output, dict):
        return INVALID_OUTPUT, f"the handler returned {type(output).__name__}, not a dict"
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        return INVALID_OUTPUT, f"the handler's output is not JSON: {exc}"[:MAX_CAUSE]
    return None


def run_worker(
    queue: str,
    handler: Callable[[Any], Any],
    *,
    transport_url: str,
    reporter: Reporter,
    concurrency: int = 1,
    visibility_timeout: float = 30,
    extend_every: float | None = None,
    logger: logging.Logger | None = None,
    transport_options: dict[str, Any] | None = None,
    handle_signals: bool = True,
) -> WorkerStats:
    """Run a `Worker` until SIGTERM or SIGINT, then stop it gracefully.

    The arguments are `Worker`'s. With ``handle_signals`` (and on the main thread) SIGTERM and
    SIGINT request a stop; the previous handlers are put back afterwards.

    Returns:
        The worker's counters at the end.

    Raises:
        WorkerError: the broker cannot be used.
    """
    worker = Worker(
        queue,
        handler,
        transport_url=transport_url,
        reporter=reporter,
        concurrency=concurrency,
        visibility_timeout=visibility_timeout,
        extend_every=extend_every,
        logger=logger,
        transport_options=transport_options,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        worker.request_stop()

    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        worker.run()
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
    return worker.stats
