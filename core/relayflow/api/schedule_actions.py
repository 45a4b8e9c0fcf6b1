"""The API's actions for schedules: CreateSchedule ... DeleteSchedule.

Fields and codes are the service's: `FlowName`, `ScheduleName`, `CronExpression`, `Payload`,
`Enable` (read case-insensitively), `Description`; `ListSchedules` pages with `Limit` (1-1,000)
and `NextToken`. The engine's `relayflow.engine.schedules` does the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import Params, optional_bool, optional_int, required

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]


def _optional(params: Params, name: str) -> str | None:
    """A text parameter that UpdateSchedule changes only when it is sent."""
    return params.get(name)


async def create_schedule(engine: Engine, p: Params) -> dict[str, Any]:
    enable = optional_bool(p, "Enable")
    info = await engine.create_schedule(
        required(p, "FlowName"),
        required(p, "ScheduleName"),
        required(p, "CronExpression"),
        p.get("Payload") or None,
        True if enable is None else enable,
        p.get("Description", ""),
    )
    return info.to_api()


async def describe_schedule(engine: Engine, p: Params) -> dict[str, Any]:
    info = await engine.describe_schedule(required(p, "FlowName"), required(p, "ScheduleName"))
    return info.to_api()


async def list_schedules(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.list_schedules(
        required(p, "FlowName"), optional_int(p, "Limit"), p.get("NextToken", "")
    )
    return {"Schedules": [s.to_api() for s in page.items], "NextToken": page.next_token}


async def update_schedule(engine: Engine, p: Params) -> dict[str, Any]:
    cron = _optional(p, "CronExpression")
    info = await engine.update_schedule(
        required(p, "FlowName"),
        required(p, "ScheduleName"),
        cron_expression=cron or None,
        payload=_optional(p, "Payload"),
        enable=optional_bool(p, "Enable"),
        description=_optional(p, "Description"),
    )
    return info.to_api()


async def delete_schedule(engine: Engine, p: Params) -> dict[str, Any]:
    await engine.delete_schedule(required(p, "FlowName"), required(p, "ScheduleName"))
    return {}


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "CreateSchedule": create_schedule,
    "DescribeSchedule": describe_schedule,
    "ListSchedules": list_schedules,
    "UpdateSchedule": update_schedule,
    "DeleteSchedule": delete_schedule,
}
