"""What the engine asks of its plugins: the few calls it makes, as a typed interface.

The engine depends on this `Protocol`, not on `relayflow.plugins.PluginManager`, which
satisfies it structurally; a test passes any object with these four members (a recorder, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from relayflow.engine.integration import TaskOutcome, TaskRequest
from relayflow.store import HistoryEvent

__all__ = ["EngineHooks"]


class EngineHooks(Protocol):
    """The plugin calls the engine makes while it runs executions."""

    @property
    def observes_lifecycle(self) -> bool:
        """Whether any plugin wants lifecycle events (else the engine does not collect them)."""

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        """The task request as the plugins changed it, before its integration gets it."""

    def task_outcome(self, request: TaskRequest, outcome: TaskOutcome) -> None:
        """Tell the plugins how a task request went, before the outcome is recorded."""

    def notify(self, flow_name: str, execution_name: str, events: Iterable[HistoryEvent]) -> None:
        """Hand committed history events of one execution to the lifecycle hooks."""
