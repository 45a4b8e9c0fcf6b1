"""The actions as data: which parameters each call sends and how its answer is read.

Both clients build a `Call` here and only differ in how they send it, so the protocol lives in
one place and the sync and async clients cannot drift apart. This module holds the protocol
(`encode`, `decode`, `Credentials`) and the service's actions (flows, executions, reports);
relayflow's own operations and the schedules are built in `_operation_calls.py` and
`_schedule_calls.py` and re-exported here, so every builder is still `_calls.<name>`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relayflow.client._call import Call, object_text, put_param, request_id_of, rfc3339_text
from relayflow.client._errors import ClientError

# The `as` imports are re-exports (so mypy and ruff read them): both clients call every
# builder as `_calls.<name>`.
from relayflow.client._operation_calls import count_executions as count_executions
from relayflow.client._operation_calls import execution_filters as execution_filters
from relayflow.client._operation_calls import list_waiting as list_waiting
from relayflow.client._operation_calls import purge_executions as purge_executions
from relayflow.client._operation_calls import redrive_execution as redrive_execution
from relayflow.client._operation_calls import redrive_executions as redrive_executions
from relayflow.client._operation_calls import stop_executions as stop_executions
from relayflow.client._route import route_of, token_route
from relayflow.client._schedule_calls import create_schedule as create_schedule
from relayflow.client._schedule_calls import delete_schedule as delete_schedule
from relayflow.client._schedule_calls import describe_schedule as describe_schedule
from relayflow.client._schedule_calls import list_schedules as list_schedules
from relayflow.client._schedule_calls import update_schedule as update_schedule
from relayflow.results import ExecutionInfo, FlowInfo, HistoryEvent, HistoryPage, Page
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
        "InvalidResponse",
        f"the server sent no EventId, but {value!r}",
        request_id=request_id_of(doc),
    )


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
    put_param(params, "RoleArn", role_arn)
    put_param(params, "ExecutionMode", execution_mode or None)
    put_param(params, "Environment", _environment(environment))
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
    put_param(params, "Definition", definition)
    put_param(params, "Description", description)
    put_param(params, "RoleArn", role_arn)
    put_param(params, "Environment", _environment(environment))
    return Call("UpdateFlow", params, FlowInfo.from_api)


def describe_flow(name: str, flow_version: int | str | None = None) -> Call[FlowInfo]:
    """DescribeFlow; with ``flow_version``, as that published version has it."""
    params = {"Name": name}
    put_param(params, "FlowVersion", flow_version)
    return Call("DescribeFlow", params, FlowInfo.from_api)


def list_flows(limit: int | None, next_token: str | None) -> Call[Page[FlowInfo]]:
    """ListFlows."""
    params: dict[str, str] = {}
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
    return Call("ListFlows", params, _flows)


def delete_flow(name: str, force: bool = False) -> Call[str]:
    """DeleteFlow; ``force`` (`Force=true`) stops its running executions first."""
    params = {"Name": name}
    if force:
        params["Force"] = "true"
    return Call("DeleteFlow", params, request_id_of)


def start_execution(
    flow_name: str,
    input: Mapping[str, Any] | None,
    name: str | None,
    callback_token: str | None,
    qualifier: str | None = None,
) -> Call[ExecutionInfo]:
    """StartExecution; ``qualifier`` is a published version or an alias."""
    params = {"FlowName": flow_name}
    put_param(params, "ExecutionName", name or None)
    if input is not None:
        params["Input"] = object_text(input, "input")
    put_param(params, "CallbackFnFTaskToken", callback_token or None)
    put_param(params, "Qualifier", qualifier or None)
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
    put_param(params, "ExecutionName", name or None)
    if input is not None:
        params["Input"] = object_text(input, "input")
    put_param(params, "Qualifier", qualifier or None)
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
    put_param(params, "Error", error or None)
    put_param(params, "Cause", cause or None)
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
    put_param(params, "Status", status or None)
    put_param(params, "ExecutionNamePrefix", name_prefix or None)
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
    put_param(params, "StartedTimeBegin", rfc3339_text(started_after, "started_after"))
    put_param(params, "StartedTimeEnd", rfc3339_text(started_before, "started_before"))
    put_param(params, "Qualifier", qualifier or None)
    return Call("ListExecutions", params, _executions)


def get_execution_history(
    flow_name: str, name: str, limit: int | None, next_token: str | None
) -> Call[HistoryPage]:
    """GetExecutionHistory."""
    params = {"FlowName": flow_name, "ExecutionName": name}
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
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
    params["Output"] = object_text(output, "output")
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
    put_param(params, "Cause", cause or None)
    return Call("ReportTaskFailed", params, _event_id, route=token_route(token))
