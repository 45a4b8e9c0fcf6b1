"""Masking secrets in text: URL passwords, `password=...` parameters, quoted secret values.

A leaf module: the configuration, the command line and the worker mask what they print with it,
and a worker must not load the configuration's models (pydantic-settings) to print one line.
"""

from __future__ import annotations

import re

__all__ = ["REFERENCE", "SECRET_WORDS", "mask_text"]

# A key naming one of these holds a secret: its value is never printed, whatever its shape.
SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "private",
    "auth",
    "apikey",
    "api_key",
    "cookie",
)
_WORDS = "|".join(SECRET_WORDS)
# `scheme://user:password@host`: the password runs to the word's last `@` (it may hold an
# unescaped `@` or `/`, as SQLAlchemy allows).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)([^\s'\"]*)@")
# `password=...` in a query string or in a libpq-style `key=value` list.
_SECRET_PARAM = re.compile(
    rf"((?:^|[?&;,\s])[\w.\-]*(?:{_WORDS})[\w.\-]*=)([^&;,\s#'\"]*)", re.IGNORECASE
)
# `'secret': '...'` or `"password": "..."` in a repr or in JSON text.
_SECRET_QUOTED = re.compile(
    rf"""((['"])[^'"\s]*(?:{_WORDS})[^'"\s]*\2\s*[:=]\s*)(['"])((?:\\.|(?!\3).)*)\3""",
    re.IGNORECASE,
)
# `${NAME}` names an environment variable that holds the secret; the name is no secret.
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def mask_text(text: str) -> str:
    """``text`` with the passwords of URLs and the values of secret parameters replaced by `***`.

    Masks `scheme://user:password@`, `password=...` (and `token=`, `secret=`, ... in query
    strings and `key=value` lists), and `'secret': '...'` in reprs and JSON. A `${NAME}`
    reference to an environment variable stays.
    """

    def url(match: re.Match[str]) -> str:
        if REFERENCE.fullmatch(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}***@"

    def param(match: re.Match[str]) -> str:
        if not match.group(2) or REFERENCE.fullmatch(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}***"

    text = _URL_PASSWORD.sub(url, text)
    text = _SECRET_PARAM.sub(param, text)
    return _SECRET_QUOTED.sub(lambda m: f"{m.group(1)}{m.group(3)}***{m.group(3)}", text)
