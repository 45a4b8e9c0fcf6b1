"""The actions as data: which parameters each call sends and how its answer is read.

Both clients build a `Call` here and only differ in how they send it, so the protocol lives in
one place and the sync and async clients cannot drift apart.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from relayflow.client._errors import ClientError
from relayflow.client._route import route_of, token_route
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
    iso_time,
)
from relayflow.signing import signed_params

__all__ = ["API_VERSION", "Call", "Credentials", "decode", "encode"]

API_VERSION = "2019-03-15"
"""The version of Serverless Workflow's API the client speaks (its `Version` parameter)."""
MAX_WAIT_SECONDS = 60


def next_wait(deadline: float | None) -> int:
    """The whole seconds of the next long poll of `wait_for_execution`, given its deadline.

    ``deadline`` is a `time.monotonic()` value, or None to wait without end; 0 means the
    deadline has passed and the next describe is the last.
    """
    if deadline is None:
        return MAX_WAIT_SECONDS
    return max(0, min(MAX_WAIT_SECONDS, int(deadline - time.monotonic())))


T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: the action, its parameters, how to read the answer, and extra time.

    ``route`` is the execution the call changes, sent in the route header (see `_route`).
    """

    action: str
    params: dict[str, str]
    parse: Callable[[dict[str, Any]], T]
    extra_timeout: float = 0.0
    route: str | None = None


@dataclass(frozen=True)
class Credentials:
    """An access key, or none (requests then go unsigned)."""

    access_key_id: str | None = None
    access_key_secret: str | None = None

    def __post_init__(self) -> None:
        if bool(self.access_key_id) != bool(self.access_key_secret):
            given, missing = (
                ("access_key_id", "access_key_secret")
                if self.access_key_id
                else ("access_key_secret", "access_key_id")
            )
            raise ValueError(f"{given} is set but {missing} is not; give both or neither")

    @property
    def signing(self) -> bool:
        """Whether requests are signed."""
        return bool(self.access_key_id and self.access_key_secret)


def encode(call: Call[Any], credentials: Credentials, method: str = "POST") -> dict[str, str]:
    """The parameters to send for ``call``: the action's own, plus the signature when keyed."""
    params = {"Action": call.action, "Version": API_VERSION, **call.params}
    if credentials.access_key_id and credentials.access_key_secret:
        return signed_params(
            credentials.access_key_id, credentials.access_key_secret, method, params
        )
    return params


def decode(status: int, content: bytes) -> dict[str, Any]:
    """The JSON of an answer.

    Raises:
        ClientError: the answer is an error (its `Code`, `Message` and `RequestId`), or is not
            the API's JSON at all (`InvalidResponse`).
    """
    try:
        doc = json.loads(content) if content else None
    except ValueError:
        doc = None
    if status >= 400:
        if isinstance(doc, dict) and doc.get("Code"):
            raise ClientError(
                str(doc["Code"]),
                str(doc.get("Message") or "the server gave no message"),
                status,
                str(doc.get("RequestId") or ""),
            )
        snippet = content[:200].decode("utf-8", "replace").strip()
        raise ClientError(
            "InvalidResponse",
            f"the server answered HTTP {status} without an API error"
            + (f": {snippet}" if snippet else ""),
            status,
        )
    if not isinstance(doc, dict):
        snippet = content[:200].decode("utf-8", "replace").strip()
        raise ClientError(
            "InvalidResponse",
            f"the server answered HTTP {status} with no JSON object: {snippet!r}",
            status,
        )
    return doc


def _put(params: dict[str, str], name: str, value: object) -> None:
    if value is not None:
        params[name] = str(value)


def _object_text(value: Mapping[str, Any] | None, what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict (a JSON object), not {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rfc3339(value: datetime | str | None, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, such as datetime.now(UTC)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flows(doc: dict[str, Any]) -> Page[FlowInfo]:
    return Page.from_api(doc, "Flows", FlowInfo.from_api)


def _executions(doc: dict[str, Any]) -> Page[ExecutionInfo]:
    return Page.from_api(doc, "Executions", ExecutionInfo.from_api)


def _events(doc: dict[str, Any]) -> HistoryPage:
    return HistoryPage.from_api(doc, "Events", HistoryEvent.from_api)


def _event_id(doc: dict[str, Any]) -> int:
    value = doc.get("EventId")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ClientError(
        "InvalidResponse", f"the server sent no EventId, but {value!r}", request_id=_request_id(doc)
    )


def _request_id(doc: dict[str, Any]) -> str:
    return str(doc.get("RequestId") or "")


def _param_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(f"parameter {name}: cannot send a {type(value).__name__}")


def any_action(
    action: str, params: Mapping[str, object] | None, extra_timeout: float
) -> Call[dict[str, Any]]:
    """Any action by name; its parameters as text (booleans `true`/`false`, objects as JSON)."""
    if not action:
        raise ValueError("the action is empty; give one such as DescribeRegions")
    if extra_timeout < 0:
        raise ValueError(f"extra_timeout must be 0 or more seconds, got {extra_timeout}")
    sent = {
        name: _param_text(name, value)
        for name, value in (params or {}).items()
        if value is not None
    }
    return Call(action, sent, lambda doc: doc, extra_timeout=extra_timeout)


def _environment(variables: Mapping[str, str] | None) -> str | None:
    """A flow's variables as the `Environment` JSON text the SDKs send; None when not given."""
    if variables is None:
        return None
    if not isinstance(variables, Mapping):
        raise TypeError(
            "environment must be a dict of variable names to values, not "
            f"{type(variables).__name__}"
        )
    listed = [{"Name": str(name), "Value": str(value)} for name, value in variables.items()]
    return json.dumps({"Variables": listed}, ensure_ascii=False, separators=(",", ":"))


def create_flow(
    name: str,
    definition: str,
    description: str,
    role_arn: str | None,
    execution_mode: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> Call[FlowInfo]:
    """CreateFlow."""
    params = {"Name": name, "Definition": definition, "Description": description, "Type": "FDL"}
    _put(params, "RoleArn", role_arn)
    _put(params, "ExecutionMode", execution_mode or None)
    _put(params, "Environment", _environment(environment))
    return Call("CreateFlow", params, FlowInfo.from_api)


def update_flow(
    name: str,
    definition: str | None,
    description: str | None,
    role_arn: str | None,
    environment: Mapping[str, str] | None = None,
) -> Call[FlowInfo]:
    """UpdateFlow."""
    params = {"Name": name}
    _put(params, "Definition", definition)
    _put(params, "Description", description)
    _put(params, "RoleArn", role_arn)
    _put(params, "Environment", _environment(environment))
    return Call("UpdateFlow", params, FlowInfo.from_api)


def describe_flow(name: str, flow_version: int | str | None = None) -> Call[FlowInfo]:
    """DescribeFlow; with ``flow_version``, as that published version has it."""
    params = {"Name": name}
    _put(params, "FlowVersion", flow_version)
    return Call("DescribeFlow", params, FlowInfo.from_api)


def list_flows(limit: int | None, next_token: str | None) -> Call[Page[FlowInfo]]:
    """ListFlows."""
    params: dict[str, str] = {}
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    return Call("ListFlows", params, _flows)


def delete_flow(name: str, force: bool = False) -> Call[str]:
    """DeleteFlow; ``force`` (`Force=true`) stops its running executions first."""
    params = {"Name": name}
    if force:
        params["Force"] = "true"
    return Call("DeleteFlow", params, _request_id)


def start_execution(
    flow_name: str,
    input: Mapping[str, Any] | None,
    name: str | None,
    callback_token: str | None,
    qualifier: str | None = None,
) -> Call[ExecutionInfo]:
    """StartExecution; ``qualifier`` is a published version or an alias."""
    params = {"FlowName": flow_name}
    _put(params, "ExecutionName", name or None)
    if input is not None:
        params["Input"] = _object_text(input, "input")
    _put(params, "CallbackFnFTaskToken", callback_token or None)
    _put(params, "Qualifier", qualifier or None)
    return Call("StartExecution", params, ExecutionInfo.from_api, route=route_of(flow_name, name))


#: The longest an Express execution runs; a StartSyncExecution answer may take this long.
EXPRESS_MAX_SECONDS = 300.0


def _sync_execution(doc: dict[str, Any]) -> ExecutionInfo:
    # StartSyncExecution names the failure ErrorCode and ErrorMessage, not Error and Cause.
    return ExecutionInfo.from_api(
        {
            **doc,
            "Error": doc.get("ErrorCode") or doc.get("Error") or "",
            "Cause": doc.get("ErrorMessage") or doc.get("Cause") or "",
        }
    )


def start_sync_execution(
    flow_name: str, input: Mapping[str, Any] | None, name: str | None, qualifier: str | None
) -> Call[ExecutionInfo]:
    """StartSyncExecution: the answer comes when the Express execution has ended."""
    params = {"FlowName": flow_name}
    _put(params, "ExecutionName", name or None)
    if input is not None:
        params["Input"] = _object_text(input, "input")
    _put(params, "Qualifier", qualifier or None)
    return Call("StartSyncExecution", params, _sync_execution, extra_timeout=EXPRESS_MAX_SECONDS)


def describe_execution(
    flow_name: str, name: str, wait_seconds: float, include_waiting: bool = False
) -> Call[ExecutionInfo]:
    """DescribeExecution; a long poll of ``wait_seconds`` gets as much more HTTP time.

    With ``include_waiting`` (`IncludeWaiting=true`) the answer says what it waits on.
    """
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait_seconds must be from 0 to {MAX_WAIT_SECONDS}, got {wait_seconds}")
    seconds = int(wait_seconds)
    if seconds != wait_seconds:
        raise ValueError(f"wait_seconds must be a whole number of seconds, got {wait_seconds}")
    params = {"FlowName": flow_name, "ExecutionName": name}
    if seconds:
        params["WaitTimeSeconds"] = str(seconds)
    if include_waiting:
        params["IncludeWaiting"] = "true"
    return Call("DescribeExecution", params, ExecutionInfo.from_api, extra_timeout=float(seconds))


def stop_execution(flow_name: str, name: str, error: str, cause: str) -> Call[ExecutionInfo]:
    """StopExecution; empty Error and Cause are left out."""
    params = {"FlowName": flow_name, "ExecutionName": name}
    _put(params, "Error", error or None)
    _put(params, "Cause", cause or None)
    return Call("StopExecution", params, ExecutionInfo.from_api, route=route_of(flow_name, name))


def list_executions(
    flow_name: str,
    status: str | None,
    name_prefix: str | None,
    limit: int | None,
    next_token: str | None,
    started_after: datetime | str | None,
    started_before: datetime | str | None,
    qualifier: str | None = None,
) -> Call[Page[ExecutionInfo]]:
    """ListExecutions; ``qualifier`` keeps the executions of a version or an alias."""
    params = {"FlowName": flow_name}
    _put(params, "Status", status or None)
    _put(params, "ExecutionNamePrefix", name_prefix or None)
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    _put(params, "StartedTimeBegin", _rfc3339(started_after, "started_after"))
    _put(params, "StartedTimeEnd", _rfc3339(started_before, "started_before"))
    _put(params, "Qualifier", qualifier or None)
    return Call("ListExecutions", params, _executions)


def get_execution_history(
    flow_name: str, name: str, limit: int | None, next_token: str | None
) -> Call[HistoryPage]:
    """GetExecutionHistory."""
    params = {"FlowName": flow_name, "ExecutionName": name}
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    return Call("GetExecutionHistory", params, _events)


def _report_target(
    token: str | None, flow_name: str | None, correlation_key: str | int | None
) -> dict[str, str]:
    """TaskToken, or FlowName and CorrelationKey: exactly one form, checked before sending."""
    by_key = bool(flow_name) or (correlation_key is not None and correlation_key != "")
    if by_key and token:
        raise ValueError("give a task token, or flow_name and correlation_key; not both")
    if not by_key:
        return {"TaskToken": token or ""}
    if not flow_name or correlation_key is None or correlation_key == "":
        raise ValueError("flow_name and correlation_key go together; give both")
    if isinstance(correlation_key, bool) or not isinstance(correlation_key, str | int):
        raise ValueError(
            f"correlation_key must be a string or an integer, not {type(correlation_key).__name__}"
        )
    return {"FlowName": flow_name, "CorrelationKey": str(correlation_key)}


def report_task_succeeded(
    token: str | None,
    output: Mapping[str, Any],
    flow_name: str | None = None,
    correlation_key: str | int | None = None,
) -> Call[int]:
    """ReportTaskSucceeded, by token or by flow and correlation key; the answer is the EventId."""
    params = _report_target(token, flow_name, correlation_key)
    params["Output"] = _object_text(output, "output")
    return Call("ReportTaskSucceeded", params, _event_id, route=token_route(token))


def report_task_failed(
    token: str | None,
    error: str,
    cause: str,
    flow_name: str | None = None,
    correlation_key: str | int | None = None,
) -> Call[int]:
    """ReportTaskFailed, by token or by flow and correlation key; the answer is the EventId.

    An empty Cause is left out.
    """
    params = _report_target(token, flow_name, correlation_key)
    params["Error"] = error
    _put(params, "Cause", cause or None)
    return Call("ReportTaskFailed", params, _event_id, route=token_route(token))


# relayflow's own actions: the operations of production


def redrive_execution(
    flow_name: str, name: str, use_current_definition: bool
) -> Call[ExecutionInfo]:
    """RedriveExecution; the answer is the execution, Running again."""
    params = {"FlowName": flow_name, "ExecutionName": name}
    if use_current_definition:
        params["UseCurrentDefinition"] = "true"
    return Call("RedriveExecution", params, ExecutionInfo.from_api)


def execution_filters(
    flow_name: str,
    status: str | None,
    name_prefix: str | None,
    started_after: datetime | str | None,
    started_before: datetime | str | None,
) -> dict[str, str]:
    """ListExecutions' filters, as the bulk actions take them."""
    params = {"FlowName": flow_name}
    _put(params, "Status", status or None)
    _put(params, "ExecutionNamePrefix", name_prefix or None)
    _put(params, "StartedTimeBegin", _rfc3339(started_after, "started_after"))
    _put(params, "StartedTimeEnd", _rfc3339(started_before, "started_before"))
    return params


def _page_params(
    params: dict[str, str], limit: int | None, next_token: str | None, dry_run: bool
) -> dict[str, str]:
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    if dry_run:
        params["DryRun"] = "true"
    return params


def _matched(doc: dict[str, Any]) -> int:
    value = doc.get("Matched")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ClientError(
        "InvalidResponse",
        f"the server sent no Matched count, but {str(value)[:40]!r}",
        request_id=_request_id(doc),
    )


def count_executions(
    flow_name: str,
    status: str | None,
    name_prefix: str | None,
    started_after: datetime | str | None,
    started_before: datetime | str | None,
) -> Call[int]:
    """CountExecutions; the answer is `Matched`."""
    params = execution_filters(flow_name, status, name_prefix, started_after, started_before)
    return Call("CountExecutions", params, _matched)


def stop_executions(
    filters: dict[str, str],
    error: str,
    cause: str,
    limit: int | None,
    next_token: str | None,
    dry_run: bool,
) -> Call[BulkPage]:
    """StopExecutions on ``filters``; empty Error and Cause are left out."""
    params = dict(filters)
    _put(params, "Error", error or None)
    _put(params, "Cause", cause or None)
    return Call(
        "StopExecutions", _page_params(params, limit, next_token, dry_run), BulkPage.from_api
    )


def redrive_executions(
    filters: dict[str, str],
    use_current_definition: bool,
    limit: int | None,
    next_token: str | None,
    dry_run: bool,
) -> Call[BulkPage]:
    """RedriveExecutions on ``filters`` (from `execution_filters`)."""
    params = dict(filters)
    if use_current_definition:
        params["UseCurrentDefinition"] = "true"
    return Call(
        "RedriveExecutions", _page_params(params, limit, next_token, dry_run), BulkPage.from_api
    )


def _whole_seconds(value: float | None, what: str) -> int | None:
    """A duration the API takes in whole seconds; a fraction is refused, not rounded."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ValueError(f"{what} must be a whole number of seconds, got {value!r}")
    return int(value)


def _waiting(doc: dict[str, Any]) -> Page[WaitingWork]:
    return Page.from_api(doc, "Waiting", WaitingWork.from_api)


def list_waiting(
    flow_name: str | None, older_than: float | None, limit: int | None, next_token: str | None
) -> Call[Page[WaitingWork]]:
    """ListWaitingWork; without ``flow_name``, every flow's executions."""
    params: dict[str, str] = {}
    _put(params, "FlowName", flow_name or None)
    _put(params, "OlderThanSeconds", _whole_seconds(older_than, "older_than"))
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    return Call("ListWaitingWork", params, _waiting)


def _when(value: datetime | str | float, what: str) -> str:
    """A time as RFC 3339 text with milliseconds: an aware datetime, text, or epoch seconds."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what} must be timezone-aware, such as datetime.now(UTC)")
        return iso_time(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a datetime, RFC 3339 text or seconds since the epoch")
    try:
        return iso_time(float(value))
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{what} is not a time: {value!r}") from None


def purge_executions(
    ended_before: datetime | str | float,
    flow_name: str | None,
    dry_run: bool,
    limit: int | None,
) -> Call[PurgeResult]:
    """PurgeExecutions."""
    params = {"EndedBefore": _when(ended_before, "ended_before")}
    _put(params, "FlowName", flow_name or None)
    _put(params, "Limit", limit)
    if dry_run:
        params["DryRun"] = "true"
    return Call("PurgeExecutions", params, PurgeResult.from_api)


# schedules


def _payload_text(payload: Mapping[str, Any] | str | None) -> str | None:
    if payload is None or isinstance(payload, str):
        return payload
    return _object_text(payload, "payload")


def create_schedule(
    flow_name: str,
    schedule_name: str,
    cron_expression: str,
    payload: Mapping[str, Any] | str | None,
    enable: bool,
    description: str,
) -> Call[ScheduleInfo]:
    """CreateSchedule."""
    params = {
        "FlowName": flow_name,
        "ScheduleName": schedule_name,
        "CronExpression": cron_expression,
        "Enable": "true" if enable else "false",
    }
    _put(params, "Payload", _payload_text(payload))
    _put(params, "Description", description or None)
    return Call("CreateSchedule", params, lambda doc: ScheduleInfo.from_api(doc, flow_name))


def describe_schedule(flow_name: str, schedule_name: str) -> Call[ScheduleInfo]:
    """DescribeSchedule."""
    params = {"FlowName": flow_name, "ScheduleName": schedule_name}
    return Call("DescribeSchedule", params, lambda doc: ScheduleInfo.from_api(doc, flow_name))


def list_schedules(
    flow_name: str, limit: int | None, next_token: str | None
) -> Call[Page[ScheduleInfo]]:
    """ListSchedules."""
    params = {"FlowName": flow_name}
    _put(params, "Limit", limit)
    _put(params, "NextToken", next_token or None)
    return Call(
        "ListSchedules",
        params,
        lambda doc: Page.from_api(doc, "Schedules", lambda d: ScheduleInfo.from_api(d, flow_name)),
    )


def update_schedule(
    flow_name: str,
    schedule_name: str,
    cron_expression: str | None,
    payload: Mapping[str, Any] | str | None,
    enable: bool | None,
    description: str | None,
) -> Call[ScheduleInfo]:
    """UpdateSchedule; None keeps a field."""
    params = {"FlowName": flow_name, "ScheduleName": schedule_name}
    _put(params, "CronExpression", cron_expression)
    _put(params, "Payload", _payload_text(payload))
    _put(params, "Enable", None if enable is None else ("true" if enable else "false"))
    _put(params, "Description", description)
    return Call("UpdateSchedule", params, lambda doc: ScheduleInfo.from_api(doc, flow_name))


def delete_schedule(flow_name: str, schedule_name: str) -> Call[str]:
    """DeleteSchedule; the answer is the RequestId."""
    params = {"FlowName": flow_name, "ScheduleName": schedule_name}
    return Call("DeleteSchedule", params, _request_id)
