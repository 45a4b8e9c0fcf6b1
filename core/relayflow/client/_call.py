"""`Call`, one request as data, and the helpers every group of action builders shares.

The builders are grouped by what they act on (`_calls.py` the service's flows, executions and
reports, `_operation_calls.py` relayflow's own operations, `_schedule_calls.py` schedules);
this leaf holds what they all need, so `_calls.py` can re-export the groups without a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

__all__ = ["Call", "object_text", "put_param", "request_id_of", "rfc3339_text"]

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: the action, its parameters, how to read the answer, and extra time.

    ``route`` is the execution the call changes, sent in the route header (see `_route`).
    """

    action: str
    params: dict[str, str]
    parse: Callable[[dict[str, Any]], T]
    extra_timeout: float = 0.0
    route: str | None = None


def put_param(params: dict[str, str], name: str, value: object) -> None:
    if value is not None:
        params[name] = str(value)


def object_text(value: Mapping[str, Any] | None, what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict (a JSON object), not {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def rfc3339_text(value: datetime | str | None, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, such as datetime.now(UTC)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_id_of(doc: dict[str, Any]) -> str:
    return str(doc.get("RequestId") or "")
