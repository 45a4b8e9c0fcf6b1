"""Log output for `relayflow server` and workers: human-readable lines or one JSON object each.

`configure_logging(level, "json")` makes every record one line a log collector can parse:

    {"time": "2026-12-02T10:04:05.123Z", "level": "WARNING", "logger": "relayflow.engine.applier",
     "message": "...", "flow": "orders", "execution": "e-1"}

`flow`, `execution`, `step`, `trace_id` and `span_id` appear when the call passed them with
``extra={...}``; a W3C ``traceparent`` passed instead gives the two ids (a task request's
header, say). Other extra fields are kept too (as text when JSON cannot hold them), and an
exception's traceback is in `exc`. This module imports nothing from relayflow.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = [
    "LOG_FORMATS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "trace_ids",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

# The known fields, in the order they are written after time, level, logger and message.
_CONTEXT = ("flow", "execution", "step", "trace_id", "span_id")
# version-trace_id-parent_id-flags, lower-case hex (W3C Trace Context); all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# What every LogRecord has: never copied as an extra field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _rfc3339(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def trace_ids(traceparent: object) -> dict[str, str]:
    """``trace_id`` and ``span_id`` from a W3C traceparent value; empty if it is not one."""
    found = _TRACEPARENT.match(traceparent) if isinstance(traceparent, str) else None
    if found is None or not found[1].strip("0") or not found[2].strip("0"):
        return {}
    return {"trace_id": found[1], "span_id": found[2]}


def _jsonable(value: Any) -> Any:
    """``value`` if json.dumps takes it as it is, else its text."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON object; never raises for odd extra values."""
        entry: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields: dict[str, Any] = dict(record.__dict__)
        for name, ident in trace_ids(fields.pop("traceparent", None)).items():
            if fields.get(name) is None:  # ids passed as such win over a traceparent
                fields[name] = ident
        for key in _CONTEXT:
            if fields.get(key) is not None:
                entry[key] = _jsonable(fields[key])
        for key, value in fields.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = _jsonable(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str | int, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (default stderr) in ``fmt``.

    Like logging.basicConfig, it leaves a root logger alone that already has handlers someone
    else installed (a test runner's); one it installed itself is replaced, so that calling it
    again switches the format. Loggers that propagate (uvicorn's, when it is given no logging
    config of its own) follow.

    Args:
        level: A level name ("INFO", any case) or number.
        fmt: "text" for today's human-readable lines, "json" for one JSON object per line.
        stream: Where to write; stderr when None.

    Raises:
        ValueError: ``fmt`` or ``level`` is not one of the known ones.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    if isinstance(level, str):
        level = level.upper()
    root = logging.getLogger()
    ours = [old for old in root.handlers if isinstance(old, _Handler)]
    if len(ours) < len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs, told apart from anyone else's."""
