"""The fields of the API's answers, read and written: times, whole numbers, JSON objects, lists.

The helpers of `relayflow.results`, `relayflow.result_pages` and `relayflow.bulk_results`.
Reading is the client's side: a field that cannot be read raises `relayflow.client.ClientError`
(`InvalidResponse`). Like the results, this module imports only the standard library (the
client stays light).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

__all__ = [
    "environment_field",
    "epoch_seconds",
    "flag_field",
    "int_field",
    "invalid_answer",
    "iso_time",
    "name_list",
    "object_list",
    "parse_object",
    "parse_time",
    "text_field",
    "utc_datetime",
    "variables_of",
]


def iso_time(value: datetime | float | None) -> str:
    """A time as the API writes it, ISO 8601 UTC with milliseconds: `2019-01-01T01:01:01.001Z`.

    Args:
        value: an aware datetime, seconds since the epoch, or None (which gives "").
    """
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_datetime(seconds: float | None) -> datetime | None:
    """Seconds since the epoch as an aware UTC datetime; None stays None."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def epoch_seconds(value: datetime | None) -> float | None:
    """An aware datetime as seconds since the epoch; None stays None."""
    return None if value is None else value.timestamp()


def invalid_answer(message: str, request_id: str = "") -> NoReturn:
    """Raise the client's `InvalidResponse` with ``message``."""
    # Imported here: only the client parses answers, and the client owns its error type.
    from relayflow.client._errors import ClientError

    raise ClientError("InvalidResponse", message, request_id=request_id)


def text_field(doc: Mapping[str, Any], key: str) -> str:
    """``doc[key]`` as text; "" when missing or null."""
    value = doc.get(key)
    return "" if value is None else str(value)


def int_field(doc: Mapping[str, Any], key: str) -> int:
    """``doc[key]`` as a whole number; 0 when missing or empty (`InvalidResponse` otherwise)."""
    value = doc.get(key)
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        invalid_answer(f"the server sent {key} that is not a whole number: {value!r}")


def parse_time(value: Any) -> datetime | None:
    """An API time (`2019-01-01T01:01:01.001Z`) as an aware datetime; None when empty.

    Raises:
        relayflow.client.ClientError: `InvalidResponse`, the text is not ISO 8601.
    """
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        invalid_answer(f"the server sent a time that is not ISO 8601: {value!r}")


def parse_object(value: Any, what: str) -> dict[str, Any]:
    """JSON object text from the API as a dict; "" and a missing field are `{}`.

    Raises:
        relayflow.client.ClientError: `InvalidResponse`, the text is not a JSON object.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(value) if isinstance(value, str | bytes) else value
    except ValueError:
        invalid_answer(f"the server sent {what} that is not JSON: {str(value)[:80]!r}")
    if not isinstance(data, dict):
        invalid_answer(f"the server sent {what} that is not a JSON object: {str(value)[:80]!r}")
    return data


def variables_of(text: str, *, descriptions: bool = True) -> dict[str, Any]:
    """A stored Environment (JSON text, "" for none) as the API shows it: `{"Variables": [...]}`.

    An execution's variables have `Name` and `Value` only (``descriptions=False``), as the
    service's execution answers do.
    """
    variables = json.loads(text)["Variables"] if text else []
    if not descriptions:
        variables = [{"Name": v["Name"], "Value": v["Value"]} for v in variables]
    return {"Variables": variables}


def environment_field(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An answer's `Environment` (an object, or its JSON text) as `{"Variables": [...]}`."""
    value = doc.get("Environment")
    if isinstance(value, str) and value:
        value = parse_object(value, "an Environment")
    if not isinstance(value, dict):
        return {"Variables": []}
    variables = value.get("Variables")
    return {"Variables": variables if isinstance(variables, list) else []}


def object_list(value: Any, key: str) -> list[dict[str, Any]]:
    """A list of JSON objects; [] for null (`InvalidResponse` for anything else)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        invalid_answer(f"the server sent {key} that is not a list of objects")
    return value


def name_list(value: Any, key: str) -> tuple[str, ...]:
    """A list of names as a tuple; () for null (`InvalidResponse` for anything else)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        invalid_answer(f"the server sent {key} that is not a list of names")
    return tuple(value)


def flag_field(doc: Mapping[str, Any], key: str) -> bool:
    """``doc[key]`` is true, or the text `true` in any case."""
    value = doc.get(key)
    return value is True or (isinstance(value, str) and value.lower() == "true")
