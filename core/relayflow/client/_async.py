"""`AsyncClient`: the actions over HTTP with httpx's asyncio client, one coroutine per action."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from relayflow.client import _calls
from relayflow.client._base import USER_AGENT, _Base, _client_config
from relayflow.client._calls import Call
from relayflow.client._route import ROUTE_HEADER
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

if TYPE_CHECKING:  # the configuration (pydantic-settings) is the caller's to load, not ours
    from relayflow.config import ClientConfig, Config

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(_Base):
    """The asyncio client: the same methods as `Client`, as coroutines.

    Args:
        endpoint: the server's URL.
        access_key_id: the access key to sign requests with; None sends them unsigned.
        access_key_secret: the key's secret.
        timeout: seconds to wait for an answer; a long poll gets its wait on top.
        ca_file: for an `https://` endpoint, the CA certificates to trust (see `Client`).
        transport: an httpx async transport to use instead of the network.

    Raises:
        ValueError: as for `Client`.
    """

    def __init__(
        self,
        endpoint: str,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        timeout: float = 30.0,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(endpoint, access_key_id, access_key_secret, timeout, ca_file)
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            timeout=self.timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            # Never False: an http:// endpoint has no context and makes no TLS connection.
            verify=self._tls if self._tls is not None else True,
        )

    @classmethod
    def from_config(
        cls,
        config: Config | ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncClient:
        """A client for the `[client]` table of a configuration."""
        table = _client_config(config)
        return cls(
            table.endpoint,
            table.access_key_id,
            table.access_key_secret,
            table.timeout_seconds,
            ca_file=table.ca_file,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connections the client keeps open."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, call: Call[T]) -> T:
        """Send one prepared call and read its answer.

        Raises:
            ClientError: the server refused the call, or could not be reached.
        """
        data = _calls.encode(call, self.credentials)
        headers = {ROUTE_HEADER: call.route} if call.route else None
        try:
            response = await self._http.post(
                "/", data=data, headers=headers, timeout=self._timeout(call)
            )
        except httpx.HTTPError as exc:
            raise self._failed(call, exc) from None
        return call.parse(_calls.decode(response.status_code, response.content))

    async def request(
        self, action: str, params: Mapping[str, Any] | None = None, *, extra_timeout: float = 0.0
    ) -> dict[str, Any]:
        """Call any action by name; see `Client.request`."""
        return await self.call(_calls.any_action(action, params, extra_timeout))

    async def create_flow(
        self,
        name: str,
        definition: str,
        description: str = "",
        role_arn: str | None = None,
        *,
        execution_mode: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> FlowInfo:
        """Create a flow (CreateFlow); see `Client.create_flow`."""
        return await self.call(
            _calls.create_flow(name, definition, description, role_arn, execution_mode, environment)
        )

    async def update_flow(
        self,
        name: str,
        definition: str | None = None,
        description: str | None = None,
        role_arn: str | None = None,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> FlowInfo:
        """Change a flow (UpdateFlow); see `Client.update_flow`."""
        return await self.call(
            _calls.update_flow(name, definition, description, role_arn, environment)
        )

    async def describe_flow(self, name: str, *, flow_version: int | str | None = None) -> FlowInfo:
        """A flow (DescribeFlow), or one of its published versions; see `Client.describe_flow`."""
        return await self.call(_calls.describe_flow(name, flow_version))

    async def list_flows(
        self, limit: int | None = None, next_token: str | None = None
    ) -> Page[FlowInfo]:
        """One page of flows (ListFlows)."""
        return await self.call(_calls.list_flows(limit, next_token))

    async def iter_flows(self, page_size: int | None = None) -> AsyncIterator[FlowInfo]:
        """Every flow, fetching pages as needed."""
        token: str | None = None
        while True:
            page = await self.list_flows(page_size, token)
            for flow in page.items:
                yield flow
            if page.last:
                return
            token = page.next_token

    async def delete_flow(self, name: str, *, force: bool = False) -> str:
        """Delete a flow (DeleteFlow); returns the RequestId. See `Client.delete_flow`."""
        return await self.call(_calls.delete_flow(name, force))

    async def start_execution(
        self,
        flow_name: str,
        input: Mapping[str, Any] | None = None,
        name: str | None = None,
        callback_token: str | None = None,
        *,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """Start an execution (StartExecution); see `Client.start_execution`."""
        return await self.call(
            _calls.start_execution(flow_name, input, name, callback_token, qualifier)
        )

    async def start_sync_execution(
        self,
        flow_name: str,
        input: Mapping[str, Any] | None = None,
        name: str | None = None,
        *,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """Run an Express execution to its end (StartSyncExecution); see `Client`'s."""
        return await self.call(_calls.start_sync_execution(flow_name, input, name, qualifier))

    async def describe_execution(
        self, flow_name: str, name: str, wait_seconds: int = 0, *, include_waiting: bool = False
    ) -> ExecutionInfo:
        """An execution (DescribeExecution), with an optional long poll of 0-60 seconds.

        ``include_waiting`` fills the result's `waiting`, as for `Client.describe_execution`.
        """
        return await self.call(
            _calls.describe_execution(flow_name, name, wait_seconds, include_waiting)
        )

    async def wait_for_execution(
        self, flow_name: str, name: str, timeout: float | None = None
    ) -> ExecutionInfo:
        """Long-poll an execution until it ends, or ``timeout`` seconds pass; returns the last."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _calls.next_wait(deadline)
            execution = await self.describe_execution(flow_name, name, wait)
            if execution.done or wait == 0:
                return execution

    async def stop_execution(
        self, flow_name: str, name: str, error: str = "", cause: str = ""
    ) -> ExecutionInfo:
        """Stop a running execution (StopExecution)."""
        return await self.call(_calls.stop_execution(flow_name, name, error, cause))

    async def list_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        qualifier: str | None = None,
    ) -> Page[ExecutionInfo]:
        """One page of a flow's executions (ListExecutions); see `Client.list_executions`."""
        return await self.call(
            _calls.list_executions(
                flow_name,
                status,
                name_prefix,
                limit,
                next_token,
                started_after,
                started_before,
                qualifier,
            )
        )

    async def iter_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        page_size: int | None = None,
        *,
        qualifier: str | None = None,
    ) -> AsyncIterator[ExecutionInfo]:
        """Every execution of a flow that matches, fetching pages as needed."""
        token: str | None = None
        while True:
            page = await self.list_executions(
                flow_name, status, name_prefix, page_size, token, qualifier=qualifier
            )
            for execution in page.items:
                yield execution
            if page.last:
                return
            token = page.next_token

    async def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str | None = None
    ) -> HistoryPage:
        """One page of an execution's events (GetExecutionHistory)."""
        return await self.call(_calls.get_execution_history(flow_name, name, limit, next_token))

    async def iter_history(
        self, flow_name: str, name: str, page_size: int | None = None
    ) -> AsyncIterator[HistoryEvent]:
        """Every event of an execution, oldest first, fetching pages as needed."""
        token: str | None = None
        while True:
            page = await self.get_execution_history(flow_name, name, page_size, token)
            for event in page.items:
                yield event
            if page.last:
                return
            token = page.next_token

    async def report_task_succeeded(
        self,
        token: str | None = None,
        output: Mapping[str, Any] | None = None,
        *,
        flow_name: str | None = None,
        correlation_key: str | int | None = None,
    ) -> int:
        """Complete a task (ReportTaskSucceeded); returns the event id.

        The task is named by its ``token``, or by ``flow_name`` and ``correlation_key`` when
        its step declares `correlationKey`; see `Client.report_task_succeeded`.
        """
        call = _calls.report_task_succeeded(token, output or {}, flow_name, correlation_key)
        return await self.call(call)

    async def report_task_failed(
        self,
        token: str | None = None,
        error: str = "",
        cause: str = "",
        *,
        flow_name: str | None = None,
        correlation_key: str | int | None = None,
    ) -> int:
        """Fail a task (ReportTaskFailed), by token or by flow and key; returns the event id."""
        call = _calls.report_task_failed(token, error, cause, flow_name, correlation_key)
        return await self.call(call)

    # operating flows in production (relayflow's own actions)

    async def redrive_execution(
        self, flow_name: str, name: str, *, use_current_definition: bool = False
    ) -> ExecutionInfo:
        """Make an ended execution go on (RedriveExecution); see `Client.redrive_execution`."""
        return await self.call(_calls.redrive_execution(flow_name, name, use_current_definition))

    async def count_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
    ) -> int:
        """How many executions the filters match (CountExecutions); see `Client`'s."""
        return await self.call(
            _calls.count_executions(flow_name, status, name_prefix, started_after, started_before)
        )

    async def stop_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        error: str = "",
        cause: str = "",
        limit: int | None = None,
        next_token: str | None = None,
        dry_run: bool = False,
    ) -> BulkPage:
        """Stop one page of the matching running executions; see `Client.stop_executions`."""
        filters = _calls.execution_filters(
            flow_name, status, name_prefix, started_after, started_before
        )
        return await self.call(
            _calls.stop_executions(filters, error, cause, limit, next_token, dry_run)
        )

    async def redrive_executions(
        self,
        flow_name: str,
        status: str,
        name_prefix: str | None = None,
        *,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        use_current_definition: bool = False,
        limit: int | None = None,
        next_token: str | None = None,
        dry_run: bool = False,
    ) -> BulkPage:
        """Redrive one page of the matching ended executions; see `Client.redrive_executions`."""
        filters = _calls.execution_filters(
            flow_name, status, name_prefix, started_after, started_before
        )
        return await self.call(
            _calls.redrive_executions(filters, use_current_definition, limit, next_token, dry_run)
        )

    async def list_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        limit: int | None = None,
        next_token: str | None = "",
    ) -> Page[WaitingWork]:
        """One page of what running executions wait on (ListWaitingWork); see `Client`'s."""
        return await self.call(_calls.list_waiting(flow_name, older_than, limit, next_token))

    async def iter_waiting(
        self,
        flow_name: str | None = None,
        *,
        older_than: float | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[WaitingWork]:
        """Everything running executions wait on, fetching pages as needed."""
        token: str | None = None
        while True:
            page = await self.list_waiting(
                flow_name, older_than=older_than, limit=page_size, next_token=token
            )
            for work in page.items:
                yield work
            if page.last:
                return
            token = page.next_token

    async def purge_executions(
        self,
        ended_before: datetime | str | float,
        *,
        flow_name: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PurgeResult:
        """Delete executions that ended before a time (PurgeExecutions); see `Client`'s."""
        return await self.call(_calls.purge_executions(ended_before, flow_name, dry_run, limit))

    # schedules

    async def create_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool = True,
        description: str = "",
    ) -> ScheduleInfo:
        """Create a schedule (CreateSchedule); see `Client.create_schedule`."""
        return await self.call(
            _calls.create_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    async def describe_schedule(self, flow_name: str, schedule_name: str) -> ScheduleInfo:
        """A schedule (DescribeSchedule)."""
        return await self.call(_calls.describe_schedule(flow_name, schedule_name))

    async def list_schedules(
        self, flow_name: str, limit: int | None = None, next_token: str | None = None
    ) -> Page[ScheduleInfo]:
        """One page of a flow's schedules (ListSchedules)."""
        return await self.call(_calls.list_schedules(flow_name, limit, next_token))

    async def iter_schedules(
        self, flow_name: str, page_size: int | None = None
    ) -> AsyncIterator[ScheduleInfo]:
        """Every schedule of a flow, fetching pages as needed."""
        token: str | None = None
        while True:
            page = await self.list_schedules(flow_name, page_size, token)
            for schedule in page.items:
                yield schedule
            if page.last:
                return
            token = page.next_token

    async def update_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str | None = None,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool | None = None,
        description: str | None = None,
    ) -> ScheduleInfo:
        """Change a schedule (UpdateSchedule); None keeps a field."""
        return await self.call(
            _calls.update_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    async def delete_schedule(self, flow_name: str, schedule_name: str) -> str:
        """Delete a schedule (DeleteSchedule); returns the RequestId."""
        return await self.call(_calls.delete_schedule(flow_name, schedule_name))
