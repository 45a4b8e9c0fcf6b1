"""The call builders of the schedule actions: a flow's cron schedules, created and changed.

CreateSchedule, DescribeSchedule, ListSchedules, UpdateSchedule and DeleteSchedule; apart from
the service's flows and executions in `_calls.py`, which re-exports them, so both clients still
build every call as `_calls.<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayflow.client._call import Call, object_text, put_param, request_id_of
from relayflow.flow_objects import ScheduleInfo
from relayflow.results import Page

__all__ = [
    "create_schedule",
    "delete_schedule",
    "describe_schedule",
    "list_schedules",
    "update_schedule",
]


def _payload_text(payload: Mapping[str, Any] | str | None) -> str | None:
    if payload is None or isinstance(payload, str):
        return payload
    return object_text(payload, "payload")


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
    put_param(params, "Payload", _payload_text(payload))
    put_param(params, "Description", description or None)
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
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
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
    put_param(params, "CronExpression", cron_expression)
    put_param(params, "Payload", _payload_text(payload))
    put_param(params, "Enable", None if enable is None else ("true" if enable else "false"))
    put_param(params, "Description", description)
    return Call("UpdateSchedule", params, lambda doc: ScheduleInfo.from_api(doc, flow_name))


def delete_schedule(flow_name: str, schedule_name: str) -> Call[str]:
    """DeleteSchedule; the answer is the RequestId."""
    params = {"FlowName": flow_name, "ScheduleName": schedule_name}
    return Call("DeleteSchedule", params, request_id_of)
