"""Values crossing between JSON and the database: bind parameters in, row values out.

In: JSON scalars are bound as they are; objects and arrays are bound as their JSON text (so
`CAST(:doc AS jsonb)` works on PostgreSQL, and SQLite stores the text).

Out: every row value becomes JSON:

| database value | JSON |
| --- | --- |
| datetime, date, time | ISO 8601 text (`2024-05-01T12:30:00+00:00`) |
| Decimal (NUMERIC) | text in plain notation (`"12.50"`), so no digit is lost |
| float NaN / ±infinity | the text `"NaN"`, `"Infinity"`, `"-Infinity"` |
| timedelta (INTERVAL) | a number of seconds |
| bytes (BYTEA, BLOB) | base64 text |
| UUID | its text |
| arrays, JSON | lists and objects, converted the same way |
| anything else | its `str()` (network addresses, ranges, ...) |
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["bind_value", "json_safe"]

_FLOAT_NAMES = {math.inf: "Infinity", -math.inf: "-Infinity"}


def bind_value(value: Any) -> Any:
    """A JSON value as a bind parameter: objects and arrays as JSON text, the rest as is."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def json_safe(value: Any) -> Any:
    """A database value as a JSON value (see the module's table)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return _FLOAT_NAMES.get(value, value)
    if isinstance(value, Decimal):
        # 'f' keeps plain notation: Decimal("1E+2") reads "100", not "1E+2".
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)
