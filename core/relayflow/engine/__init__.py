"""The durable engine: a pure interpreter, the runtime around it, and the public operations.

The store, the configuration and the plugins do not import the engine (their records, limits
and error names are leaf modules), so this package loads its parts directly.
"""

from __future__ import annotations

from relayflow.engine.engine import Engine
from relayflow.engine.integration import (
    Failed,
    FunctionIntegration,
    Integration,
    Submitted,
    Succeeded,
    TaskOutcome,
    TaskRequest,
)
from relayflow.engine.interpreter import Interpreter
from relayflow.engine.records import ExecutionInfo, FlowInfo, HistoryPage, Page
from relayflow.engine.sync import SyncEngine
from relayflow.limits import Limits

__all__ = [
    "Engine",
    "ExecutionInfo",
    "Failed",
    "FlowInfo",
    "FunctionIntegration",
    "HistoryPage",
    "Integration",
    "Interpreter",
    "Limits",
    "Page",
    "Submitted",
    "Succeeded",
    "SyncEngine",
    "TaskOutcome",
    "TaskRequest",
]
