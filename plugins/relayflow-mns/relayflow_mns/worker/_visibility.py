"""Keeping a running task's message hidden: the transports' hooks and the thread calling them.

A transport module that defines ``extend_visibility(channel, delivery_tag, seconds)`` brings
its own hook (`relayflow_mns.sqlite_transport`, `relayflow_mns.redis_transport`); kombu's own
modules get theirs from a small table here (its Redis transport the same function as ours, its
SQS transport SQS's ChangeMessageVisibility). kombu's `memory://` needs none.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relayflow_mns import redis_transport

__all__ = ["VisibilityHook", "register_visibility_hook", "visibility_hook_for"]

VisibilityHook = Callable[[Any, Any, float], object]
"""``hook(channel, delivery_tag, seconds)``: keep a delivered message hidden for ``seconds``.

A hook may return False to say that the message is no longer the worker's (its receipt went
stale: it was redelivered); any other return value, None included, means it worked.
"""


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


# Hooks for transport modules that cannot define `extend_visibility` themselves (kombu's).
_VISIBILITY_HOOKS: dict[str, VisibilityHook] = {
    "kombu.transport.redis": redis_transport.extend_visibility,
    "kombu.transport.SQS": _extend_sqs_visibility,
}


def register_visibility_hook(transport_module: str, hook: VisibilityHook) -> None:
    """Use ``hook`` to extend message visibility on connections of a kombu transport.

    Needed only for a transport whose module does not define ``extend_visibility``.

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
