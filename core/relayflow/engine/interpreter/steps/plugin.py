"""Step types from plugins: the handler registered with the type gives the step's `$local`."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from relayflow import jsontext
from relayflow.engine.interpreter._kind import StepKind
from relayflow.engine.interpreter._run import StepFault
from relayflow.engine.model import ERROR_INVALID_LOCAL, ERROR_RUNTIME, Scope
from relayflow.errors import first_line
from relayflow.fdl import StepBase, StepFailed, StepHandler

if TYPE_CHECKING:
    from relayflow.engine.interpreter._machine import Machine

__all__ = ["plugin_kind"]


def plugin_kind(handler: StepHandler) -> StepKind[StepBase]:
    """The kind of a plugin's step type, run by ``handler``."""

    def begin(m: Machine, scope: Scope, step: StepBase, token: str | None) -> None:
        run = scope.run
        assert run is not None
        try:  # a copy: the handler must not change the stored input
            local = handler(step, copy.deepcopy(run.input), m.context())
        except StepFailed as failed:
            raise StepFault(failed.error, failed.cause) from None
        except Exception as exc:  # a bug in the plugin fails the step, not the engine
            raise StepFault(
                ERROR_RUNTIME,
                f"the {step.type} step '{step.name}' failed: {type(exc).__name__}: "
                f"{first_line(exc)}",
            ) from None
        if not isinstance(local, dict):
            raise StepFault(
                ERROR_INVALID_LOCAL,
                f"the {step.type} step '{step.name}' must give a JSON object, "
                f"not a {type(local).__name__}",
            )
        # Through JSON and back: the state holds JSON values only, as it would after a restart.
        m.finish_step(scope, jsontext.loads(jsontext.dumps(local)))

    return StepKind(begin)
