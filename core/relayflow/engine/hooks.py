"""What the engine asks of its plugins: the few calls it makes, as a typed interface.

The engine depends on this `Protocol`, not on `relayflow.plugins.PluginManager`, which
satisfies it structurally; a test passes any object with these members (a recorder, say).
The engine imports nothing of `relayflow.plugins`: what it hands over about its own work is
a `WriterCommit` of this module, which the plugin manager passes on to plugins as a
`relayflow.plugins.events.CommitEvent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from relayflow.engine.integration import TaskOutcome, TaskRequest
from relayflow.store import HistoryEvent, Store

if TYPE_CHECKING:
    from relayflow.engine.engine import Engine

__all__ = ["EngineHooks", "WriterCommit", "store_kind"]


@dataclass(frozen=True, slots=True)
class WriterCommit:
    """One committed transaction of the engine's writer, for `EngineHooks.batch_committed`.

    Attributes:
        jobs: how many jobs the transaction ran.
        seconds: from its start to its COMMIT answered, timed on the writer thread.
        store: the store's kind (see `store_kind`).
    """

    jobs: int
    seconds: float
    store: str


def store_kind(store: Store) -> str:
    """A short, bounded name for the kind of ``store``: `sqlite`, `memory`, `postgresql`...

    A driver may say it with a `kind` attribute; otherwise it comes from the class's name.
    """
    kind = getattr(store, "kind", None)
    if isinstance(kind, str) and kind:
        return kind[:40]
    if getattr(store, "memory", False) is True:
        return "memory"
    name = type(store).__name__.lower().removesuffix("store")
    return "postgresql" if name == "postgres" else (name[:40] or "other")


class EngineHooks(Protocol):
    """The plugin calls the engine makes while it runs executions."""

    @property
    def observes_lifecycle(self) -> bool:
        """Whether any plugin wants lifecycle events (else the engine does not collect them)."""

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        """The task request as the plugins changed it, before its integration gets it."""

    def task_outcome(self, request: TaskRequest, outcome: TaskOutcome) -> None:
        """Tell the plugins how a task request went, before the outcome is recorded."""

    def notify(self, committed: Sequence[tuple[str, str, Sequence[HistoryEvent]]]) -> None:
        """Hand what one transaction committed to the lifecycle hooks.

        ``committed`` holds ``(flow_name, execution_name, events)`` an execution, in commit order.
        """

    @property
    def observes_work(self) -> bool:
        """Whether any plugin wants the work hooks below (else the engine does not time it)."""

    def engine_started(self, engine: Engine) -> None:
        """The engine has started."""

    def engine_stopping(self, engine: Engine) -> None:
        """The engine is about to stop."""

    def batch_committed(self, batch: WriterCommit) -> None:
        """The writer committed one transaction."""

    def outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        """A task request left the outbox (None: taken over from the store)."""

    def timers_fired(self, count: int, lag_seconds: float) -> None:
        """Timers fired, the earliest ``lag_seconds`` late."""
