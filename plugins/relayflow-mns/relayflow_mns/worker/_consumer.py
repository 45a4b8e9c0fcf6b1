"""The kombu consumer: threads that take messages off queues, run the handler, report, ack.

What to report and whether to delete a message is decided by the core (`relayflow.worker`);
this module receives, extends visibility while a handler runs (`_visibility`), acknowledges or
gives back, and reconnects with kombu's own machinery (`Connection.ensure_connection`) when the
broker goes away.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from types import FrameType
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

from relayflow.worker import (
    SETTLED_CODES,
    Outcome,
    Reporter,
    WorkerError,
    WorkerStats,
    report,
    run_handler,
)
from relayflow.worker.hooks import WorkerInfo, WorkerMessage, WorkerPlugins
from relayflow_mns import redis_transport
from relayflow_mns._transports import register_transport_aliases, safe_url
from relayflow_mns.worker._messages import TOKEN_HEADER, TaskMessage, decode_message
from relayflow_mns.worker._visibility import VisibilityHook, _Extenders, visibility_hook_for

__all__ = ["Worker", "run_worker"]

_DEFAULT_LOGGER = "relayflow_mns.worker"
#: kombu's reconnection policy: the first retry after half a second, then 2 s more each time,
#: at most 30 s apart, for as long as it takes.
_RETRY = {"interval_start": 0.5, "interval_step": 2.0, "interval_max": 30.0}
#: At least this long between two reconnections, so that a broker that accepts connections
#: and then drops them does not make a thread spin.
_MIN_RESTART_SECONDS = 1.0
#: What plugins see of a message's headers (`WorkerMessage.headers`): at most this many,
#: names and values cut to these lengths.
MAX_PLUGIN_HEADERS = 64
MAX_HEADER_NAME_CHARS = 200
MAX_HEADER_VALUE_CHARS = 1000


def _header_text(value: Any) -> str:
    text: str
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes | bytearray):
        text = bytes(value[: MAX_HEADER_VALUE_CHARS * 4]).decode("utf-8", "replace")
    else:
        text = str(value)
    return text[:MAX_HEADER_VALUE_CHARS]


def plugin_headers(headers: dict[str, Any]) -> dict[str, str]:
    """A message's headers as plugins see them: text, bounded, without the task token."""
    seen: dict[str, str] = {}
    for name, value in headers.items():
        if len(seen) >= MAX_PLUGIN_HEADERS:
            break
        if not isinstance(name, str) or name.lower() == TOKEN_HEADER:
            continue
        seen[name[:MAX_HEADER_NAME_CHARS]] = _header_text(value)
    return seen


class _Stopping(Exception):
    """Raised from kombu's retry callback to give up reconnecting when a stop is requested."""


class _Restart(Exception):
    """The channel cannot be trusted any more (an ack failed): start over on a new connection."""


class Worker:
    """Takes task messages off one or more queues, runs a handler for each, reports the results.

    Each of the ``concurrency`` threads has its own broker connection, consumes every queue,
    and holds at most one message at a time, so no message waits unhandled in a local buffer.

    Args:
        queue: the queue's name (the MNS queue name; the routing key the integration uses),
            or several names: one worker then serves them all.
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
        plugins: worker plugins (`relayflow.worker.hooks.WorkerPlugins.load()`) that hear of
            the worker's start and stop and of each message; one that raises is logged and
            never fails a message or stops the worker.

    Raises:
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        queue: str | Sequence[str],
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
        plugins: WorkerPlugins | None = None,
    ) -> None:
        queues = (queue,) if isinstance(queue, str) else tuple(dict.fromkeys(queue))
        if not queues or not all(queues):
            raise ValueError("the queue name is empty")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be more than 0, got {visibility_timeout}")
        if extend_every is not None and extend_every < 0:
            raise ValueError(f"extend_every must be 0 or more, got {extend_every}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be more than 0, got {poll_interval}")
        self.queues = queues
        self.queue = ",".join(queues)
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
        self._error: BaseException | None = None
        # Without a plugin registered, messages cost no calls at all.
        self._plugins = plugins if plugins is not None and plugins.active else None
        self._told_started = False

    def __repr__(self) -> str:
        return (
            f"Worker({self.queue!r}, transport_url={safe_url(self.transport_url)!r}, "
            f"concurrency={self.concurrency})"
        )

    @property
    def stats(self) -> WorkerStats:
        """A copy of the counters."""
        with self._lock:
            return replace(self._stats)

    @property
    def info(self) -> WorkerInfo:
        """The worker as plugins see it (never the broker URL, which may hold a password)."""
        scheme = self.transport_url.partition("://")[0] if "://" in self.transport_url else ""
        return WorkerInfo(self.queues, self.concurrency, scheme[:40])

    @property
    def running(self) -> bool:
        """Whether any of the worker's threads is still alive."""
        return any(thread.is_alive() for thread in self._threads)

    @property
    def error(self) -> BaseException | None:
        """Why the worker stopped by itself, or None.

        A `WorkerError` when the server refused its credentials; any other exception is a
        bug in the worker, logged with its traceback when it happened.
        """
        return self._error

    def _connection(self) -> Any:
        register_transport_aliases()
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
        where = safe_url(self.transport_url)
        connection: Any = None
        try:
            connection = self._connection()
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except (KeyError, ImportError) as exc:
            scheme = self.transport_url.partition(":")[0]
            raise WorkerError(
                f"cannot load the transport '{scheme}' of {where}: "
                f"{exc.args[0] if exc.args else exc}",
                "UnknownTransport",
            ) from exc
        except Exception as exc:  # kombu raises many kinds here
            raise WorkerError(
                f"cannot reach the broker at {where}: {exc}", "BrokerUnreachable"
            ) from exc
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
        # `_stopping` is not cleared: a stop asked for before the start (a SIGTERM while the
        # broker was being checked) stops the threads at once instead of being forgotten.
        if self._plugins is not None:
            self._told_started = True
            self._plugins.started(self.info)
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
        with self._lock:
            told, self._told_started = self._told_started, False
        if told and self._plugins is not None:
            self._plugins.stopping(self.info)
        return not self.running

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; True when it was, False after ``timeout``."""
        return self._stopping.wait(timeout)

    def run(self, started: Callable[[], None] | None = None) -> None:
        """Start, block until a stop is requested, then stop gracefully.

        Args:
            started: called once the threads run (after `start`), e.g. to announce them.

        Raises:
            WorkerError: the broker cannot be used.
        """
        self.start()
        try:
            if started is not None:
                started()
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

    def _fail(self, error: BaseException) -> None:
        """Stop the whole worker for ``error`` (the first one is kept)."""
        with self._lock:
            if self._error is None:
                self._error = error
        self._stopping.set()

    def _serve(self) -> None:
        """One thread: consume on a fresh connection, and start over when the broker fails."""
        last_start = 0.0
        while not self._stopping.is_set():
            pause = last_start + _MIN_RESTART_SECONDS - time.monotonic()
            if pause > 0 and self._stopping.wait(pause):
                return
            last_start = time.monotonic()
            connection = self._connection()
            lost = (*connection.connection_errors, *connection.channel_errors, _Restart)
            try:
                connection.ensure_connection(
                    errback=self._unreachable,
                    max_retries=None,
                    callback=self._raise_if_stopping,
                    **_RETRY,
                )
                self._consume(connection)
                return
            except _Stopping:
                return
            except lost as exc:
                self.log.warning(
                    "queue=%s: lost the broker at %s (%s: %s); connecting again",
                    self.queue,
                    safe_url(self.transport_url),
                    type(exc).__name__,
                    exc,
                )
            except Exception as exc:  # a bug: say so once, loudly, and stop
                self.log.exception(
                    "queue=%s: the worker failed (%s: %s); this is a bug, not the broker; stopping",
                    self.queue,
                    type(exc).__name__,
                    exc,
                )
                self._fail(exc)
                return
            finally:
                with contextlib.suppress(Exception):  # a broken connection may not close cleanly
                    connection.release()

    def _unreachable(self, exc: BaseException, interval: float) -> None:
        self.log.warning(
            "queue=%s: cannot reach the broker at %s (%s: %s); trying again in %.1f s",
            self.queue,
            safe_url(self.transport_url),
            type(exc).__name__,
            exc,
            interval,
        )

    def _raise_if_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopping

    def _consume(self, connection: Any) -> None:
        inbox: list[Any] = []
        channel = connection.channel()
        try:
            consumer: Any = Consumer(  # type: ignore[no-untyped-call]
                channel,
                queues=[Queue(name, routing_key=name) for name in self.queues],  # type: ignore[no-untyped-call]
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
        plugins, seen = self._plugins, None
        if plugins is None:
            result, visible_until = self._run(channel, message, task, hook, started)
        else:
            seen = WorkerMessage(
                self._queue_of(message),
                task.flow,
                task.execution,
                task.step,
                plugin_headers(task.headers),
            )
            with plugins.message(seen):
                result, visible_until = self._run(channel, message, task, hook, started)
        reported = time.monotonic()
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
        self._log_line(message, task, result, started)
        if plugins is not None and seen is not None:
            plugins.handled(seen, result.outcome, reported - started)
        if ack_error is not None:
            # The channel may still count the message as in hand (kombu's Redis QoS does), and
            # would never ask for another: start over on a fresh connection.
            raise _Restart(f"acknowledging failed: {ack_error}") from ack_error
        if result.stop is not None:
            self._fail(result.stop)
            self._give_back(message)
        elif not result.ack:
            self._stopping.wait(max(0.0, visible_until - time.monotonic()))
            self._give_back(message)

    def _run(
        self,
        channel: Any,
        message: Any,
        task: TaskMessage,
        hook: VisibilityHook | None,
        started: float,
    ) -> tuple[Outcome, float]:
        """Run the handler (its message kept hidden meanwhile) and report.

        Returns:
            The outcome, and until when the message stays hidden.
        """
        visible_until = started + self.visibility_timeout
        extenders = self._extenders_for(hook)
        running = None if extenders is None else extenders.add(channel, message.delivery_tag)
        try:
            output, failure = run_handler(self.handler, task.body)
        finally:
            if extenders is not None and running is not None:
                visible_until = max(visible_until, extenders.remove(running))
        return report(self.reporter, task.token, output, failure, self.settled_codes), visible_until

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

    def _queue_of(self, message: Any) -> str:
        """The queue ``message`` came from (its routing key, when the worker serves several)."""
        if len(self.queues) == 1:
            return self.queue
        queue = (getattr(message, "delivery_info", None) or {}).get("routing_key")
        return str(queue) if queue in self.queues else self.queue

    def _log_line(self, message: Any, task: TaskMessage, result: Outcome, started: float) -> None:
        duration_ms = round((time.monotonic() - started) * 1000)
        self.log.log(
            result.level,
            "queue=%s flow=%s execution=%s step=%s outcome=%s duration_ms=%d%s",
            self._queue_of(message),
            task.flow or "-",
            task.execution or "-",
            task.step or "-",
            result.outcome,
            duration_ms,
            f" {result.detail}" if result.detail else "",
        )


def run_worker(
    queue: str | Sequence[str],
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
    plugins: WorkerPlugins | None = None,
    started: Callable[[], None] | None = None,
) -> WorkerStats:
    """Run a `Worker` until SIGTERM or SIGINT, then stop it gracefully.

    The arguments are `Worker`'s. With ``handle_signals`` (and on the main thread) SIGTERM and
    SIGINT request a stop; the previous handlers are put back afterwards. ``started`` is
    called once they are in place and the worker's threads run: whatever it announces ("send
    SIGTERM to stop") is then true.

    Returns:
        The worker's counters at the end.

    Raises:
        WorkerError: the broker cannot be used, or the server refused a report for the
            worker's credentials (the message was left on the queue).
        Exception: the worker stopped on a bug (`Worker.error`; logged with its traceback).
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
        plugins=plugins,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        worker.request_stop()

    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        worker.run(started)
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
    if worker.error is not None:
        raise worker.error
    return worker.stats
