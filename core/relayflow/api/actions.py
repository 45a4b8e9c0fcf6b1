"""The RPC actions: parameters in, engine operation, Serverless Workflow's response fields out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relayflow.api import express_actions, schedule_actions, service_actions, version_actions
from relayflow.api.params import Params, optional_int, optional_time, required
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError

__all__ = ["ACTIONS", "run_action"]

Handler = Callable[[Engine, Params], Awaitable[dict[str, Any]]]


async def create_flow(engine: Engine, p: Params) -> dict[str, Any]:
    kind = p.get("Type") or "FDL"
    if kind != "FDL":
        raise EngineError("InvalidArgument", f"Type must be FDL, got {kind!r}", 400)
    info = await engine.create_flow(
        required(p, "Name"),
        required(p, "Definition"),
        p.get("Description", ""),
        kind,
        p.get("RoleArn", ""),
        execution_mode=p.get("ExecutionMode") or "Standard",
        environment=p.get("Environment", ""),
    )
    return info.to_api()


async def update_flow(engine: Engine, p: Params) -> dict[str, Any]:
    info = await engine.update_flow(
        required(p, "Name"), p.get("Definition") or None, p.get("Description"), p.get("RoleArn")
    )
    return info.to_api()


async def describe_flow(engine: Engine, p: Params) -> dict[str, Any]:
    return (await engine.describe_flow(required(p, "Name"))).to_api()


async def list_flows(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.list_flows(optional_int(p, "Limit"), p.get("NextToken", ""))
    return {"Flows": [f.to_api() for f in page.items], "NextToken": page.next_token}


async def delete_flow(engine: Engine, p: Params) -> dict[str, Any]:
    await engine.delete_flow(required(p, "Name"))
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
        required(p, "FlowName"), required(p, "ExecutionName"), wait
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
    page = await engine.list_executions(
        required(p, "FlowName"),
        status=p.get("Status") or None,
        name_prefix=p.get("ExecutionNamePrefix") or None,
        started_from=optional_time(p, "StartedTimeBegin"),
        started_to=optional_time(p, "StartedTimeEnd"),
        limit=optional_int(p, "Limit"),
        next_token=p.get("NextToken", ""),
        qualifier=p.get("Qualifier", ""),
    )
    return {"Executions": [e.to_api() for e in page.items], "NextToken": page.next_token}


async def get_execution_history(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.get_execution_history(
        required(p, "FlowName"),
        required(p, "ExecutionName"),
        optional_int(p, "Limit"),
        p.get("NextToken", ""),
    )
    return page.to_api()


async def report_task_succeeded(engine: Engine, p: Params) -> dict[str, Any]:
    event_id = await engine.report_task_succeeded(required(p, "TaskToken"), required(p, "Output"))
    return {"EventId": event_id}


async def report_task_failed(engine: Engine, p: Params) -> dict[str, Any]:
    event_id = await engine.report_task_failed(
        required(p, "TaskToken"), required(p, "Error"), p.get("Cause", "")
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
}


async def run_action(engine: Engine, action: str, params: Params) -> dict[str, Any]:
    """Run one action.

    Raises:
        EngineError: the action is unknown, a parameter is missing or wrong, or the engine
            refuses.
    """
    handler = ACTIONS.get(action)
    if handler is None:
        known = ", ".join(sorted(ACTIONS))
        raise EngineError(
            "ActionNotSupported", f"action {action!r} is not supported; supported: {known}", 400
        )
    return await handler(engine, params)
