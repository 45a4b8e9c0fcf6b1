"""Error names and causes of failed SQL tasks, with no statement text and no parameter values.

SQLAlchemy's exception text carries the SQL and (unless hidden) the parameters, and drivers add
detail lines that quote row values (PostgreSQL's `Key (email)=(ada@example.com) already
exists`). A cause keeps only the driver's first line, and masks any parameter value that still
appears in it (`invalid input syntax for type integer: "***"`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

__all__ = [
    "ERROR_CONFIGURATION",
    "ERROR_INVALID_PARAMETER",
    "ERROR_NOT_ALLOWED",
    "ERROR_TOO_MANY_ROWS",
    "PREFIX",
    "error_name",
    "masked_message",
]

PREFIX = "SQL."
ERROR_INVALID_PARAMETER = "SQL.InvalidParameter"
ERROR_TOO_MANY_ROWS = "SQL.TooManyRows"
ERROR_CONFIGURATION = "SQL.ConfigurationError"
#: A statement did something relayflow-sql refuses on SQLite (see connections.py).
ERROR_NOT_ALLOWED = "SQL.NotAllowed"
_MASK = "***"
# Shorter bare values ("1", "ab") would mask unrelated words of the message; quoted they are
# still masked.
_MIN_BARE = 4
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")
_CLASS_PREFIX = re.compile(r"^\([\w.]+\)\s*")


def error_name(exc: SQLAlchemyError) -> str:
    """`SQL.` and SQLAlchemy's class name: `SQL.IntegrityError`, `SQL.OperationalError`, ..."""
    return PREFIX + type(exc).__name__


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _driver_message(exc: SQLAlchemyError) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig: Any = exc.orig
        primary = getattr(getattr(orig, "diag", None), "message_primary", None)
        if isinstance(primary, str) and primary:
            return primary.strip()  # psycopg: the message without DETAIL, HINT or LINE
        return _first_line(str(orig))
    # Not from the driver (a pool timeout, say): SQLAlchemy's own first line, unadorned.
    line = _first_line(str(exc))
    return _CLASS_PREFIX.sub("", _BACKGROUND.sub("", line))


def _texts(values: Iterable[Any]) -> list[str]:
    texts = {str(v) for v in values if v is not None and not isinstance(v, bool)}
    return sorted((t for t in texts if t), key=len, reverse=True)


def masked_message(exc: SQLAlchemyError, values: Iterable[Any] = ()) -> str:
    """The driver's first message line, with ``values`` (the bound parameters) masked."""
    message = _driver_message(exc)
    for text in _texts(values):
        for quoted in (f'"{text}"', f"'{text}'", f"({text})"):
            message = message.replace(quoted, f"{quoted[0]}{_MASK}{quoted[-1]}")
        if len(text) >= _MIN_BARE:
            message = message.replace(text, _MASK)
    return message or type(exc).__name__
