"""ListWaitingWork: what running executions wait on, since when (relayflow's own action).

Parameters: `FlowName` (optional: every flow's executions without it), `OlderThanSeconds`
(a whole number, 0 to 366 days: only work waiting at least that long), `Limit` (1-1,000,
default 100) and `NextToken`. The answer is `{"Waiting": [...], "NextToken": "..."}`, each item
a `relayflow.results.WaitingWork` as `to_api` writes it. `relayflow.engine.waiting` does the
work; a page may hold fewer items than `Limit` while `NextToken` is not empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relayflow.api.params import Params, optional_int

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS"]


async def list_waiting_work(engine: Engine, p: Params) -> dict[str, Any]:
    page = await engine.list_waiting(
        p.get("FlowName") or None,
        older_than=optional_int(p, "OlderThanSeconds"),
        limit=optional_int(p, "Limit"),
        next_token=p.get("NextToken", ""),
    )
    return {"Waiting": [w.to_api() for w in page.items], "NextToken": page.next_token}


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "ListWaitingWork": list_waiting_work,
}
