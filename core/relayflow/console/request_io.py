"""The console's request and answer plumbing: ASGI types, `Answer`, refusals, headers, bodies.

Both halves of `ConsoleApp` use these (the sign-in checks in `access.py` and the routes in
`app.py`), so they live below both and neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from relayflow import jsontext
from relayflow.errors import EngineError

__all__ = [
    "Answer",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "header_value",
    "json_answer",
    "not_signed_in",
    "read_json_body",
    "refusal_error",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Deeper than the deepest Input the engine may accept (engine.max_json_depth <= 150), plus
# the object around the parameters: refused before anything else looks at it.
_MAX_BODY_DEPTH = 151
_JSON = "application/json"


@dataclass
class Answer:
    """One response: status, body and headers (the security headers are added on sending)."""

    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    cache: bytes = b"no-store"


def json_answer(
    status: int, doc: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    """An answer whose body is ``doc`` as JSON."""
    return Answer(status, jsontext.dumps(doc).encode(), headers=headers or [])


def refusal_error(code: str, message: str, status: int) -> EngineError:
    """The error a refused request answers with: its code, one sentence, the HTTP status."""
    return EngineError(code, message, status)


def not_signed_in() -> EngineError:
    """The refusal of a request that needs a session and has none."""
    return refusal_error(
        "NotSignedIn", "sign in first: there is no console session, or it has ended", 401
    )


def header_value(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lower case), or None; several are joined as HTTP says."""
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ", ".join(values) if values else None


async def read_json_body(
    scope: Scope, receive: Receive, limit: int, *, max_body_bytes: int
) -> dict[str, Any]:
    """The request's body, a JSON object of at most ``limit`` bytes ({} when empty).

    Args:
        scope: the request's ASGI scope.
        receive: its ASGI receive channel.
        limit: the most bytes the body may have.
        max_body_bytes: the server's `server.max_body_bytes`, named in the refusal when it is
            the ``limit`` exceeded.

    Returns:
        The body's JSON object.

    Raises:
        EngineError: the body is cut short, too large, not JSON, not an object or too deep.
    """
    content_type = (header_value(scope, b"content-type") or "").partition(";")[0].strip().lower()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise refusal_error("IncompleteBody", "the connection closed within the body", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise refusal_error(
                "EntityTooLarge",
                f"the request body is larger than {limit} bytes"
                + (" (server.max_body_bytes)" if limit == max_body_bytes else ""),
                413,
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    if not body:
        return {}
    if content_type != _JSON:
        raise refusal_error(
            "UnsupportedMediaType",
            f"a console request body must be {_JSON}, got {content_type[:100] or 'none'}",
            415,
        )
    try:
        doc = jsontext.loads_input(body)
    except ValueError as exc:
        raise refusal_error(
            "InvalidJSON", f"the request body is not JSON: {str(exc)[:200]}", 400
        ) from None
    if not isinstance(doc, dict):
        raise refusal_error("InvalidJSON", "the request body must be a JSON object", 400)
    if jsontext.too_deep(doc, _MAX_BODY_DEPTH):
        raise refusal_error(
            "InvalidJSON",
            f"the request body nests deeper than {_MAX_BODY_DEPTH} levels",
            400,
        )
    return doc
