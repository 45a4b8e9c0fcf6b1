"""Checking what callers pass to the engine: names, JSON objects, Error and Cause, page sizes.

Each check answers a bad value with an `InvalidArgument` refusal whose message names the field,
as Serverless Workflow's API does.
"""

from __future__ import annotations

import re
from typing import Any

from relayflow import jsontext
from relayflow.errors import EngineError, first_line

__all__ = ["check_name", "check_text", "page_size", "parse_object"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")


def check_name(value: str, what: str) -> str:
    """Check a flow or execution name against Serverless Workflow's rules."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise EngineError.of(
            "InvalidArgument",
            f"{what} {value!r} must be 1 to 128 characters of letters, "
            "digits, _ and -, starting with a letter or _",
        )
    return value


def parse_object(value: Any, what: str, max_depth: int = jsontext.MAX_DEPTH) -> dict[str, Any]:
    """A JSON object given as a dict or as JSON text, nested at most ``max_depth`` levels."""
    if value is None or value == "":
        return {}
    if isinstance(value, str | bytes):
        try:
            value = jsontext.loads_input(value)
        except ValueError as exc:
            if "recursion limit" in str(exc):
                raise _too_deep(what, max_depth) from None
            raise EngineError.of(
                "InvalidArgument", f"{what} is not valid JSON: {first_line(exc)}"
            ) from None
    if not isinstance(value, dict):
        raise EngineError.of(
            "InvalidArgument", f"{what} must be a JSON object, not a {type(value).__name__}"
        )
    if jsontext.too_deep(value, max_depth):
        raise _too_deep(what, max_depth)
    return value


def _too_deep(what: str, max_depth: int) -> EngineError:
    return EngineError.of(
        "InvalidArgument",
        f"{what} nests objects and arrays more than {max_depth} levels deep "
        "(engine.max_json_depth)",
    )


def check_text(value: str, what: str, top: int, *, required: bool = False) -> str:
    """An Error or Cause field, held to the service's length (Error 1-128, Cause 0-4,096)."""
    if not isinstance(value, str) or len(value) > top or (required and not value):
        least = 1 if required else 0
        raise EngineError.of("InvalidArgument", f"{what} must be {least} to {top} characters")
    return value


def page_size(value: int | None, default: int, top: int, what: str) -> int:
    """A page's Limit: ``default`` when not given, else from 1 to ``top``."""
    if value is None:
        return default
    if not 1 <= value <= top:
        raise EngineError.of("InvalidArgument", f"{what} must be from 1 to {top}, got {value}")
    return value
