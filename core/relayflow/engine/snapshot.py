"""Execution state to JSON and back, as the store keeps it."""

from __future__ import annotations

from typing import Any

from relayflow import jsontext
from relayflow.engine.model import ExecutionState, Scope, StepRun

__all__ = ["dump_state", "load_state"]

_RUN_FIELDS = StepRun.__slots__
_SCOPE_FIELDS = ("id", "parent", "slot", "key", "input", "local", "pc")


def _run_to_json(run: StepRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in _RUN_FIELDS}


def dump_state(state: ExecutionState) -> str:
    """The state as compact JSON text."""
    scopes = []
    for scope in state.scopes.values():
        item: dict[str, Any] = {name: getattr(scope, name) for name in _SCOPE_FIELDS}
        item["run"] = _run_to_json(scope.run) if scope.run is not None else None
        scopes.append(item)
    doc = {
        "status": state.status,
        "input": state.input,
        "output": state.output,
        "error": state.error,
        "cause": state.cause,
        "scopes": scopes,
        "next_scope": state.next_scope,
        "next_event": state.next_event,
        "timers": [[k, *v] for k, v in state.timers.items()],
        "tasks": [[k, v] for k, v in state.tasks.items()],
        "flow_timer": state.flow_timer,
        "ready": state.ready,
    }
    return jsontext.dumps(doc)


def load_state(text: str) -> ExecutionState:
    """The state that `dump_state` wrote."""
    doc = jsontext.loads(text)
    scopes: dict[int, Scope] = {}
    for item in doc["scopes"]:
        run = item.pop("run")
        scope = Scope(**item)
        if run is not None:
            scope.run = StepRun(**run)
        scopes[scope.id] = scope
    return ExecutionState(
        status=doc["status"],
        input=doc["input"],
        output=doc["output"],
        error=doc["error"],
        cause=doc["cause"],
        scopes=scopes,
        next_scope=doc["next_scope"],
        next_event=doc["next_event"],
        timers={t[0]: [t[1], t[2]] for t in doc["timers"]},
        tasks={t[0]: t[1] for t in doc["tasks"]},
        flow_timer=doc["flow_timer"],
        ready=doc["ready"],
    )
