"""`Client`: the actions over HTTP, one method per action, and what it shares with `AsyncClient`."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from relayflow import __version__
from relayflow.client import _calls, _wire
from relayflow.client._calls import Call, Credentials
from relayflow.client._errors import ClientError
from relayflow.client._tls import client_context, tls_failure
from relayflow.results import ExecutionInfo, FlowInfo, HistoryEvent, HistoryPage, Page

if TYPE_CHECKING:  # the configuration (pydantic-settings) is the caller's to load, not ours
    from relayflow.config import ClientConfig, Config

__all__ = ["Client"]

T = TypeVar("T")
USER_AGENT = f"relayflow-client/{__version__}"


def _endpoint(endpoint: str) -> str:
    text = endpoint.strip()
    if not text:
        raise ValueError("the endpoint is empty; give one such as http://127.0.0.1:8765")
    if "://" not in text:
        text = "http://" + text
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"the endpoint {endpoint!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"the endpoint {endpoint!r} must be an http:// or https:// URL with a host"
        )
    return text.rstrip("/")


def _client_config(config: Config | ClientConfig) -> ClientConfig:
    client = getattr(config, "client", None)  # a whole Config, with its [client] table
    return config if client is None else client  # type: ignore[return-value]


class _Base:
    """What both clients share: the endpoint, the key, the timeout and error mapping."""

    def __init__(
        self,
        endpoint: str,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        timeout: float = 30.0,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {timeout}")
        self.endpoint = _endpoint(endpoint)
        self.credentials = Credentials(access_key_id or None, access_key_secret or None)
        self.timeout = float(timeout)
        self.ca_file = None if ca_file is None else str(ca_file)
        # Made now, for https:// only: a wrong ca_file is refused before any call.
        self._tls: ssl.SSLContext | None = (
            client_context(ca_file) if self.endpoint.startswith("https://") else None
        )

    @property
    def access_key_id(self) -> str | None:
        """The access key requests are signed with; None when they are sent unsigned."""
        return self.credentials.access_key_id

    def __repr__(self) -> str:
        key = self.credentials.access_key_id
        return f"{type(self).__name__}({self.endpoint!r}, access_key_id={key!r})"

    def _timeout(self, call: Call[Any]) -> httpx.Timeout:
        return httpx.Timeout(self.timeout + call.extra_timeout, connect=self.timeout)

    def _failed(self, call: Call[Any], exc: Exception) -> ClientError:
        timed_out = isinstance(exc, httpx.TimeoutException) and not isinstance(
            exc, httpx.ConnectTimeout
        )
        if timed_out or isinstance(exc, _wire.RequestTimeout):
            seconds = self.timeout + call.extra_timeout
            return ClientError(
                "RequestTimeout",
                f"{call.action}: no answer from {self.endpoint} within {seconds:g} seconds",
            )
        tls = tls_failure(exc, self.endpoint)
        if tls is not None:
            return ClientError(*tls)
        reason = str(exc) or type(exc).__name__
        if self._tls is None and isinstance(exc, ConnectionResetError | httpx.RemoteProtocolError):
            # What a server that expects a TLS handshake does with a plain request.
            reason += "; if the server serves HTTPS, the endpoint must start with https://"
        return ClientError(
            "ConnectionFailed", f"cannot reach the server at {self.endpoint}: {reason}"
        )


class Client(_Base):
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
        if self._wire is not None:
            try:
                status, content = self._wire.post_form(data, self.timeout + call.extra_timeout)
            except (OSError, _wire.ProtocolError, _wire.RequestTimeout) as exc:
                raise self._failed(call, exc) from None
            return call.parse(_calls.decode(status, content))
        assert self._http is not None
        try:
            response = self._http.post("/", data=data, timeout=self._timeout(call))
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

    def delete_flow(self, name: str) -> str:
        """Delete a flow (DeleteFlow); returns the RequestId.

        Raises:
            ClientError: for example `FlowNotExists`.
        """
        return self.call(_calls.delete_flow(name))

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

    def describe_execution(self, flow_name: str, name: str, wait_seconds: int = 0) -> ExecutionInfo:
        """An execution (DescribeExecution).

        Args:
            flow_name: its flow.
            name: its name.
            wait_seconds: 0 to 60; when more than 0, the server answers when the execution ends
                or after this many seconds, whichever comes first (a long poll).

        Raises:
            ClientError: for example `ExecutionNotExists`.
            ValueError: ``wait_seconds`` is not a whole number from 0 to 60.
        """
        return self.call(_calls.describe_execution(flow_name, name, wait_seconds))

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

    # task tokens

    def report_task_succeeded(self, token: str, output: Mapping[str, Any]) -> int:
        """Complete the task that handed out ``token`` with ``output`` (ReportTaskSucceeded).

        Returns:
            The id of the `TaskSucceeded` event the report became.

        Raises:
            ClientError: for example `TaskAlreadyCompleted` (the first report won; nothing
                changed), `TaskExpired`, `TaskTokenInvalid` or `TaskTokenMalformed`.
        """
        return self.call(_calls.report_task_succeeded(token, output))

    def report_task_failed(self, token: str, error: str, cause: str = "") -> int:
        """Fail the task that handed out ``token`` (ReportTaskFailed); retry and catch apply.

        Returns:
            The id of the `TaskFailed` event the report became.

        Raises:
            ClientError: as for `report_task_succeeded`.
        """
        return self.call(_calls.report_task_failed(token, error, cause))
