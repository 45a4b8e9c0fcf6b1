"""`Client`: the actions over HTTP, one method per action (`_base._Base` is what it shares)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from relayflow.client import _calls, _wire
from relayflow.client._base import USER_AGENT, _Base, _client_config
from relayflow.client._calls import Call
from relayflow.client._operations import Operations
from relayflow.client._route import ROUTE_HEADER
from relayflow.flow_objects import ScheduleInfo
from relayflow.results import (
    ExecutionInfo,
    FlowInfo,
    HistoryEvent,
    HistoryPage,
    Page,
)

if TYPE_CHECKING:  # the configuration (pydantic-settings) is the caller's to load, not ours
    from relayflow.config import ClientConfig, Config

__all__ = ["Client"]

T = TypeVar("T")


class Client(Operations, _Base):
    """The synchronous client. See the package documentation for a tour.

    Args:
        endpoint: the server's URL, such as `http://127.0.0.1:8765` (`http://` is assumed
            when no scheme is given).
        access_key_id: the access key to sign requests with; without one they go unsigned,
            which only a server with no `[[server.access_keys]]` accepts.
        access_key_secret: the key's secret.
        timeout: seconds to wait for an answer. A long poll
            (`describe_execution(..., wait_seconds=N)`) gets N seconds more.
        ca_file: for an `https://` endpoint, a PEM file of the CA certificates to trust
            instead of the public ones (a private CA); a folder of them works too. The
            server's certificate and host name are always verified.
        transport: an httpx transport to use instead of the network, such as
            `httpx.MockTransport` in tests. Without one, the client keeps its own
            keep-alive connections on plain (or TLS) sockets, which cost several times less
            CPU a call than httpx.

    The client is safe to share between threads: each call takes an idle connection or opens
    one.

    Raises:
        ValueError: the endpoint is not an http(s) URL, only one of the key's two parts is
            given, the timeout is not positive, or ``ca_file`` cannot be read as PEM.
    """

    def __init__(
        self,
        endpoint: str,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        timeout: float = 30.0,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(endpoint, access_key_id, access_key_secret, timeout, ca_file)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._http: httpx.Client | None = None
        self._wire: _wire.WirePool | None = None
        if transport is None:
            self._wire = _wire.WirePool(self.endpoint, headers, self.timeout, tls=self._tls)
        else:
            self._http = httpx.Client(
                base_url=self.endpoint, timeout=self.timeout, transport=transport, headers=headers
            )

    @classmethod
    def from_config(
        cls, config: Config | ClientConfig, *, transport: httpx.BaseTransport | None = None
    ) -> Client:
        """A client for the `[client]` table of a configuration (see `relayflow.config`)."""
        table = _client_config(config)
        return cls(
            table.endpoint,
            table.access_key_id,
            table.access_key_secret,
            table.timeout_seconds,
            ca_file=table.ca_file,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connections the client keeps open."""
        if self._wire is not None:
            self._wire.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        """Send one prepared call and read its answer (the action methods use this).

        Raises:
            ClientError: the server refused the call, or could not be reached.
        """
        data = _calls.encode(call, self.credentials)
        headers = {ROUTE_HEADER: call.route} if call.route else None
        if self._wire is not None:
            try:
                status, content = self._wire.post_form(
                    data, self.timeout + call.extra_timeout, headers
                )
            except (OSError, _wire.ProtocolError, _wire.RequestTimeout) as exc:
                raise self._failed(call, exc) from None
            return call.parse(_calls.decode(status, content))
        assert self._http is not None
        try:
            response = self._http.post("/", data=data, headers=headers, timeout=self._timeout(call))
        except httpx.HTTPError as exc:
            raise self._failed(call, exc) from None
        return call.parse(_calls.decode(response.status_code, response.content))

    def request(
        self, action: str, params: Mapping[str, Any] | None = None, *, extra_timeout: float = 0.0
    ) -> dict[str, Any]:
        """Call any action by name and return its answer's fields (with `RequestId`).

        For actions without a method of their own (schedules, versions, aliases, regions):
        ``params`` are the API's names (`FlowName`, `CronExpression`, ...); None values are
        left out, booleans sent as `true`/`false`, dicts and lists as JSON text.

            client.request("CreateSchedule", {"FlowName": "orders", "ScheduleName": "nightly",
                                              "CronExpression": "0 0 2 * * *", "Enable": True})

        Raises:
            ClientError: the server refused the call, or could not be reached.
            ValueError: the action is empty; TypeError: a value cannot be sent as text.
        """
        return self.call(_calls.any_action(action, params, extra_timeout))

    # flows

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
        """Create a flow (CreateFlow).

        Args:
            name: the flow's name: letters, digits, `_` and `-`, starting with a letter or `_`.
            definition: the FDL text (YAML or JSON).
            description: free text.
            role_arn: kept and shown; relayflow does not use it.
            execution_mode: `Standard` (the server's default) or `Express` (run with
                `start_sync_execution`).
            environment: the flow's variables, names to values (sent as `Environment`).

        Raises:
            ClientError: for example `FlowAlreadyExists` or `InvalidDefinition`.
        """
        return self.call(
            _calls.create_flow(name, definition, description, role_arn, execution_mode, environment)
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
        """Change a flow's definition, description, RoleArn or variables (UpdateFlow).

        None keeps what the flow has. Executions already started keep the definition they
        started with.

        Raises:
            ClientError: for example `FlowNotExists` or `InvalidDefinition`.
        """
        return self.call(_calls.update_flow(name, definition, description, role_arn, environment))

    def describe_flow(self, name: str, *, flow_version: int | str | None = None) -> FlowInfo:
        """A flow (DescribeFlow); with ``flow_version``, as that published version has it.

        Raises:
            ClientError: for example `FlowNotExists`.
        """
        return self.call(_calls.describe_flow(name, flow_version))

    def list_flows(self, limit: int | None = None, next_token: str | None = None) -> Page[FlowInfo]:
        """One page of flows (ListFlows); `iter_flows` walks every page."""
        return self.call(_calls.list_flows(limit, next_token))

    def iter_flows(self, page_size: int | None = None) -> Iterator[FlowInfo]:
        """Every flow, fetching pages as needed."""
        token: str | None = None
        while True:
            page = self.list_flows(page_size, token)
            yield from page.items
            if page.last:
                return
            token = page.next_token

    def delete_flow(self, name: str, *, force: bool = False) -> str:
        """Delete a flow with its executions (DeleteFlow); returns the RequestId.

        A flow with running executions is refused unless ``force``, which stops them first
        (as `stop_execution` does) and then deletes.

        Raises:
            ClientError: for example `FlowNotExists`, or `FlowHasRunningExecutions` without
                ``force``.
        """
        return self.call(_calls.delete_flow(name, force))

    # executions

    def start_execution(
        self,
        flow_name: str,
        input: Mapping[str, Any] | None = None,
        name: str | None = None,
        callback_token: str | None = None,
        *,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """Start an execution (StartExecution).

        Args:
            flow_name: the flow to run.
            input: the execution's input object (sent as JSON text).
            name: the execution's name; the server makes one up when None. Starting a name
                that is running returns that execution; one that has ended is refused with
                `ExecutionAlreadyExists`.
            callback_token: a task token to report to when this execution ends (a parent
                flow's waitForCallback step).
            qualifier: run a published version (its number) or an alias instead of the
                flow's current definition.

        Raises:
            ClientError: for example `FlowNotExists` or `ExecutionAlreadyExists`.
        """
        return self.call(_calls.start_execution(flow_name, input, name, callback_token, qualifier))

    def start_sync_execution(
        self,
        flow_name: str,
        input: Mapping[str, Any] | None = None,
        name: str | None = None,
        *,
        qualifier: str | None = None,
    ) -> ExecutionInfo:
        """Run an execution of an Express flow and return it once ended (StartSyncExecution).

        The answer waits for the execution: the client allows it the Express flows' longest
        run (300 seconds) on top of its timeout. A failed run is a result, not an exception:
        its `status` is `Failed` (or `TimedOut`, `Stopped`) with `error` and `cause`, read from
        the answer's `ErrorCode` and `ErrorMessage`.

        Args:
            flow_name: an Express flow.
            input: the execution's input object.
            name: a prefix for the execution's name (the server adds a unique part).
            qualifier: a published version or an alias to run.

        Raises:
            ClientError: for example `FlowNotExists`, or `ActionNotSupported` for a Standard
                flow.
        """
        return self.call(_calls.start_sync_execution(flow_name, input, name, qualifier))

    def describe_execution(
        self, flow_name: str, name: str, wait_seconds: int = 0, *, include_waiting: bool = False
    ) -> ExecutionInfo:
        """An execution (DescribeExecution).

        Args:
            flow_name: its flow.
            name: its name.
            wait_seconds: 0 to 60; when more than 0, the server answers when the execution ends
                or after this many seconds, whichever comes first (a long poll).
            include_waiting: also say what it waits on now, in the result's `waiting` (a
                tuple of `WaitingWork`; None when not asked for).

        Raises:
            ClientError: for example `ExecutionNotExists`.
            ValueError: ``wait_seconds`` is not a whole number from 0 to 60.
        """
        return self.call(_calls.describe_execution(flow_name, name, wait_seconds, include_waiting))

    def wait_for_execution(
        self, flow_name: str, name: str, timeout: float | None = None
    ) -> ExecutionInfo:
        """Long-poll an execution until it ends, or ``timeout`` seconds pass; returns the last.

        The result's `done` says whether it ended.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _calls.next_wait(deadline)
            execution = self.describe_execution(flow_name, name, wait)
            if execution.done or wait == 0:
                return execution

    def stop_execution(
        self, flow_name: str, name: str, error: str = "", cause: str = ""
    ) -> ExecutionInfo:
        """Stop a running execution (StopExecution) with an optional error name and cause.

        Raises:
            ClientError: for example `ExecutionNotExists` or `ExecutionNotRunning`.
        """
        return self.call(_calls.stop_execution(flow_name, name, error, cause))

    def list_executions(
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
        """One page of a flow's executions (ListExecutions); `iter_executions` walks them all.

        Args:
            flow_name: the flow.
            status: only executions with this status, such as `Running`.
            name_prefix: only executions whose names start with this.
            limit: 1 to 99 per page (the server's default is 60).
            next_token: the previous page's `next_token`.
            started_after: only executions started at or after this time: an aware
                datetime, or RFC 3339 UTC text.
            started_before: only executions started at or before this time.
            qualifier: only executions of this published version or alias.
        """
        return self.call(
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

    def iter_executions(
        self,
        flow_name: str,
        status: str | None = None,
        name_prefix: str | None = None,
        page_size: int | None = None,
        *,
        qualifier: str | None = None,
    ) -> Iterator[ExecutionInfo]:
        """Every execution of a flow that matches, fetching pages as needed."""
        token: str | None = None
        while True:
            page = self.list_executions(
                flow_name, status, name_prefix, page_size, token, qualifier=qualifier
            )
            yield from page.items
            if page.last:
                return
            token = page.next_token

    def get_execution_history(
        self, flow_name: str, name: str, limit: int | None = None, next_token: str | None = None
    ) -> HistoryPage:
        """One page of an execution's events, oldest first (GetExecutionHistory).

        Args:
            flow_name: its flow.
            name: the execution.
            limit: 1 to 999 events per page (the server's default is 60).
            next_token: the previous page's `next_token`.

        Raises:
            ClientError: for example `ExecutionNotExists`.
        """
        return self.call(_calls.get_execution_history(flow_name, name, limit, next_token))

    def iter_history(
        self, flow_name: str, name: str, page_size: int | None = None
    ) -> Iterator[HistoryEvent]:
        """Every event of an execution, oldest first, fetching pages as needed."""
        token: str | None = None
        while True:
            page = self.get_execution_history(flow_name, name, page_size, token)
            yield from page.items
            if page.last:
                return
            token = page.next_token

    # schedules

    def create_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool = True,
        description: str = "",
    ) -> ScheduleInfo:
        """Create a schedule that starts ``flow_name`` at every tick (CreateSchedule).

        Args:
            flow_name: a Standard flow.
            schedule_name: unique within the flow.
            cron_expression: six fields, seconds first, such as `0 */5 * * * *`.
            payload: each execution's input: a dict, or JSON object text.
            enable: whether it fires.
            description: free text.

        Raises:
            ClientError: for example `FlowNotExists`, `ScheduleAlreadyExists`, or
                `InvalidArgument` for a cron expression of five fields.
        """
        return self.call(
            _calls.create_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    def describe_schedule(self, flow_name: str, schedule_name: str) -> ScheduleInfo:
        """A schedule (DescribeSchedule); its `next_tick` is None (the API does not send it).

        Raises:
            ClientError: for example `ScheduleNotExists`.
        """
        return self.call(_calls.describe_schedule(flow_name, schedule_name))

    def list_schedules(
        self, flow_name: str, limit: int | None = None, next_token: str | None = None
    ) -> Page[ScheduleInfo]:
        """One page of a flow's schedules (ListSchedules); `iter_schedules` walks them all."""
        return self.call(_calls.list_schedules(flow_name, limit, next_token))

    def iter_schedules(
        self, flow_name: str, page_size: int | None = None
    ) -> Iterator[ScheduleInfo]:
        """Every schedule of a flow, fetching pages as needed."""
        token: str | None = None
        while True:
            page = self.list_schedules(flow_name, page_size, token)
            yield from page.items
            if page.last:
                return
            token = page.next_token

    def update_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str | None = None,
        payload: Mapping[str, Any] | str | None = None,
        enable: bool | None = None,
        description: str | None = None,
    ) -> ScheduleInfo:
        """Change a schedule (UpdateSchedule); None keeps a field.

        Raises:
            ClientError: for example `ScheduleNotExists`.
        """
        return self.call(
            _calls.update_schedule(
                flow_name, schedule_name, cron_expression, payload, enable, description
            )
        )

    def delete_schedule(self, flow_name: str, schedule_name: str) -> str:
        """Delete a schedule (DeleteSchedule); returns the RequestId.

        Raises:
            ClientError: for example `ScheduleNotExists`.
        """
        return self.call(_calls.delete_schedule(flow_name, schedule_name))

    # task tokens

    def report_task_succeeded(
        self,
        token: str | None = None,
        output: Mapping[str, Any] | None = None,
        *,
        flow_name: str | None = None,
        correlation_key: str | int | None = None,
    ) -> int:
        """Complete a waiting task with ``output`` (ReportTaskSucceeded).

        Name the task by the ``token`` it handed out, or, when its step declares
        `correlationKey`, by ``flow_name`` and ``correlation_key`` (exactly one of the forms):

            client.report_task_succeeded(token, {"booked": True})
            client.report_task_succeeded(
                output={"paid": True}, flow_name="orders", correlation_key="order-7"
            )

        Returns:
            The id of the `TaskSucceeded` event the report became.

        Raises:
            ClientError: for example `TaskAlreadyCompleted` (the first report won; nothing
                changed), `TaskExpired`, `TaskTokenInvalid`, `TaskTokenMalformed`, or
                `CorrelationKeyNotExists` (no task waits on the key: none yet, or the first
                report on it won).
            ValueError: both forms, or half of the key form.
        """
        call = _calls.report_task_succeeded(token, output or {}, flow_name, correlation_key)
        return self.call(call)

    def report_task_failed(
        self,
        token: str | None = None,
        error: str = "",
        cause: str = "",
        *,
        flow_name: str | None = None,
        correlation_key: str | int | None = None,
    ) -> int:
        """Fail a waiting task (ReportTaskFailed); the step's retry and catch apply.

        Named by ``token`` or by ``flow_name`` and ``correlation_key``, as for
        `report_task_succeeded`.

        Returns:
            The id of the `TaskFailed` event the report became.

        Raises:
            ClientError: as for `report_task_succeeded`.
            ValueError: as for `report_task_succeeded`.
        """
        call = _calls.report_task_failed(token, error, cause, flow_name, correlation_key)
        return self.call(call)
