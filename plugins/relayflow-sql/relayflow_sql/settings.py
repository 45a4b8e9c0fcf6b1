"""The `[integrations.sql]` table of `relayflow.toml`, and how a database URL finds its password.

```toml
[integrations.sql]
max_rows = 10000                  # optional
statement_timeout_seconds = 30    # optional
pool_size = 5                     # optional

[integrations.sql.databases]
orders = "postgresql+psycopg://app:${ORDERS_DB_PASSWORD}@127.0.0.1/orders"
local = "sqlite:///data/app.db"
```

Every value is a SQLAlchemy URL, checked when the configuration is loaded: it must parse, name
an installed dialect, and use a synchronous driver. The password may be written `${NAME}`: the
environment variable NAME, read when the integration first connects to that database. A URL's
literal password never shows in a configuration error nor in `relayflow config show`.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

__all__ = ["DEFAULT_MAX_ROWS", "EnvironmentMissing", "SqlSettings", "mask_url", "resolve_url"]

DEFAULT_MAX_ROWS = 10_000
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# For text that does not parse as a URL: hide whatever sits between `user:` and the last `@`.
_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:).*@")
_EXAMPLES = '"postgresql+psycopg://app@127.0.0.1/orders" or "sqlite:///data/app.db"'


class EnvironmentMissing(LookupError):
    """A URL's `${NAME}` password names an environment variable that is not set."""

    def __init__(self, variable: str) -> None:
        super().__init__(variable)
        self.variable = variable


class _Rejected(str):
    """A URL found wrong before validation: its text is the masked URL, `reason` the problem.

    pydantic reports the input of a failed field, and relayflow's configuration errors print
    it (`got '...'`); screening the table first makes that input the masked URL.
    """

    reason: str = ""


def _env_reference(url: URL) -> str | None:
    """The environment variable a URL's password names, or None for a literal password."""
    match = _ENV_REF.fullmatch(url.password or "")
    return match.group(1) if match else None


def mask_url(text: str) -> str:
    """The URL with a literal password replaced by `***` (a `${NAME}` reference stays)."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        masked = _USERINFO_PASSWORD.sub(r"\1***@", text, count=1)
        if masked == text and "@" in text:
            masked = "***@" + text.rsplit("@", 1)[1]  # no `scheme://`: keep only the host part
        return masked
    if url.password is None or _env_reference(url) is not None:
        return text
    return url.render_as_string(hide_password=True)


def _problem(text: str) -> str | None:
    """What is wrong with a database URL, or None."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        return f"not a SQLAlchemy database URL, like {_EXAMPLES}"
    if "${" in text and (_env_reference(url) is None or text.count("${") != 1):
        return "only the password may name an environment variable, written ${NAME}"
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        return f"no installed SQLAlchemy dialect serves {url.drivername!r}"
    if getattr(dialect, "is_async", False):
        return (
            f"{url.drivername!r} is an asyncio driver; relayflow-sql runs synchronous ones, "
            f"such as postgresql+psycopg"
        )
    return None


def _raise_rejected(value: Any) -> Any:
    if isinstance(value, _Rejected):
        raise PydanticCustomError("sql_database_url", value.reason)
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise PydanticCustomError(
            "sql_database_name", "a database name is letters, digits, '_', '.' and '-'"
        )
    return value


DatabaseName = Annotated[str, BeforeValidator(_check_name)]
DatabaseUrl = Annotated[str, BeforeValidator(_raise_rejected)]


class SqlSettings(BaseModel):
    """Settings of the `sql` integration (the `[integrations.sql]` table).

    Attributes:
        databases: SQLAlchemy URLs by the name a task's `Database` serviceParam gives.
        pool_size: connections each database's pool keeps open (SQLAlchemy's default, 5, when
            None); up to 10 more are opened under load.
        statement_timeout_seconds: PostgreSQL cancels a statement running longer
            (`SET LOCAL statement_timeout` in each task's transaction); SQLite waits that long
            for a locked database. Other databases ignore it.
        max_rows: the most rows a statement may return; more fail the task with
            `SQL.TooManyRows`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    databases: dict[DatabaseName, DatabaseUrl] = Field(default_factory=dict)
    pool_size: int | None = Field(default=None, ge=1, le=1000)
    statement_timeout_seconds: float | None = Field(default=None, gt=0)
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, ge=1)

    @field_validator("databases", mode="before")
    @classmethod
    def _screen(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        screened: dict[Any, Any] = {}
        for name, text in value.items():
            problem = _problem(text) if isinstance(text, str) else None
            if problem is None:
                screened[name] = text
            else:
                rejected = _Rejected(mask_url(text))
                rejected.reason = problem
                screened[name] = rejected
        return screened

    @field_serializer("databases")
    def _masked(self, databases: dict[str, str]) -> dict[str, str]:
        # `relayflow config show` dumps the model; its redaction goes by key names only.
        return {name: mask_url(text) for name, text in databases.items()}


def resolve_url(text: str, environ: dict[str, str] | None = None) -> URL:
    """The URL to connect with: a `${NAME}` password replaced by that environment variable.

    Raises:
        EnvironmentMissing: the variable is not set.
    """
    url = make_url(text)
    variable = _env_reference(url)
    if variable is None:
        return url
    env = os.environ if environ is None else environ
    if variable not in env:
        raise EnvironmentMissing(variable)
    # Set on the parsed URL, not pasted into the text: no escaping of '@', '/' or ':' needed.
    return url.set(password=env[variable])
