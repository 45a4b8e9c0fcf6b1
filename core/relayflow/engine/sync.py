"""A plain synchronous face over the async engine, for scripts and tests.

    with SyncEngine(open_store("sqlite:///relayflow.db")) as engine:
        engine.create_flow("orders", definition=text)
        engine.start_execution("orders", {"id": 7}, name="order-7")
        print(engine.describe_execution("orders", "order-7", wait_seconds=30).status)

The engine runs on an event loop in a background thread; each method waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from relayflow.engine.engine import Engine
from relayflow.results import ExecutionInfo, FlowInfo, HistoryPage, Page

__all__ = ["SyncEngine"]

T = TypeVar("T")


class SyncEngine:
    """Runs an `Engine` (built from the same arguments) on a background event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="relayflow-loop", daemon=True
        )
        self._thread.start()
        self.engine = self._call(self._make(args, kwargs))

    @staticmethod
    async def _make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Engine:
        engine = Engine(*args, **kwargs)
        await engine.start()
        return engine

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self, grace_seconds: float = 5.0) -> None:
        """Stop the engine and its loop."""
        self._call(self.engine.close(grace_seconds))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_flow(self, name: str, definition: str, description: str = "") -> FlowInfo:
        """See `Engine.create_flow`."""
        return self._call(self.engine.create_flow(name, definition, description))

    def update_flow(
        self, name: str, definition: str | None = None, description: str | None = None
    ) -> FlowInfo:
        """See `Engine.update_flow`."""
        return self._call(self.engine.update_flow(name, definition, description))

    def describe_flow(self, name: str) -> FlowInfo:
        """See `Engine.describe_flow`."""
        return self._call(self.engine.describe_flow(name))

    def list_flows(self, limit: int | None = None, next_token: str = "") -> Page[FlowInfo]:
        """See `Engine.list_flows`."""
        return self._call(self.engine.list_flows(limit, next_token))

    def delete_flow(self, name: str) -> None:
        """See `Engine.delete_flow`."""
        self._call(self.engine.delete_flow(name))

    def start_execution(
        self, flow_name: str, input: Any = None, name: str | None = None
    ) -> ExecutionInfo:
        """See `Engine.start_execution`."""
        return self._call(self.engine.start_execution(flow_name, input, name))

    def describe_execution(
        self, flow_name: str, name: str, wait_seconds: float = 0
    ) -> ExecutionInfo:
        """See `Engine.describe_execution`."""
        return self._call(self.engine.describe_execution(flow_name, name, wait_seconds))

    def list_executions(self, flow_name: str, **filters: Any) -> Page[ExecutionInfo]:
        """See `Engine.list_executions`."""
        return self._call(self.engine.list_executions(flow_name, **filters))

    def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str = ""
    ) -> HistoryPage:
        """See `Engine.get_execution_history`."""
        return self._call(self.engine.get_execution_history(flow_name, name, limit, next_token))

    def stop_execution(
        self, flow_name: str, name: str, error: str = "", cause: str = ""
    ) -> ExecutionInfo:
        """See `Engine.stop_execution`."""
        return self._call(self.engine.stop_execution(flow_name, name, error, cause))

    def report_task_succeeded(self, token: str, output: Any) -> int:
        """See `Engine.report_task_succeeded`."""
        return self._call(self.engine.report_task_succeeded(token, output))

    def report_task_failed(self, token: str, error: str, cause: str = "") -> int:
        """See `Engine.report_task_failed`."""
        return self._call(self.engine.report_task_failed(token, error, cause))
