"""LISTEN for the PostgreSQL store: one connection a channel, read on the event loop.

`relayflow.store.postgres.PostgresStore.listen` makes one `PgListener` per channel. Its
connection is asynchronous and its own, so that a long poll on one replica wakes when another
replica's commit notifies, without a thread; a lost connection is made again with backoff, and
the callback then hears ``None`` (notifications may have been missed meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relayflow.store.base import StoreError

if TYPE_CHECKING:
    import psycopg

    from relayflow.store.postgres import PostgresStore

__all__ = ["PgListener"]

log = logging.getLogger("relayflow.store")


class PgListener:
    """A LISTEN on a connection of its own, read by a task on the event loop."""

    def __init__(
        self, store: PostgresStore, channel: str, callback: Callable[[str | None], None]
    ) -> None:
        self._store = store
        self._channel = channel
        self._callback = callback
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Connect, LISTEN, and start reading (listening has begun when this returns)."""
        self._conn = await self._store._listen_connection(self._channel)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"relayflow-listen-{self._channel}")

    def _call(self, payload: str | None) -> None:
        try:
            self._callback(payload)
        except Exception:
            log.exception("a listener of %s failed", self._channel)

    async def _run(self) -> None:
        psycopg = self._store._psycopg
        try:
            while True:
                assert self._conn is not None
                try:
                    async for note in self._conn.notifies():
                        self._call(note.payload)
                except psycopg.Error as exc:
                    log.warning(
                        "lost the notifications of %s (%s); connecting again",
                        self._store.where,
                        self._store._reason(exc),
                    )
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
                self._conn = await self._reconnect()
                self._call(None)  # anything may have changed meanwhile
        finally:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
                self._conn = None

    async def _reconnect(self) -> psycopg.AsyncConnection[Any]:
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._store._listen_connection(self._channel)
            except StoreError as exc:
                log.debug("listening again failed: %s", exc)
                delay = min(delay * 2, 5.0)

    def cancel(self) -> None:
        """End the task from any thread (the store is closing)."""
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(task.cancel)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._store._listeners.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
