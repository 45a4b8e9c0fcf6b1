"""Reading back the JSON the drivers store: event details and outbox payloads.

Stored text is untrusted on the way back too (a damaged file, a hand edit): what cannot be
parsed comes back marked unreadable instead of failing the whole read, so one bad row fails
only its own execution. Every driver reads through these two functions.
"""

from __future__ import annotations

from typing import Any

from relayflow import jsontext
from relayflow.errors import first_line
from relayflow.store.records import OutboxRow

__all__ = ["detail", "outbox_row"]


def _unreadable(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


def detail(text: str) -> dict[str, Any]:
    """A stored event detail, or ``{"unreadable": reason}`` when it cannot be parsed."""
    try:
        value = jsontext.loads(text)
    except (ValueError, RecursionError) as exc:
        return {"unreadable": _unreadable(exc)}
    return value if isinstance(value, dict) else {"unreadable": "not a JSON object"}


def outbox_row(row_id: int, execution_id: int, text: str) -> OutboxRow:
    """An outbox row as stored; an unparseable payload comes back marked unreadable."""
    try:
        payload = jsontext.loads(text)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        return OutboxRow(row_id, execution_id, {}, _unreadable(exc), text)
    return OutboxRow(row_id, execution_id, payload)
