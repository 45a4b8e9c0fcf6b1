"""Consumers of the seed scenario's queue for the latency benchmarks, in the benchmark's process.

`Inbox` takes messages when asked; `WaitingInbox` waits on a thread of its own and notes when
each message was in hand, as an idle `relayflow worker` thread would. `bench_queue.py` and
`floor.py` measure report -> next message with them.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import Any

from kombu import Connection, Consumer, Queue
from replicas import QUEUE

__all__ = ["Inbox", "WaitingInbox"]


class Inbox:
    """A kombu consumer of `fnf-demo` in this process; `take()` waits for the next message."""

    def __init__(self, transport: str, options: dict[str, Any]) -> None:
        self.connection = Connection(transport, transport_options=options)
        self.connection.ensure_connection(max_retries=3)
        self.messages: list[Any] = []
        self.consumer = Consumer(
            self.connection.channel(),
            queues=[Queue(QUEUE, routing_key=QUEUE)],
            on_message=self.messages.append,
            no_ack=False,
        )
        self.consumer.qos(prefetch_count=1)
        self.consumer.consume()

    def take(self, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while not self.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no message came within the timeout")
            with contextlib.suppress(TimeoutError, socket.timeout):
                self.connection.drain_events(timeout=min(left, 1.0))
        return self.messages.pop(0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.cancel()
        self.connection.release()


class WaitingInbox:
    """An `Inbox` on a thread of its own, always waiting, as an idle worker thread waits.

    A `relayflow worker` with ``--concurrency`` above 1 has threads blocked in their receive
    while one of them reports: the next task's message is taken as soon as it is in the
    queue. `take()` gives each message with the `time.perf_counter` at which the consumer had
    it in hand (kombu's receive and its acknowledgement bookkeeping done); the message is
    acknowledged after that, on the consumer's own connection.
    """

    def __init__(self, transport: str) -> None:
        self.inbox = Inbox(transport, {})
        self.inbox.consumer.on_message = self._arrived
        self.arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-inbox", daemon=True)
        self._thread.start()

    def _arrived(self, message: Any) -> None:
        at = time.perf_counter()
        headers = dict(message.headers)
        message.ack()
        self.arrivals.put((at, headers))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, socket.timeout):
                self.inbox.connection.drain_events(timeout=0.2)

    def take(self, timeout: float = 10) -> tuple[float, dict[str, Any]]:
        try:
            return self.arrivals.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError("no message came within the timeout") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.inbox.close()
