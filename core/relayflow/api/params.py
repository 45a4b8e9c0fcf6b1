"""Reading the API's parameters: required ones, whole numbers, times, with one clear refusal each.

Every action module reads its parameters with these, so that a missing or malformed value gets
the same code and the same kind of sentence whichever action it was sent to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from relayflow.engine.arguments import check_environment
from relayflow.errors import EngineError

__all__ = [
    "STATUSES",
    "Params",
    "optional_bool",
    "optional_environment",
    "optional_int",
    "optional_status",
    "optional_time",
    "required",
]

Params = Mapping[str, str]

#: The execution statuses Serverless Workflow lists (ListExecutions' `Status` filter takes
#: these). relayflow never reports `Starting`: an execution is `Running` once StartExecution
#: answers.
STATUSES = ("Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut")


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


def optional_bool(params: Params, name: str) -> bool | None:
    """The boolean ``name`` holds, None when absent; `InvalidArgument` when it is not one.

    Read case-insensitively: the old SDK sends Python's `True`, the new one `true`, and
    tools send `TRUE` as well.
    """
    value = params.get(name)
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise EngineError("InvalidArgument", f"{name} must be true or false, got {value!r}", 400)


def optional_environment(params: Params, name: str = "Environment") -> str | None:
    """A flow's Environment as the store keeps it; None when the parameter is absent.

    Present but empty, or with no variables, gives "" (UpdateFlow then clears it).

    Raises:
        EngineError: `InvalidArgument`, naming the variable and what is wrong with it.
    """
    if name not in params:
        return None
    return check_environment(params[name])


def optional_status(params: Params, name: str = "Status") -> str | None:
    """An execution status filter, None when absent; one of `STATUSES`, in their spelling."""
    value = params.get(name)
    if not value:
        return None
    if value not in STATUSES:
        raise EngineError(
            "InvalidArgument",
            f"{name} must be one of {', '.join(STATUSES)}, got {value[:40]!r}",
            400,
        )
    return value
