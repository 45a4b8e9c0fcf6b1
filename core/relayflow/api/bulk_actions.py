"""Bulk actions on the executions a filter matches (relayflow's own): StopExecutions and more.

`StopExecutions`, `RedriveExecutions` and `CountExecutions` take ListExecutions' filters
(`Status`, `ExecutionNamePrefix`, `StartedTimeBegin`, `StartedTimeEnd`); the first two act on
one page of the matches (`Limit`, at most 1,000; `NextToken` resumes) unless `DryRun` is true.
See docs/bulk-actions.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import optional_bool, optional_int, optional_time, required
from relayflow.engine.bulk import ExecutionFilter
from relayflow.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]


def _filters(p: Mapping[str, str]) -> ExecutionFilter:
    """ListExecutions' filter parameters; the engine checks the status and the prefix."""
    return ExecutionFilter(
        status=p.get("Status") or None,
        name_prefix=p.get("ExecutionNamePrefix") or None,
        started_from=optional_time(p, "StartedTimeBegin"),
        started_to=optional_time(p, "StartedTimeEnd"),
    )


#: The largest `MaxCount` CountExecutions takes.
MAX_COUNT = 1_000_000


async def count_executions(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    """`{"Matched": n}`: how many executions of `FlowName` the filter matches.

    With `MaxCount` (1 to 1,000,000) counting stops there: the answer is then
    `{"Matched": min(n, MaxCount), "MoreThan": n > MaxCount}`.
    """
    at_most = optional_int(p, "MaxCount")
    if at_most is not None and not 1 <= at_most <= MAX_COUNT:
        raise EngineError(
            "InvalidArgument", f"MaxCount must be from 1 to {MAX_COUNT:,}, got {at_most}", 400
        )
    matched = await engine.count_executions_matching(
        required(p, "FlowName"), _filters(p), at_most=at_most
    )
    if at_most is None:
        return {"Matched": matched}
    return {"Matched": min(matched, at_most), "MoreThan": matched > at_most}


async def stop_executions(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    """Stop a page of the running executions the filter matches, with `Error` and `Cause`."""
    result = await engine.stop_executions(
        required(p, "FlowName"),
        filters=_filters(p),
        error=p.get("Error", ""),
        cause=p.get("Cause", ""),
        limit=optional_int(p, "Limit"),
        next_token=p.get("NextToken", ""),
        dry_run=bool(optional_bool(p, "DryRun")),
    )
    return result.to_api()


async def redrive_executions(engine: Engine, p: Mapping[str, str]) -> dict[str, Any]:
    """Redrive a page of the ended executions the filter matches (`Status` required)."""
    result = await engine.redrive_executions(
        required(p, "FlowName"),
        filters=_filters(p),
        use_current_definition=bool(optional_bool(p, "UseCurrentDefinition")),
        limit=optional_int(p, "Limit"),
        next_token=p.get("NextToken", ""),
        dry_run=bool(optional_bool(p, "DryRun")),
    )
    return result.to_api()


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "CountExecutions": count_executions,
    "StopExecutions": stop_executions,
    "RedriveExecutions": redrive_executions,
}
