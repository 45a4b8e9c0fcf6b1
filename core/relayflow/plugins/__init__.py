"""Plugins: hooks (pluggy), plugin loading, and the typed callbacks hooks receive.

Write a plugin with `hookimpl` and the hooks in `relayflow.plugins.hookspecs`; see
docs/plugins.md.
"""

from __future__ import annotations

from relayflow.plugins.events import (
    ApiRequestEvent,
    CommitEvent,
    CommittedHistory,
    ExecutionEvent,
    LifecycleEvent,
    StepEvent,
    TaskEvent,
)
from relayflow.plugins.hookspecs import (
    ConfigModelRegister,
    IntegrationRegister,
    RouteRegister,
    hookimpl,
)
from relayflow.plugins.manager import IntegrationSpec, PluginInfo, PluginManager

__all__ = [
    "ApiRequestEvent",
    "CommitEvent",
    "CommittedHistory",
    "ConfigModelRegister",
    "ExecutionEvent",
    "IntegrationRegister",
    "IntegrationSpec",
    "LifecycleEvent",
    "PluginInfo",
    "PluginManager",
    "RouteRegister",
    "StepEvent",
    "TaskEvent",
    "hookimpl",
]
