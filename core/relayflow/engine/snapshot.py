"""Execution state to JSON and back, as the store keeps it (pydantic-core does the work).

pydantic-core stops at about 200 levels of nesting; a state that deep (which the engine's
depth limits should never let happen) goes through the standard library's codec instead.
"""

from __future__ import annotations

import dataclasses
import json
import re

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from relayflow.engine.model import ExecutionState

__all__ = ["dump_state", "load_state", "redrives_in"]

_STATE = TypeAdapter(ExecutionState)
_REDRIVES = re.compile(rb'\{\s*"redrives"\s*:\s*(\d{1,9})\s*[,}]')


def dump_state(state: ExecutionState) -> str:
    """The state as compact JSON text."""
    try:
        return _STATE.dump_json(state).decode()
    except PydanticSerializationError:
        return json.dumps(dataclasses.asdict(state), separators=(",", ":"), default=str)


def load_state(text: str | bytes) -> ExecutionState:
    """The state that `dump_state` wrote.

    Raises:
        ValueError: the text is not a state (pydantic's ValidationError is a ValueError).
    """
    try:
        return _STATE.validate_json(text)
    except ValueError as exc:
        if "recursion limit" not in str(exc):
            raise
        return _STATE.validate_python(json.loads(text))


def redrives_in(text: str | bytes) -> int:
    """How many times the state's execution was redriven, read from the text's start only.

    `ExecutionState.redrives` is its first field, so a listing need not decode whole states;
    a state written before the field was (never redriven) counts 0.
    """
    head = text[:40].encode() if isinstance(text, str) else text[:40]
    match = _REDRIVES.match(head)
    return int(match.group(1)) if match else 0
