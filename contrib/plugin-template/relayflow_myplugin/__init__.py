"""relayflow-myplugin: a starting point for a relayflow plugin.

The module is the plugin: relayflow registers it (through the entry point `myplugin` in the
group `relayflow`, or through `[plugins] modules = ["relayflow_myplugin"]`) and calls the
functions below whose names match its hooks. It shows the two things most plugins do:

- watch the engine: `relayflow_step_entered` logs every step an execution enters;
- serve task steps: `relayflow_register_integrations` registers the integration `myplugin`,
  which answers the action `myplugin:Echo` with the step's input, configured by the table
  `[integrations.myplugin]` of relayflow.toml.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from relayflow.engine.integration import Integration, Succeeded, TaskOutcome, TaskRequest
from relayflow.plugins import StepEvent, hookimpl

__all__ = [
    "ECHO",
    "EchoIntegration",
    "EchoSettings",
    "relayflow_register_integrations",
    "relayflow_step_entered",
]

__version__ = "0.1.0"

log = logging.getLogger("relayflow_myplugin")

#: The action this plugin serves: `action: myplugin:Echo` in a task step.
ECHO = "myplugin:Echo"


class EchoSettings(BaseModel):
    """The `[integrations.myplugin]` table.

    Attributes:
        key: when set, the input is returned under this key (``{key: input}``) instead of as
            it is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = None


class EchoIntegration(Integration):
    """Answers `myplugin:Echo` task steps with their input, at once (requestResponse only)."""

    name = "myplugin"
    patterns = frozenset({"requestResponse"})
    config_model = EchoSettings

    def __init__(self, settings: EchoSettings | None = None) -> None:
        """Keep the settings.

        Args:
            settings: the validated `[integrations.myplugin]` table; None means the defaults.
        """
        self.settings = settings or EchoSettings()

    def claims(self, resource: str) -> bool:
        """Whether the resource is this plugin's action.

        Args:
            resource: a task step's resourceArn or action.

        Returns:
            True for `myplugin:Echo`.
        """
        return resource == ECHO

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Return the step's input as the task's output.

        Args:
            request: the task attempt.

        Returns:
            `Succeeded` with the input, under `settings.key` when that is set.
        """
        output = dict(request.input)
        if self.settings.key is not None:
            output = {self.settings.key: output}
        return Succeeded(output)


@hookimpl
def relayflow_register_integrations(register: Callable[..., None]) -> None:
    """Register the integration `myplugin` and the model of its configuration table.

    Args:
        register: relayflow's ``register(name, factory, config_model)``.
    """
    register("myplugin", EchoIntegration, EchoSettings)


@hookimpl
def relayflow_step_entered(step: StepEvent) -> None:
    """Log each step an execution enters (runs on the engine's event loop: stays quick).

    Args:
        step: the committed StepEntered event and the execution it belongs to.
    """
    log.info(
        "%s/%s: entered step %s (event %d)",
        step.flow_name,
        step.execution_name,
        step.step_name,
        step.event.event_id,
    )
