"""Wait steps: a timer for a duration or until a timestamp, either constant or read from input."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from relayflow.dataflow import compile_source
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.interpreter._run import StepFault
from relayflow.engine.model import ERROR_RUNTIME, Scope
from relayflow.fdl import WaitStep
from relayflow.fdl.timestamps import parse_rfc3339

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["WAIT", "resolve"]


def begin(m: Machine, scope: Scope, step: WaitStep, token: str | None) -> None:
    """Start the wait's timer, or finish at once when the time has come already."""
    run = scope.run
    assert run is not None
    if step.duration is not None:
        seconds = resolve(step.duration, run.input)
        if isinstance(seconds, str):
            try:
                seconds = float(seconds)
            except ValueError:
                seconds = None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise StepFault(
                ERROR_RUNTIME,
                f"wait step '{step.name}': duration "
                f"{step.duration} gave {seconds!r}, not a number of seconds",
            )
        fire_at = m.now + float(seconds)
    else:
        stamp = resolve(step.timestamp, run.input)
        try:
            fire_at = parse_rfc3339(str(stamp)).astimezone(UTC).timestamp()
        except ValueError as exc:
            raise StepFault(ERROR_RUNTIME, f"wait step '{step.name}': {exc}") from None
    if fire_at - m.now > m.limits.max_wait_seconds:
        raise StepFault(
            ERROR_RUNTIME,
            f"wait step '{step.name}' would wait "
            f"{fire_at - m.now:.0f} seconds; the limit is "
            f"{m.limits.max_wait_seconds:.0f} (engine.max_wait_seconds)",
        )
    if fire_at <= m.now:
        m.finish_step(scope, {})
    else:
        run.since = m.now
        run.timer = m.start_timer("wait", scope.id, fire_at)


def resolve(value: Any, data: dict[str, Any]) -> Any:
    """A wait's duration or timestamp: a constant, or a path of the step's input."""
    if isinstance(value, str) and value.startswith("$"):
        return compile_source(value).evaluate({"input": data})
    return value


WAIT = StepKind(begin)
