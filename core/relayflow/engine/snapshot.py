"""Execution state to JSON and back, as the store keeps it (pydantic-core does the work)."""

from __future__ import annotations

from pydantic import TypeAdapter

from relayflow.engine.model import ExecutionState

__all__ = ["dump_state", "load_state"]

_STATE = TypeAdapter(ExecutionState)


def dump_state(state: ExecutionState) -> str:
    """The state as compact JSON text."""
    return _STATE.dump_json(state).decode()


def load_state(text: str | bytes) -> ExecutionState:
    """The state that `dump_state` wrote."""
    return _STATE.validate_json(text)
