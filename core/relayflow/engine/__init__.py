"""The durable engine: a pure interpreter, the runtime around it, and the public operations.

Names are imported on first use, so that the store drivers can use `relayflow.engine.model`
without loading the whole engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayflow.engine.engine import Engine as Engine
    from relayflow.engine.integration import Failed as Failed
    from relayflow.engine.integration import FunctionIntegration as FunctionIntegration
    from relayflow.engine.integration import Integration as Integration
    from relayflow.engine.integration import Submitted as Submitted
    from relayflow.engine.integration import Succeeded as Succeeded
    from relayflow.engine.integration import TaskOutcome as TaskOutcome
    from relayflow.engine.integration import TaskRequest as TaskRequest
    from relayflow.engine.interpreter import Interpreter as Interpreter
    from relayflow.engine.model import Limits as Limits
    from relayflow.engine.records import ExecutionInfo as ExecutionInfo
    from relayflow.engine.records import FlowInfo as FlowInfo
    from relayflow.engine.records import HistoryPage as HistoryPage
    from relayflow.engine.records import Page as Page
    from relayflow.engine.sync import SyncEngine as SyncEngine

_WHERE = {
    "Engine": "engine",
    "ExecutionInfo": "records",
    "Failed": "integration",
    "FlowInfo": "records",
    "FunctionIntegration": "integration",
    "HistoryPage": "records",
    "Integration": "integration",
    "Interpreter": "interpreter",
    "Limits": "model",
    "Page": "records",
    "Submitted": "integration",
    "Succeeded": "integration",
    "SyncEngine": "sync",
    "TaskOutcome": "integration",
    "TaskRequest": "integration",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'relayflow.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"relayflow.engine.{module}"), name)
