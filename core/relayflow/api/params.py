"""Reading the API's parameters: required ones, whole numbers, times, with one clear refusal each.

Every action module reads its parameters with these, so that a missing or malformed value gets
the same code and the same kind of sentence whichever action it was sent to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from relayflow.errors import EngineError

__all__ = ["Params", "optional_int", "optional_time", "required"]

Params = Mapping[str, str]


def required(params: Params, name: str) -> str:
    """The value of ``name``; `MissingParameter` when it is absent or empty."""
    value = params.get(name)
    if value is None or value == "":
        raise EngineError("MissingParameter", f"the parameter {name} is required", 400)
    return value


def optional_int(params: Params, name: str) -> int | None:
    """The whole number ``name`` holds, None when absent; `InvalidArgument` when it is not one."""
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise EngineError(
            "InvalidArgument", f"{name} must be a whole number, got {value!r}", 400
        ) from None


def optional_time(params: Params, name: str) -> float | None:
    """The RFC 3339 time ``name`` holds as epoch seconds, None when absent."""
    value = params.get(name)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise EngineError(
            "InvalidArgument", f"{name} must be an RFC 3339 time, got {value!r}", 400
        ) from None
