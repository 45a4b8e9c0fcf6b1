"""A plain synchronous face over the async engine, for scripts and tests.

    with SyncEngine(open_store("sqlite:///relayflow.db")) as engine:
        engine.create_flow("orders", definition=text)
        engine.start_execution("orders", {"id": 7}, name="order-7")
        print(engine.describe_execution("orders", "order-7", wait_seconds=30).status)

The engine runs on an event loop in a background thread; each method waits for its result.
The methods, their arguments and their results (`relayflow.results`) are those of
`relayflow.client.Client`, so a script moves from this embedded engine to a server by changing
the line that makes it: see "From embedded to remote" in docs/engine.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from relayflow.engine.bulk import ExecutionFilter
from relayflow.engine.engine import Engine
from relayflow.flow_objects import ScheduleInfo
from relayflow.results import (
    BulkPage,
    ExecutionInfo,
    FlowInfo,
    HistoryEvent,
    HistoryPage,
    Page,
    PurgeResult,
    WaitingWork,
)

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

    def create_flow(
        self,
        name: str,
        definition: str,
        description: str = "",
        role_arn: str | None = None,
        *,
        execution_mode: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> FlowInfo:
        """See `Engine.create_flow` (and `Client.create_flow`: the same arguments).

        ``environment`` is the flow's variables, names to values, as the client takes them.
        """
        return self._call(
            self.engine.create_flow(
                name,
                definition,
                description,
                role_arn=role_arn or "",
                execution_mode=execution_mode or "Standard",
                environment=_environment(environment) or "",
            )
        )

    def update_flow(
        self,
        name: str,
        definition: str | None = None,
        description: str | None = None,
        role_arn: str | None = None,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> FlowInfo:
        """See `Engine.update_flow`; ``environment`` (names to values) replaces the variables."""
        return self._call(
            self.engine.update_flow(
                name, definition, description, role_arn, environment=_environment(environment)
            )
        )

    def describe_flow(self, name: str, *, flow_version: int | str | None = None) -> FlowInfo:
        """See `Engine.describe_flow`; ``flow_version`` shows a published version."""
        return self._call(self.engine.describe_flow(name, flow_version or ""))

    def list_flows(self, limit: int | None = None, next_token: str | None = "") -> Page[FlowInfo]:
        """See `Engine.list_flows`; `iter_flows` walks every page."""
        return self._call(self.engine.list_flows(limit, next_token or ""))

    def iter_flows(self, page_size: int | None = None) -> Iterator[FlowInfo]:
        """Every flow, a page at a time (as `Client.iter_flows`)."""
        return _walk(lambda token: self.list_flows(page_size, token))

    def delete_flow(self, name: str, *, force: bool = False) -> None:
        """See `Engine.delete_flow`; ``force`` stops its running executions first."""
        self._call(self.engine.delete_flow(name, force=force))

    def start_execution(
        self,
        flow_name: str,
        input: Any = None,
        name: str | None = None,
        callback_token: str | None = None,
        *,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """See `Engine.start_execution`; ``qualifier`` is a published version or an alias."""
        return self._call(
            self.engine.start_execution(
                flow_name, input, name, callback_token or "", qualifier=qualifier or ""
            )
        )

    def start_sync_execution(
        self,
        flow_name: str,
        input: Any = None,
        name: str | None = None,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """See `Engine.start_sync_execution`: an Express flow run to its end."""
        return self._call(self.engine.start_sync_execution(flow_name, input, name, qualifier or ""))

    def describe_execution(
        self, flow_name: str, name: str, wait_seconds: float = 0, *, include_waiting: bool = False
    ) -> ExecutionInfo:
        """See `Engine.describe_execution`; ``include_waiting`` fills the result's `waiting`."""
        return self._call(
            self.engine.describe_execution(
                flow_name, name, wait_seconds, include_waiting=include_waiting
            )
        )

    def wait_for_execution(
        self, flow_name: str, name: str, timeout: float | None = None
    ) -> ExecutionInfo:
        """Wait until the execution ends, or ``timeout`` seconds pass; returns the last state.

        As `Client.wait_for_execution`: the result's `done` says whether it ended.
        """
        return self._call(self.engine.wait_for_execution(flow_name, name, timeout))

    def list_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        limit: int | None = None,
        next_token: str | None = "",
        *,
        started_after: datetime | str | float | None = None,
        started_before: datetime | str | float | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
        qualifier: str | None = None,
    ) -> Page[ExecutionInfo]:
        """See `Engine.list_executions`; the arguments are `Client.list_executions`'s.

        ``started_after`` and ``started_before`` take an aware datetime, RFC 3339 text or
        seconds since the epoch; ``started_from`` and ``started_to`` (seconds) are the
        engine's names for them.
        """
        after = _seconds(started_after, "started_after")
        before = _seconds(started_before, "started_before")
        return self._call(
            self.engine.list_executions(
                flow_name,
                status=status,
                name_prefix=name_prefix,
                started_from=started_from if after is None else after,
                started_to=started_to if before is None else before,
                limit=limit,
                next_token=next_token or "",
                qualifier=qualifier or "",
            )
        )

    def iter_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        page_size: int | None = None,
        *,
        qualifier: str | None = None,
    ) -> Iterator[ExecutionInfo]:
        """Every execution of a flow that matches, a page at a time (as the client's)."""
        return _walk(
            lambda token: self.list_executions(
                flow_name, status, name_prefix, page_size, token, qualifier=qualifier
            )
        )

    def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str | None = ""
    ) -> HistoryPage:
        """See `Engine.get_execution_history`."""
        return self._call(
            self.engine.get_execution_history(flow_name, name, limit, next_token or "")
        )

    def iter_history(
        self, flow_name: str, name: str, page_size: int | None = None
    ) -> Iterator[HistoryEvent]:
        """Every event of an execution, oldest first, a page at a time (as the client's)."""
        return _walk(lambda token: self.get_execution_history(flow_name, name, page_size, token))

    def stop_execution(
        self, flow_name: str, name: str, error: str = "", cause: str = ""
    ) -> ExecutionInfo:
        """See `Engine.stop_execution`."""
        return self._call(self.engine.stop_execution(flow_name, name, error, cause))

    def report_task_succeeded(
        self,
        token: str = "",
        output: Any = None,
        *,
        flow_name: str = "",
        correlation_key: str | int = "",
    ) -> int:
        """See `Engine.report_task_succeeded`: by token, or by flow and correlation key."""
        return self._call(
            self.engine.report_task_succeeded(
                token, output, flow_name=flow_name, correlation_key=correlation_key
            )
        )

    def report_task_failed(
        self,
        token: str = "",
        error: str = "",
        cause: str = "",
        *,
        flow_name: str = "",
        correlation_key: str | int = "",
    ) -> int:
        """See `Engine.report_task_failed`: by token, or by flow and correlation key."""
        return self._call(
            self.engine.report_task_failed(
                token, error, cause, flow_name=flow_name, correlation_key=correlation_key
            )
        )

    # operating flows in production: the client's methods, on the engine's

    def redrive_execution(
        self, flow_name: str, name: str, *, use_current_definition: bool = False
    ) -> ExecutionInfo:
        """See `Engine.redrive_execution`: a Failed, TimedOut or Stopped execution goes on."""
        return self._call(
            self.engine.redrive_execution(
                flow_name, name, use_current_definition=use_current_definition
            )
        )

    def count_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | float | None = None,
        started_before: datetime | str | float | None = None,
    ) -> int:
        """How many executions the filters match (`Engine.count_executions_matching`).

        The filters are `list_executions`'s.
        """
        filters = _filters(status, name_prefix, started_after, started_before)
        return self._call(self.engine.count_executions_matching(flow_name, filters))

    def stop_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | float | None = None,
        started_before: datetime | str | float | None = None,
        error: str = "",
        cause: str = "",
        limit: int | None = None,
        next_token: str | None = "",
        dry_run: bool = False,
    ) -> BulkPage:
        """Stop one page of the running executions the filters match (`Engine.stop_executions`).

        The arguments are `Client.stop_executions`'s; call again with the page's
        `next_token` until it is "".
        """
        return self._call(
            self.engine.stop_executions(
                flow_name,
                filters=_filters(status, name_prefix, started_after, started_before),
                error=error,
                cause=cause,
                limit=limit,
                next_token=next_token or "",
                dry_run=dry_run,
            )
        )

    def redrive_executions(
        self,
        flow_name: str,
        status: str,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | float | None = None,
        started_before: datetime | str | float | None = None,
        use_current_definition: bool = False,
        limit: int | None = None,
        next_token: str | None = "",
        dry_run: bool = False,
    ) -> BulkPage:
        """Redrive one page of the ended executions the filters match.

        See `Engine.redrive_executions`; the arguments are `Client.redrive_executions`'s.
        """
        return self._call(
            self.engine.redrive_executions(
                flow_name,
                filters=_filters(status, name_prefix, started_after, started_before),
                use_current_definition=use_current_definition,
                limit=limit,
                next_token=next_token or "",
                dry_run=dry_run,
            )
        )

    def list_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        limit: int | None = None,
        next_token: str | None = "",
    ) -> Page[WaitingWork]:
        """See `Engine.list_waiting`: a page of what running executions wait on."""
        return self._call(
            self.engine.list_waiting(
                flow_name or None,
                older_than=older_than,
                limit=limit,
                next_token=next_token or "",
            )
        )

    def iter_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        page_size: int | None = None,
    ) -> Iterator[WaitingWork]:
        """Everything running executions wait on, a page at a time (as `Client.iter_waiting`)."""
        return _walk(
            lambda token: self.list_waiting(
                flow_name, older_than=older_than, limit=page_size, next_token=token
            )
        )

    def purge_executions(
        self,
        ended_before: datetime | str | float,
        *,
        flow_name: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PurgeResult:
        """See `Engine.purge_executions`; ``ended_before`` may also be RFC 3339 text."""
        if isinstance(ended_before, str):
            ended_before = _time(ended_before, "ended_before")
        return self._call(
            self.engine.purge_executions(
                ended_before, flow_name=flow_name, dry_run=dry_run, limit=limit
            )
        )

    # schedules: the client's methods, on the engine's

    def create_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool = True,
        description: str = "",
    ) -> ScheduleInfo:
        """See `Engine.create_schedule` (and `Client.create_schedule`: the same arguments)."""
        return self._call(
            self.engine.create_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    def describe_schedule(self, flow_name: str, schedule_name: str) -> ScheduleInfo:
        """See `Engine.describe_schedule`."""
        return self._call(self.engine.describe_schedule(flow_name, schedule_name))

    def list_schedules(
        self, flow_name: str, limit: int | None = None, next_token: str | None = ""
    ) -> Page[ScheduleInfo]:
        """See `Engine.list_schedules`; `iter_schedules` walks every page."""
        return self._call(self.engine.list_schedules(flow_name, limit, next_token or ""))

    def iter_schedules(
        self, flow_name: str, page_size: int | None = None
    ) -> Iterator[ScheduleInfo]:
        """Every schedule of a flow, a page at a time (as `Client.iter_schedules`)."""
        return _walk(lambda token: self.list_schedules(flow_name, page_size, token))

    def update_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str | None = None,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool | None = None,
        description: str | None = None,
    ) -> ScheduleInfo:
        """See `Engine.update_schedule`; None keeps a field."""
        return self._call(
            self.engine.update_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    def delete_schedule(self, flow_name: str, schedule_name: str) -> None:
        """See `Engine.delete_schedule`."""
        self._call(self.engine.delete_schedule(flow_name, schedule_name))


def _environment(variables: Mapping[str, str] | None) -> str | None:
    """Variables, names to values, as the Environment text the engine takes (None: not given)."""
    if variables is None:
        return None
    listed = [{"Name": str(name), "Value": str(value)} for name, value in variables.items()]
    return json.dumps({"Variables": listed})


def _walk(page: Callable[[str], Page[T]]) -> Iterator[T]:
    """The items of every page, asking for the next one only when the last is used up."""
    token = ""
    while True:
        current = page(token)
        yield from current.items
        if current.last:
            return
        token = current.next_token


def _filters(
    status: str | None,
    name_prefix: str | None,
    started_after: datetime | str | float | None,
    started_before: datetime | str | float | None,
) -> ExecutionFilter:
    """The client's filter arguments as the engine's `ExecutionFilter` (it checks them)."""
    return ExecutionFilter(
        status=status or None,
        name_prefix=name_prefix or None,
        started_from=_seconds(started_after, "started_after"),
        started_to=_seconds(started_before, "started_before"),
    )


def _time(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} must be RFC 3339 UTC text, got {text[:40]!r}") from None


def _seconds(value: datetime | str | float | None, what: str) -> float | None:
    """A time filter as the engine takes it: seconds since the epoch."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, str):
        value = _time(value, what)
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, such as datetime.now(UTC)")
    return value.timestamp()
