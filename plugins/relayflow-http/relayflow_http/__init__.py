"""relayflow-http: call HTTP APIs from task steps, over httpx.

A task step with `action: http:Request` sends the request its serviceParams describe::

    - type: task
      name: getOrder
      action: http:Request
      serviceParams:
        Url: https://api.example.com/orders
        Query:
          id: $.orderId

and its local is `{"StatusCode", "Headers", "Body"}`. An answer that is not 2xx fails the task
with `HTTP.<status>`. Configured by `[integrations.http]` in `relayflow.toml`; see the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relayflow.plugins import hookimpl
from relayflow_http.errors import (
    ERROR_CONNECTION,
    ERROR_HOST_NOT_ALLOWED,
    ERROR_INVALID_PARAMETER,
    ERROR_RESPONSE_TOO_DEEP,
    ERROR_RESPONSE_TOO_LARGE,
    ERROR_SECRET_MISSING,
    ERROR_TIMEOUT,
    status_error,
)
from relayflow_http.integration import ACTION, HEADER_TOKEN, HttpIntegration
from relayflow_http.settings import HttpSettings

__all__ = [
    "ACTION",
    "ERROR_CONNECTION",
    "ERROR_HOST_NOT_ALLOWED",
    "ERROR_INVALID_PARAMETER",
    "ERROR_RESPONSE_TOO_DEEP",
    "ERROR_RESPONSE_TOO_LARGE",
    "ERROR_SECRET_MISSING",
    "ERROR_TIMEOUT",
    "HEADER_TOKEN",
    "HttpIntegration",
    "HttpSettings",
    "make_integration",
    "relayflow_register_integrations",
    "status_error",
]


def make_integration(settings: HttpSettings | None) -> HttpIntegration:
    """Build the integration from its validated `[integrations.http]` table (None: empty)."""
    return HttpIntegration(settings)


@hookimpl
def relayflow_register_integrations(register: Callable[..., Any]) -> None:
    """Register the `http` integration, configured by `[integrations.http]`."""
    register("http", make_integration, HttpSettings)
