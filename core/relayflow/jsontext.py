"""Fast JSON text for the engine's hot paths (pydantic-core's encoder, several times json's).

Values that JSON cannot hold (sets, datetimes, objects) are written as their closest JSON form
or their `str()`, rather than failing a transition.

pydantic-core refuses to read JSON nested deeper than about 200 levels and to write values
nested deeper than about 250. Data that enters the engine is held to `MAX_DEPTH` (see
`too_deep`), far below both; should anything deeper reach these functions all the same, they
fall back to the standard library's codec (about 1,000 levels) instead of failing a batch.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic_core import PydanticSerializationError, from_json, to_json

__all__ = ["MAX_DEPTH", "dumps", "loads", "loads_input", "size", "too_deep"]

#: The default nesting limit for JSON that enters the engine (`engine.max_json_depth`).
MAX_DEPTH = 64
_CONTAINERS = (dict, list, tuple)
# Where a JSON number may overflow a float: an exponent of three digits or more, or a run of 309
# digits. The lookbehind starts a run's match only at its first digit: without it, text of many
# 300-digit runs costs 300 steps a character (0.8 s for a megabyte).
_HUGE = re.compile(r"[eE]\+?0*[1-9]\d{2}|(?<!\d)\d{309}")


def dumps(value: Any) -> str:
    """Compact JSON text."""
    try:
        return to_json(value, fallback=str).decode()
    except PydanticSerializationError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    try:
        return len(to_json(value, fallback=str))
    except PydanticSerializationError:
        return len(dumps(value).encode())


def loads(text: str | bytes) -> Any:
    """Parse JSON text."""
    try:
        return from_json(text)
    except ValueError as exc:
        if "recursion limit" not in str(exc):
            raise
        return json.loads(text)


def loads_input(text: str | bytes) -> Any:
    """Parse JSON text from outside: standard JSON only, every number finite.

    `NaN` and `Infinity` are refused, and so is a number too large for a float (`1e400`), since
    JSON text could not carry either back out.

    Raises:
        ValueError: the text is not such JSON; the message says where. Nesting past
            pydantic-core's limit (about 200 levels) says "recursion limit".
    """
    value = from_json(text, allow_inf_nan=False)
    if _HUGE.search(text if isinstance(text, str) else text.decode("utf-8", "replace")) and (
        not _finite(value)
    ):
        raise ValueError("a number is too large for JSON (beyond ±1.8e308)")
    return value


def _finite(value: Any) -> bool:
    level = [value]
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, float) and not math.isfinite(node):
                return False
            if isinstance(node, dict):
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
        level = below
    return True


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels deep.

    A scalar is at depth 0, `{}` and `[1]` at depth 1. The walk goes level by level and stops
    as soon as it passes the limit, so a hostile value costs no more than its part within it
    (a value that contains itself is too deep, not an endless walk).
    """
    if not isinstance(value, _CONTAINERS):
        return False
    level = [value]
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, _CONTAINERS):
                    below.append(child)
        if not below:
            return False
        level = below
    return True
