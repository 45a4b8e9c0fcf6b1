"""Fast JSON text for the engine's hot paths (pydantic-core's encoder, several times json's).

Values that JSON cannot hold (sets, datetimes, objects) are written as their closest JSON form
or their `str()`, rather than failing a transition.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

__all__ = ["dumps", "loads", "size"]


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return to_json(value, fallback=str).decode()


def size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    return len(to_json(value, fallback=str))


def loads(text: str | bytes) -> Any:
    """Parse JSON text."""
    return from_json(text)
