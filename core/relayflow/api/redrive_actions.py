"""RedriveExecution: a Failed, TimedOut or Stopped execution goes on (relayflow's own action).

Parameters: `FlowName`, `ExecutionName` (both required) and `UseCurrentDefinition` (`true` or
`false`, default false: the execution keeps the definition it ran). The answer has
DescribeExecution's fields, with the execution Running again and its `RedriveCount`.
Refusals: `ExecutionNotExists` (404), `ExecutionNotRedrivable` (409, one sentence saying why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import optional_bool, required

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]


async def redrive_execution(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    info = await engine.redrive_execution(
        required(p, "FlowName"),
        required(p, "ExecutionName"),
        use_current_definition=bool(optional_bool(p, "UseCurrentDefinition")),
    )
    return info.to_api()


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "RedriveExecution": redrive_execution,
}
