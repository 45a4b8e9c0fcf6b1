"""Long polls: callers waiting for an execution to end, woken by the commit that ends it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["EndWaiters"]

Key = tuple[str, str]  # (flow, execution)


class EndWaiters:
    """Who waits for which execution's end, so that an end wakes only its own waiters."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._waiters: dict[Key, set[asyncio.Future[None]]] = {}

    def wake(self, keys: Iterable[Key]) -> None:
        """The executions ``keys`` have ended (their end has committed)."""
        for key in keys:
            for waiter in self._waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, key: Key, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
        """Wait until execution ``key`` may have ended, or ``timeout`` seconds pass.

        ``check`` reads whether it has: it runs first, and again each time the execution's end
        is committed (or every few seconds, as a backstop).
        """
        loop = asyncio.get_running_loop()
        deadline = self._clock() + timeout
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, set()).add(waiter)  # before the check: no gap
            try:
                if await check():
                    return
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 5.0)):
                        await waiter
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]
