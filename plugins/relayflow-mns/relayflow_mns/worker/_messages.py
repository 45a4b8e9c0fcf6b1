"""What a task message says: the headers the integration sets, and `decode_message`."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXECUTION_HEADER",
    "FLOW_HEADER",
    "MESSAGE_ID_HEADER",
    "STEP_HEADER",
    "TOKEN_HEADER",
    "TaskMessage",
    "decode_message",
]

#: The header that carries the task token of a waitForCallback task.
TOKEN_HEADER = "x-relayflow-task-token"
#: Headers that say where a message comes from; they only feed the log line.
FLOW_HEADER = "x-relayflow-flow"
EXECUTION_HEADER = "x-relayflow-execution"
STEP_HEADER = "x-relayflow-step"
MESSAGE_ID_HEADER = "x-relayflow-message-id"


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """A received message as the worker understands it.

    Attributes:
        body: the decoded body: JSON values, else text (bytes when it is not text at all).
        token: the task token, from the header or the body; None when there is none.
        flow: the flow's name from the headers; "" when absent. So are the next three.
        execution: the execution's name.
        step: the step's name.
        message_id: the id the integration gave the message.
        headers: every header of the message.
    """

    body: Any
    token: str | None
    flow: str = ""
    execution: str = ""
    step: str = ""
    message_id: str = ""
    headers: dict[str, Any] = field(default_factory=dict)


def _header_text(headers: dict[str, Any], name: str) -> str:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def decode_message(message: Any) -> TaskMessage:
    """Decode a kombu message into a `TaskMessage`; never raises.

    The body is decompressed (kombu's `compression` header) and decoded as text. JSON is
    parsed when the content type says JSON, and otherwise only when the text is a JSON object
    or array, so that a plain-text body such as ``42`` stays the text ``"42"``.
    """
    headers = dict(message.headers or {})
    raw: Any = message.body
    if headers.get("compression"):
        from kombu import compression

        with contextlib.suppress(Exception):  # a body that does not decompress stays as it is
            raw = compression.decompress(raw, headers["compression"])  # type: ignore[no-untyped-call]
    body: Any
    if isinstance(raw, bytes | bytearray | memoryview):
        encoding = message.content_encoding or "utf-8"
        try:
            body = bytes(raw).decode("utf-8" if encoding == "binary" else encoding)
        except (UnicodeDecodeError, LookupError):
            body = bytes(raw)
    else:
        body = raw
    if isinstance(body, str):
        content_type = (message.content_type or "").split(";")[0].strip().lower()
        is_json = content_type == "application/json" or content_type.endswith("+json")
        try:
            value = json.loads(body)
        except ValueError:
            pass
        else:
            if is_json or isinstance(value, dict | list):
                body = value
    token = _header_text(headers, TOKEN_HEADER)
    if not token and isinstance(body, dict) and isinstance(body.get("taskToken"), str):
        token = body["taskToken"]
    return TaskMessage(
        body=body,
        token=token or None,
        flow=_header_text(headers, FLOW_HEADER),
        execution=_header_text(headers, EXECUTION_HEADER),
        step=_header_text(headers, STEP_HEADER),
        message_id=_header_text(headers, MESSAGE_ID_HEADER),
        headers=headers,
    )
