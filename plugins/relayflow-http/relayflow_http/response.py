"""Reading an answer within a size limit, and describing it: the step's local, or a cause."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

import httpx

__all__ = [
    "SNIPPET_CHARS",
    "TooDeep",
    "describe_url",
    "local",
    "nests_deeper",
    "read_body",
    "read_prefix",
    "snippet",
]

#: How much of an error answer's body a cause quotes.
SNIPPET_CHARS: Final = 200

# A JSON string, escapes included; unrolled so that matching is linear.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeep(Exception):
    """A JSON answer nests deeper than the limit `local` was given."""


def describe_url(url: httpx.URL) -> str:
    """The URL for causes and logs: no user info, query or fragment, which may hold secrets."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


async def read_prefix(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of the (decoded) body; say whether more was left.

    Stops reading as soon as the limit is passed, so an endless or huge answer costs no more
    than ``limit`` bytes of memory; the caller closes the response, which drops the connection.
    """
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


async def read_body(response: httpx.Response, limit: int) -> bytes | None:
    """The whole (decoded) body, or None when it is larger than ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    # Compressed, the declared length says little about the decoded size: read and count.
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        return None
    body, truncated = await read_prefix(response, limit)
    return None if truncated else body


def local(response: httpx.Response, body: bytes, max_depth: int) -> dict[str, Any]:
    """The step's local: `{"StatusCode", "Headers", "Body"}`, the body parsed if it is JSON.

    Raises:
        TooDeep: the local would nest more than ``max_depth`` levels (its Body one less).
    """
    return {
        "StatusCode": response.status_code,
        # Lowercase names; a repeated header comes once, its values joined by ", ".
        "Headers": dict(response.headers.items()),
        "Body": _parsed(response, body, max_depth - 1),
    }


def nests_deeper(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests objects and arrays more than ``limit`` levels deep.

    Counted on the text, before parsing, so a hostile answer never reaches the recursive parser:
    strings are dropped (brackets inside them do not count), then the brackets are summed.
    `[]` is at depth 1, a scalar at 0, as the engine counts.
    """
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(skeleton) <= limit:
        return False
    return max(accumulate(map(_STEP.__getitem__, skeleton))) > limit


def _parsed(response: httpx.Response, body: bytes, max_depth: int) -> Any:
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and (media == "application/json" or media.endswith("+json")):
        try:
            # What json.loads does with bytes (UTF-8, -16 or -32), so the depth is counted on
            # the very text that is parsed.
            text = body.decode(json.detect_encoding(body), "surrogatepass")
        except UnicodeDecodeError:
            return _text(response, body)
        if nests_deeper(text, max_depth):
            raise TooDeep
        try:
            return json.loads(text, parse_constant=_not_json)
        except RecursionError:  # near max_json_depth's upper bound the parser gives up first
            raise TooDeep from None
        except ValueError:
            pass  # labelled JSON but is not: the text says more than an error would
    return _text(response, body)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def snippet(response: httpx.Response, body: bytes, truncated: bool) -> str:
    """The start of an answer's body on one line, for a cause."""
    text = " ".join(_text(response, body).split())
    if len(text) > SNIPPET_CHARS or (truncated and text):
        return text[:SNIPPET_CHARS].rstrip() + "..."
    return text
