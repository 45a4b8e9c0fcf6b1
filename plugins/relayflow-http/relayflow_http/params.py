"""A step's evaluated serviceParams, checked and turned into the request to send.

The engine has already resolved every `$` and `$.key` when the integration sees them, so `Body:
$` arrives as the whole mapped input (a dict). A null value, which is what a `$.key` that is not
in the input gives, leaves a header, a query parameter or the body out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx

from relayflow_http.errors import ERROR_INVALID_PARAMETER, CallFailed

__all__ = [
    "METHODS",
    "RESERVED_HEADERS",
    "SERVICE_PARAMS",
    "Call",
    "header_problem",
    "parse_call",
    "reserved_reason",
]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SERVICE_PARAMS: Final = ("Method", "Url", "Headers", "Query", "Body", "TimeoutSeconds")

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII and tab: a line break would start a header of its own, and httpx encodes
# values as ASCII.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_Scalar = str | int | float | bool

_FRAMING = "httpx frames the request and manages the connection"
_PROXY = "a proxy and its credentials come from the environment (HTTP_PROXY, HTTPS_PROXY)"
#: Headers neither a flow, a plugin nor `header_env` may set (lowercase name: why not). The
#: URL's host chooses the secret headers, so `Host` must be the URL's; proxy headers belong to
#: the proxy configuration; framing and connection headers are httpx's to get right, since a
#: wrong one breaks a pooled connection that later requests, with their secrets, reuse.
RESERVED_HEADERS: Final[dict[str, str]] = {
    "host": "the host comes from Url, which also chooses the secret headers",
    "proxy-authorization": _PROXY,
    "proxy-connection": _PROXY,
    "content-length": _FRAMING,
    "transfer-encoding": _FRAMING,
    "connection": _FRAMING,
    "keep-alive": _FRAMING,
    "te": _FRAMING,
    "trailer": _FRAMING,
    "upgrade": _FRAMING,
}


@dataclass(frozen=True, slots=True)
class Call:
    """The request a task step asks for, before configuration and the engine add to it.

    Attributes:
        method: the HTTP method, upper case.
        url: the absolute http or https URL.
        headers: the step's `Headers`.
        query: the step's `Query`; its keys replace the same keys of the URL's query.
        content: the encoded body, or None for none.
        content_type: the body's media type when the step's headers set none.
        timeout: the step's `TimeoutSeconds`, or None.
    """

    method: str
    url: httpx.URL
    headers: dict[str, str]
    query: dict[str, _Scalar | list[_Scalar]]
    content: bytes | None
    content_type: str | None
    timeout: float | None


def _invalid(message: str) -> CallFailed:
    return CallFailed(ERROR_INVALID_PARAMETER, message)


def parse_call(params: dict[str, Any] | None) -> Call:
    """Check the step's serviceParams and build the request they describe.

    Raises:
        CallFailed: `HTTP.InvalidParameter`, with a sentence naming the serviceParam.
    """
    params = params or {}
    for name in params:
        if name not in SERVICE_PARAMS:
            raise _invalid(
                f"serviceParams.{name} is not a parameter of http:Request; "
                f"use {', '.join(SERVICE_PARAMS)}"
            )
    content, content_type = _body(params.get("Body"))
    return Call(
        method=_method(params.get("Method", "GET")),
        url=_url(params.get("Url")),
        headers=_headers(params.get("Headers")),
        query=_query(params.get("Query")),
        content=content,
        content_type=content_type,
        timeout=_timeout(params.get("TimeoutSeconds")),
    )


def reserved_reason(name: str) -> str | None:
    """Why no one but httpx may set header ``name`` (any case), or None when anyone may."""
    return RESERVED_HEADERS.get(name.lower())


def header_problem(name: str, value: str) -> str | None:
    """Why a header cannot be sent as it is (words to follow its name), or None."""
    if not _HEADER_NAME.fullmatch(name):
        return "is no header name"
    if not _HEADER_VALUE.fullmatch(value):
        return "holds a line break, a control character or a character that is not ASCII"
    return None


def _method(value: Any) -> str:
    method = value.upper() if isinstance(value, str) else value
    if method not in METHODS:
        raise _invalid(
            f"serviceParams.Method must be one of {', '.join(sorted(METHODS))}, got {value!r}"
        )
    return str(method)


def _url(value: Any) -> httpx.URL:
    if value is None:
        raise _invalid("serviceParams.Url is required: the http or https URL to call")
    if not isinstance(value, str):
        raise _invalid(f"serviceParams.Url must be a string, not {_kind(value)}")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise _invalid(f"serviceParams.Url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _invalid("serviceParams.Url must be an absolute http:// or https:// URL with a host")
    if url.userinfo:
        # httpx would send it as Basic credentials, replacing a configured Authorization.
        raise _invalid(
            "serviceParams.Url must not hold a user name or password (user:password@host); "
            "credentials belong in header_env of [integrations.http]"
        )
    return url


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"serviceParams.Headers must be an object of strings, not {_kind(value)}")
    headers: dict[str, str] = {}
    spelt: dict[str, str] = {}
    for name, item in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _invalid(f"serviceParams.Headers has a key {name!r} that is no header name")
        reason = reserved_reason(name)
        if reason is not None:
            raise _invalid(f"serviceParams.Headers.{name} cannot be set by a flow: {reason}")
        first = spelt.setdefault(name.lower(), name)
        if first != name:
            raise _invalid(
                f"serviceParams.Headers names one header twice, as {first} and {name} "
                "(header names ignore case)"
            )
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _invalid(f"serviceParams.Headers.{name} must be a string, not {_kind(item)}")
        text = str(item)
        problem = header_problem(name, text)
        if problem is not None:
            raise _invalid(f"serviceParams.Headers.{name} {problem}")
        headers[name] = text
    return headers


def _query(value: Any) -> dict[str, _Scalar | list[_Scalar]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"serviceParams.Query must be an object, not {_kind(value)}")
    query: dict[str, _Scalar | list[_Scalar]] = {}
    for name, item in value.items():
        if item is None:
            continue
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(i, _Scalar) for i in items):
            raise _invalid(
                f"serviceParams.Query.{name} must be a string, a number, a boolean "
                "or a list of them"
            )
        query[name] = item
    return query


def _body(value: Any) -> tuple[bytes | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    # The engine hands over JSON values only, so this cannot fail on a type.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8"), "application/json"


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise _invalid(
            f"serviceParams.TimeoutSeconds must be a number of seconds above 0, got {value!r}"
        )
    return float(value)


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
