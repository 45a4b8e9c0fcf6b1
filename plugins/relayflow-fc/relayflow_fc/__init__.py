"""relayflow-fc: Function Compute style Python handlers as a relayflow integration.

Task steps whose resourceArn names a Function Compute function
(`acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/{function}`, or
funcraft's `!Ref service/function`) run a local Python callable mapped in `relayflow.toml`::

    [integrations.fc.functions]
    "trip/bookTrain" = "trip_functions:book_train"

The handler keeps Function Compute's signature, `handler(event, context)`. See the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relayflow.plugins import hookimpl
from relayflow_fc.context import Credentials, FcContext, FunctionMeta, Reporter, ServiceMeta
from relayflow_fc.integration import FcIntegration
from relayflow_fc.runner import HandlerImportError, resolve_handler
from relayflow_fc.settings import FcSettings
from relayflow_fc.tracing import Tracing

__all__ = [
    "CLAIMS",
    "Credentials",
    "FcContext",
    "FcIntegration",
    "FcSettings",
    "FunctionMeta",
    "HandlerImportError",
    "Reporter",
    "ServiceMeta",
    "Tracing",
    "make_integration",
    "relayflow_register_integrations",
    "resolve_handler",
]

#: The resourceArn service and kind this plugin serves.
CLAIMS = (("fc", "function"),)


def make_integration(settings: FcSettings | None) -> FcIntegration:
    """Build the integration from its validated `[integrations.fc]` table (None: empty)."""
    return FcIntegration(settings)


@hookimpl
def relayflow_register_integrations(register: Callable[..., Any]) -> None:
    """Register the `fc` integration, configured by `[integrations.fc]`."""
    register("fc", make_integration, FcSettings)
