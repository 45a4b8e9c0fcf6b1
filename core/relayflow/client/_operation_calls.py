"""The call builders of relayflow's own actions: the operations of production.

RedriveExecution, CountExecutions, StopExecutions and RedriveExecutions, ListWaitingWork and
PurgeExecutions, which the service does not have; apart from the service's actions in
`_calls.py`, which re-exports them, so both clients still build every call as `_calls.<name>`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from relayflow.client._call import Call, put_param, request_id_of, rfc3339_text
from relayflow.client._errors import ClientError
from relayflow.results import BulkPage, ExecutionInfo, Page, PurgeResult, WaitingWork, iso_time

__all__ = [
    "count_executions",
    "execution_filters",
    "list_waiting",
    "purge_executions",
    "redrive_execution",
    "redrive_executions",
    "stop_executions",
]


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
    put_param(params, "Status", status or None)
    put_param(params, "ExecutionNamePrefix", name_prefix or None)
    put_param(params, "StartedTimeBegin", rfc3339_text(started_after, "started_after"))
    put_param(params, "StartedTimeEnd", rfc3339_text(started_before, "started_before"))
    return params


def _page_params(
    params: dict[str, str], limit: int | None, next_token: str | None, dry_run: bool
) -> dict[str, str]:
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
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
        request_id=request_id_of(doc),
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
    put_param(params, "Error", error or None)
    put_param(params, "Cause", cause or None)
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
    put_param(params, "FlowName", flow_name or None)
    put_param(params, "OlderThanSeconds", _whole_seconds(older_than, "older_than"))
    put_param(params, "Limit", limit)
    put_param(params, "NextToken", next_token or None)
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
    put_param(params, "FlowName", flow_name or None)
    put_param(params, "Limit", limit)
    if dry_run:
        params["DryRun"] = "true"
    return Call("PurgeExecutions", params, PurgeResult.from_api)
