"""relayflow-sql: SQL statements as task steps, through SQLAlchemy.

A task step `action: sql:Execute` runs its `Statement` against a database named in
`relayflow.toml`::

    [integrations.sql.databases]
    orders = "postgresql+psycopg://app:${ORDERS_DB_PASSWORD}@127.0.0.1/orders"

and its local is `{"Rows": [...], "RowCount": n}`. See the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relayflow.plugins import hookimpl
from relayflow_sql.integration import ACTION, MAX_THREADS, SqlIntegration
from relayflow_sql.settings import SqlSettings, mask_url, resolve_url
from relayflow_sql.values import json_safe

__all__ = [
    "ACTION",
    "MAX_THREADS",
    "SqlIntegration",
    "SqlSettings",
    "json_safe",
    "make_integration",
    "mask_url",
    "relayflow_register_integrations",
    "resolve_url",
]


def make_integration(settings: SqlSettings | None) -> SqlIntegration:
    """Build the integration from its validated `[integrations.sql]` table (None: empty)."""
    return SqlIntegration(settings)


@hookimpl
def relayflow_register_integrations(register: Callable[..., Any]) -> None:
    """Register the `sql` integration, configured by `[integrations.sql]`."""
    register("sql", make_integration, SqlSettings)
