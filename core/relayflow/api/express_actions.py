"""The API's actions for Express executions: StartSyncExecution.

The answer has the fields of the service's SDK model (`StartSyncExecutionResponseBody`):
`Name`, `FlowName`, `Status`, `StartedTime`, `StoppedTime`, `Environment`, and `Output` when
the execution succeeded or `ErrorCode` and `ErrorMessage` when it did not (its error and
cause, which DescribeExecution calls `Error` and `Cause`). A failed execution is a 200 answer;
only a request that cannot run (no such flow, a Standard flow, bad input) is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import required

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]

# DescribeExecution's fields that StartSyncExecution answers with, under the same names.
_KEPT = ("Name", "FlowName", "Status", "StartedTime", "StoppedTime", "Environment", "Output")


async def start_sync_execution(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.start_sync_execution(
        required(p, "FlowName"),
        p.get("Input"),
        p.get("ExecutionName") or None,
        qualifier=p.get("Qualifier", ""),
    )
    described = info.to_api()
    doc = {key: described[key] for key in _KEPT if key in described}
    if info.error or info.cause:
        doc["ErrorCode"], doc["ErrorMessage"] = info.error, info.cause
    if info.flow_version:
        doc["FlowVersion"] = info.flow_version
    return doc


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "StartSyncExecution": start_sync_execution,
}
