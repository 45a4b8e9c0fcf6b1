"""PurgeExecutions: delete ended executions on demand (relayflow's own action).

Parameters: `EndedBefore` (required; an RFC 3339 time with its zone, such as
`2026-11-01T00:00:00Z`), `FlowName` (optional: only that flow's executions), `DryRun`
(`true`: count, delete nothing) and `Limit` (1 to 10,000, default 1,000: the most one call
deletes). The answer: `Count` (deleted, or would be), `Remaining` (still matching), `More`
(call again) and `DryRun`. The engine's `relayflow.engine.retention` does the work.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from relayflow.api.params import Params, optional_bool, optional_int, required
from relayflow.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from relayflow.engine.engine import Engine

__all__ = ["ACTIONS", "rfc3339"]


def rfc3339(value: str, name: str) -> datetime:
    """``value`` as an aware datetime; `InvalidArgument` unless it is RFC 3339 with a zone."""
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or len(value) > 64:
        raise EngineError.of(
            "InvalidArgument",
            f"{name} must be an RFC 3339 time with its zone, such as 2026-11-01T00:00:00Z, "
            f"got {value[:40]!r}",
        )
    return when


async def purge_executions(engine: Engine, p: Params) -> dict[str, Any]:
    result = await engine.purge_executions(
        rfc3339(required(p, "EndedBefore"), "EndedBefore"),
        flow_name=p.get("FlowName") or None,
        dry_run=bool(optional_bool(p, "DryRun")),
        limit=optional_int(p, "Limit"),
    )
    return result.to_api()


ACTIONS: dict[str, Callable[[Engine, Mapping[str, str]], Awaitable[dict[str, Any]]]] = {
    "PurgeExecutions": purge_executions,
}
