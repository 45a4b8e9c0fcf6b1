"""Long polls: callers waiting for an execution to end, woken by the commit that ends it.

On one engine the commit that ends an execution wakes its waiters directly. With several
engines on one store, the end may commit on another engine: its transaction notifies the
executions it ended, and the runtime's listener wakes them here (`wake`, or `wake_all` when the
message names no executions or some may have been missed). Each waiter also re-checks every
``recheck_seconds``, so a lost notification costs at most that.

When the engine shuts down, `close` answers every long poll at once (after one last check), and
any poll begun afterwards returns after its first check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["RECHECK_SECONDS", "EndWaiters"]

Key = tuple[str, str]  # (flow, execution)

#: How often a waiter looks again by itself when ends reach it as they commit.
RECHECK_SECONDS = 5.0


class EndWaiters:
    """Who waits for which execution's end, so that an end wakes only its own waiters.

    Args:
        clock: the time source (seconds since the epoch).
        recheck_seconds: how often a waiter looks again without being woken.
    """

    def __init__(
        self, clock: Callable[[], float], recheck_seconds: float = RECHECK_SECONDS
    ) -> None:
        self._clock = clock
        self._waiters: dict[Key, set[asyncio.Future[None]]] = {}
        self.recheck_seconds = recheck_seconds
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `close` was called: waits return after their next check."""
        return self._closed

    def wake(self, keys: Iterable[Key]) -> None:
        """The executions ``keys`` have ended (their end has committed)."""
        for key in keys:
            for waiter in self._waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)

    def wake_all(self) -> None:
        """Any execution may have ended: every waiter checks again."""
        self.wake(list(self._waiters))

    def close(self) -> None:
        """Answer every wait now, and every later one after its first check."""
        self._closed = True
        self.wake_all()

    async def wait(self, key: Key, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
        """Wait until execution ``key`` may have ended, or ``timeout`` seconds pass.

        ``check`` reads whether it has: it runs first, and again each time the execution's end
        is committed (or every ``recheck_seconds``, as a backstop). After `close` it runs once
        more and the wait returns, whatever it found.
        """
        loop = asyncio.get_running_loop()
        deadline = self._clock() + timeout
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, set()).add(waiter)  # before the check: no gap
            try:
                if await check() or self._closed:
                    return
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, self.recheck_seconds)):
                        await waiter
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]
