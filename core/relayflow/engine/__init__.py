"""The durable engine: a pure interpreter, the runtime around it, and the public operations."""

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
from relayflow.engine.model import Limits
from relayflow.engine.records import ExecutionInfo, FlowInfo, HistoryPage, Page

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
    "TaskOutcome",
    "TaskRequest",
]
