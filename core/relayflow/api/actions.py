"""The RPC actions: parameters in, engine operation, Serverless Workflow's response fields out.

Parameters are read with `relayflow.api.params`, as the official SDKs send them: numbers and
booleans as text (`Limit=1000`, `MetadataOnly=True` or `true`), structures as JSON text
(`Environment`). Parameters the service defines and relayflow has no use for
(`ResourceGroupId`, `ExternalStorageLocation`, `MapRunName`, ...) are accepted and ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from relayflow.api import (
    bulk_actions,
    express_actions,
    redrive_actions,
    retention_actions,
    schedule_actions,
    service_actions,
    version_actions,
    waiting_actions,
)
from relayflow.api.params import (
    Params,
    optional_bool,
    optional_environment,
    optional_int,
    optional_status,
    optional_time,
    required,
)
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError

__all__ = ["ACTIONS", "run_action"]

Handler = Callable[[Engine, Params], Awaitable[dict[str, Any]]]


def _flow_type(p: Params) -> str:
    """`Type`, which Serverless Workflow takes only as `FDL` (the default here)."""
    kind = p.get("Type") or "FDL"
    if kind != "FDL":
        raise EngineError("InvalidArgument", f"Type must be FDL, got {kind[:40]!r}", 400)
    return kind


async def create_flow(engine: Engine, p: Params) -> dict[str, Any]:
    kind = _flow_type(p)
    info = await engine.create_flow(
        required(p, "Name"),
        required(p, "Definition"),
        p.get("Description", ""),
        kind,
        p.get("RoleArn", ""),
        execution_mode=p.get("ExecutionMode") or "Standard",
        environment=optional_environment(p) or "",
    )
    return info.to_api()


async def update_flow(engine: Engine, p: Params) -> dict[str, Any]:
    _flow_type(p)
    info = await engine.update_flow(
        required(p, "Name"),
        p.get("Definition") or None,
        p.get("Description"),
        p.get("RoleArn"),
        environment=optional_environment(p),
    )
    return info.to_api()


async def describe_flow(engine: Engine, p: Params) -> dict[str, Any]:
    name, version = required(p, "Name"), p.get("FlowVersion", "")
    info = await (engine.describe_flow(name, version) if version else engine.describe_flow(name))
    return info.to_api()


async def list_flows(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.list_flows(optional_int(p, "Limit"), p.get("NextToken", ""))
    return {"Flows": [f.to_api() for f in page.items], "NextToken": page.next_token}


async def delete_flow(engine: Engine, p: Params) -> dict[str, Any]:
    await engine.delete_flow(required(p, "Name"), force=bool(optional_bool(p, "Force")))
    return {}


async def start_execution(engine: Engine, p: Params) -> dict[str, Any]:
    info = await engine.start_execution(
        required(p, "FlowName"),
        p.get("Input"),
        p.get("ExecutionName") or None,
        p.get("CallbackFnFTaskToken", ""),
        qualifier=p.get("Qualifier", ""),
    )
    return info.to_api()


async def describe_execution(engine: Engine, p: Params) -> dict[str, Any]:
    wait = optional_int(p, "WaitTimeSeconds") or 0
    info = await engine.describe_execution(
        required(p, "FlowName"),
        required(p, "ExecutionName"),
        wait,
        include_waiting=bool(optional_bool(p, "IncludeWaiting")),
    )
    return info.to_api()


async def stop_execution(engine: Engine, p: Params) -> dict[str, Any]:
    info = await engine.stop_execution(
        required(p, "FlowName"),
        required(p, "ExecutionName"),
        p.get("Error", ""),
        p.get("Cause", ""),
    )
    return info.to_api()


async def list_executions(engine: Engine, p: Params) -> dict[str, Any]:
    metadata_only = optional_bool(p, "MetadataOnly")
    page = await engine.list_executions(
        required(p, "FlowName"),
        status=optional_status(p),
        name_prefix=p.get("ExecutionNamePrefix") or None,
        started_from=optional_time(p, "StartedTimeBegin"),
        started_to=optional_time(p, "StartedTimeEnd"),
        limit=optional_int(p, "Limit"),
        next_token=p.get("NextToken", ""),
        qualifier=p.get("Qualifier", ""),
    )
    executions = [e.to_api() for e in page.items]
    if metadata_only:  # the service's MetadataOnly: without the data, Input and Output
        executions = [{k: v for k, v in e.items() if k not in _DATA} for e in executions]
    return {"Executions": executions, "NextToken": page.next_token}


_DATA = frozenset({"Input", "Output"})


async def get_execution_history(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.get_execution_history(
        required(p, "FlowName"),
        required(p, "ExecutionName"),
        optional_int(p, "Limit"),
        p.get("NextToken", ""),
    )
    return page.to_api()


def _report_target(p: Params) -> dict[str, str]:
    """TaskToken, or FlowName and CorrelationKey (relayflow's own): exactly one of the forms."""
    token, flow, key = (p.get(name) or "" for name in ("TaskToken", "FlowName", "CorrelationKey"))
    if not token and not flow and not key:
        raise EngineError.of(
            "InvalidArgument",
            "name the task with TaskToken, or with FlowName and CorrelationKey; neither was given",
        )
    return {"token": token, "flow_name": flow, "correlation_key": key}


async def report_task_succeeded(engine: Engine, p: Params) -> dict[str, Any]:
    target = _report_target(p)
    event_id = await engine.report_task_succeeded(output=required(p, "Output"), **target)
    return {"EventId": event_id}


async def report_task_failed(engine: Engine, p: Params) -> dict[str, Any]:
    target = _report_target(p)
    event_id = await engine.report_task_failed(
        error=required(p, "Error"), cause=p.get("Cause", ""), **target
    )
    return {"EventId": event_id}


CORE_ACTIONS: dict[str, Handler] = {
    "CreateFlow": create_flow,
    "UpdateFlow": update_flow,
    "DescribeFlow": describe_flow,
    "ListFlows": list_flows,
    "DeleteFlow": delete_flow,
    "StartExecution": start_execution,
    "DescribeExecution": describe_execution,
    "StopExecution": stop_execution,
    "ListExecutions": list_executions,
    "GetExecutionHistory": get_execution_history,
    "ReportTaskSucceeded": report_task_succeeded,
    "ReportTaskFailed": report_task_failed,
}

# Each group of actions lives in a module of its own; their handlers have the same shape.
ACTIONS: dict[str, Handler] = {
    **CORE_ACTIONS,
    **schedule_actions.ACTIONS,
    **version_actions.ACTIONS,
    **express_actions.ACTIONS,
    **service_actions.ACTIONS,
    # relayflow's own actions (issue 15), in the same RPC style.
    **redrive_actions.ACTIONS,
    **bulk_actions.ACTIONS,
    **waiting_actions.ACTIONS,
    **retention_actions.ACTIONS,
}


#: Serverless Workflow's actions (API version 2019-03-15); the rest of `ACTIONS` are relayflow's.
SERVICE_ACTIONS: tuple[str, ...] = tuple(
    sorted(
        {
            *CORE_ACTIONS,
            *schedule_actions.ACTIONS,
            *version_actions.ACTIONS,
            *express_actions.ACTIONS,
            *service_actions.ACTIONS,
        }
    )
)


async def run_action(engine: Engine, action: str, params: Params) -> dict[str, Any]:
    """Run one action.

    Raises:
        EngineError: the action is unknown, a parameter is missing or wrong, or the engine
            refuses.
    """
    handler = ACTIONS.get(action)
    if handler is None:
        close = difflib.get_close_matches(action, ACTIONS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise EngineError(
            "ActionNotSupported",
            f"the action {action[:100]!r} is not one relayflow serves; {hint}"
            f"the actions are Serverless Workflow's {len(SERVICE_ACTIONS)} (CreateFlow, "
            f"StartExecution, ReportTaskSucceeded, ...) and relayflow's own "
            f"({', '.join(a for a in sorted(ACTIONS) if a not in SERVICE_ACTIONS)}), all listed "
            "in docs/api.md#actions",
            400,
        )
    return await handler(engine, params)
