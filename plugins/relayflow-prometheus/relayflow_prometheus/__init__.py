"""relayflow-prometheus: Prometheus metrics of the engine, the API and the workers.

Installed, the plugin owns the `[prometheus]` table of `relayflow.toml` and does nothing else
until that table says ``enabled = true``: then, as the configuration is read, it registers a
`ServerMetrics` object as a second plugin, whose hooks count executions, time steps and task
attempts, and whose route serves the metrics from `relayflow server` (``GET /metrics``).
The worker side, `relayflow worker --metrics-port`, is `relayflow_prometheus.worker`.

Importing this package is light (a worker imports it on the way to `.worker`): the settings
model and the server's metrics are imported when the engine side first asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The same marker as `relayflow.plugins.hookimpl`, from the module a worker loads anyway.
from relayflow.worker.hooks import hookimpl
from relayflow_prometheus.constants import OTHER

if TYPE_CHECKING:
    from relayflow.config import Config
    from relayflow.plugins import ConfigModelRegister, PluginManager
    from relayflow_prometheus.metrics import ServerMetrics
    from relayflow_prometheus.settings import PrometheusSettings

__all__ = [
    "METRICS_PLUGIN",
    "OTHER",
    "TABLE",
    "PrometheusSettings",
    "ServerMetrics",
    "relayflow_configure",
    "relayflow_register_config_models",
]

#: The table of `relayflow.toml` the plugin reads.
TABLE = "prometheus"
#: The name the metrics object is registered under.
METRICS_PLUGIN = "prometheus.metrics"

_LAZY = {
    "PrometheusSettings": "relayflow_prometheus.settings",
    "ServerMetrics": "relayflow_prometheus.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'relayflow_prometheus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


@hookimpl
def relayflow_register_config_models(register: ConfigModelRegister) -> None:
    """Own the `[prometheus]` table."""
    from relayflow_prometheus.settings import PrometheusSettings

    register(TABLE, PrometheusSettings)


@hookimpl
def relayflow_configure(config: Config, plugins: PluginManager) -> None:
    """Register the metrics' hooks and route when `[prometheus] enabled = true`, else nothing."""
    from relayflow_prometheus.metrics import ServerMetrics
    from relayflow_prometheus.settings import PrometheusSettings

    settings = plugins.settings(config, TABLE)
    if not isinstance(settings, PrometheusSettings) or not settings.enabled:
        return
    if METRICS_PLUGIN in plugins.infos:  # configured twice: keep the first registry
        return
    plugins.register(ServerMetrics(settings), METRICS_PLUGIN)
