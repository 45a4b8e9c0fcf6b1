"""RFC 3339 timestamps, as wait steps take them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_rfc3339"]


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time with a zone (`2019-05-02T15:04:05Z`) into an aware datetime.

    Raises:
        ValueError: the text is not such a timestamp.
    """
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"timestamp '{text}' is not an RFC 3339 time such as 2019-05-02T15:04:05Z"
        ) from None
    if value.tzinfo is None:
        raise ValueError(f"timestamp '{text}' has no time zone; add Z or an offset such as +08:00")
    return value.astimezone(UTC)
