"""A PostgreSQL store's URL: its parts, its environment variables, libpq's options.

`parse_url` turns `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?options` into psycopg's
connection parameters and the URL as it may be shown, with the password left out. It lives
apart from the store because it is where the password is taken out of the URL: what leaves
it names the store as `postgresql://USER@HOST:PORT/DATABASE`, and a malformed URL is refused
without quoting any part that could hold the password (the store's errors mask it too).
"""

from __future__ import annotations

import os
import re
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from relayflow.store.base import StoreError

__all__ = ["LIBPQ_OPTIONS", "PINNED", "SESSION", "parse_url"]

#: Settings of every session: see `relayflow.store.postgres`'s docstring.
SESSION: Final = (
    "-c idle_in_transaction_session_timeout=5s -c lock_timeout=2s -c statement_timeout=30s"
)
#: Settings that the writer's literals rely on (`relayflow.store.postgres_sql.literal`): set
#: after the user's `options`, and checked on every new connection.
PINNED: Final = {"standard_conforming_strings": "on", "client_encoding": "UTF8"}
#: The query options passed on to libpq; anything else is refused as a likely typo.
LIBPQ_OPTIONS: Final = frozenset(
    {
        "application_name",
        "channel_binding",
        "connect_timeout",
        "gssencmode",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "options",
        "passfile",
        "require_auth",
        "service",
        "sslcert",
        "sslcompression",
        "sslcrl",
        "sslkey",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(url: str) -> str:
    """Replace each `${NAME}` with the environment's value, URL-quoted."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match[1])
        if found is None:
            raise StoreError(
                f"the store URL reads the environment variable {match[1]}, which is not set"
            )
        return quote(found, safe="")

    return _VARIABLE.sub(value, url)


def parse_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """``(shown URL, password, connection parameters)`` of a store URL.

    Raises:
        StoreError: the URL is malformed or has an unknown option.
    """
    expanded = _expand(url)
    scheme = expanded.split("://", 1)[0]
    try:
        parts = urlsplit(expanded)
        port = parts.port
        # An unquoted @, / , ? or # in a password splits the URL elsewhere: refuse it rather
        # than show a piece of the password as a host or a database.
        if parts.fragment or "@" in parts.path or "@" in parts.query:
            raise ValueError("unquoted character")
    except ValueError:
        raise StoreError(
            f"the store URL {scheme}://... is malformed; write "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, with @ / ? # : in the password "
            "URL-quoted (%40 %2F %3F %23 %3A)"
        ) from None
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    host = parts.hostname or ""
    database = unquote(parts.path.lstrip("/"))
    shown = f"postgresql://{user + '@' if user else ''}{host}{f':{port}' if port else ''}"
    shown += f"/{database}"
    params: dict[str, Any] = {
        "application_name": "relayflow",
        "connect_timeout": 10,
        # A database that vanished without closing the connection is noticed in about 25 s.
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    if host:
        params["host"] = host
    if port:
        params["port"] = port
    if user:
        params["user"] = user
    if password:
        params["password"] = password
    if database:
        params["dbname"] = database
    options = SESSION
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in LIBPQ_OPTIONS:
            named = repr(key) if re.fullmatch(r"[A-Za-z_]{1,40}", key) else "an option"
            raise StoreError(
                f"unknown option {named} in the store URL {shown}; the PostgreSQL store "
                "passes libpq's options such as sslmode, sslrootcert, connect_timeout, options"
            )
        if key == "options":
            options = f"{options} {value}"  # the user's settings come later and win
        else:
            params[key] = value
    # ... except these, which come last.
    params["options"] = options + "".join(f" -c {k}={v}" for k, v in PINNED.items())
    params["client_encoding"] = PINNED["client_encoding"]
    return shown, password, params
