"""The integration interface: how a task step reaches the outside world.

An integration claims some resourceArn forms or `action` names, and the engine hands it every
task attempt of those, after the attempt is durably scheduled::

    class Echo(Integration):
        name = "echo"

        def claims(self, resource: str) -> bool:
            return resource == "echo:Say"

        async def invoke(self, request: TaskRequest) -> TaskOutcome:
            return Succeeded({"said": request.input})

`invoke` answers with one of three outcomes:

- `Succeeded(output)`: the task is done (pattern requestResponse); `output` must be a JSON
  object and becomes the step's `$local`;
- `Failed(error, cause)`: the task failed with that error name; retry and catch match it;
- `Submitted(detail)`: the work was handed over (patterns waitForCallback and sync); the result
  comes later, through `Engine.report_task_succeeded` / `report_task_failed` with the token.

Plugins may add `headers` to a request (trace context, say) through the
`relayflow_prepare_task_request` hook; integrations that send HTTP requests or messages should
pass them on. An exception raised by `invoke` fails the task with `FnF.RuntimeError`. A crash
of the engine between scheduling and the outcome makes it invoke the attempt again after
restart, with the same token: integrations should treat the token as an idempotency key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from relayflow.worker import AsyncReporter

#: What an integration may call to finish a waiting task (the engine has these): the same
#: protocol a worker reports to an in-process engine through.
TaskReporter = AsyncReporter

__all__ = [
    "Failed",
    "FunctionIntegration",
    "Integration",
    "Submitted",
    "Succeeded",
    "TaskOutcome",
    "TaskReporter",
    "TaskRequest",
]


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One task attempt, as an integration receives it."""

    flow_name: str
    execution_name: str
    step_name: str
    task_id: int
    token: str
    resource: str
    pattern: str
    input: dict[str, Any]
    service_params: dict[str, Any] | None
    timeout_seconds: int | None
    attempt: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The task finished; `output` becomes the step's local."""

    output: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """The task failed with an error name (matched by retry and catch) and a cause."""

    error: str
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Submitted:
    """The work was handed over; a report with the token will finish the task."""

    detail: dict[str, Any] = field(default_factory=dict)


TaskOutcome = Succeeded | Failed | Submitted
"""What an integration answers a task request with."""


class Integration(ABC):
    """A service integration. Subclass it, or use `FunctionIntegration` for a quick one."""

    #: A short name, used in logs and configuration.
    name: str = "integration"
    #: The patterns this integration supports.
    patterns: frozenset[str] = frozenset({"requestResponse", "sync", "waitForCallback"})
    #: The pydantic model of its `[integrations.<name>]` table, if it has settings.
    config_model: type[BaseModel] | None = None

    @abstractmethod
    def claims(self, resource: str) -> bool:
        """Whether this integration serves ``resource`` (a resourceArn or an action name)."""

    def bind(self, reporter: TaskReporter) -> None:  # noqa: B027 - optional
        """Called when the engine starts, with what reports task results (the engine).

        An integration whose work reports back in-process (a local function finishing a
        callback task, a child flow) keeps ``reporter``; others ignore it.
        """

    @abstractmethod
    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Carry out one task attempt and say how it went."""

    def problems(self) -> list[str]:
        """What in the integration's settings cannot work, one sentence each naming the setting.

        `relayflow validate --strict` and the server's start call it, so that a setting that
        would only fail at the first task (a handler module that does not import, an unknown
        transport) is reported before. The default finds nothing.
        """
        return []

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release what the integration holds (connections, pools, threads).

        The engine calls it once, from `Engine.close`, after the last task attempt has been
        dispatched; an integration that holds nothing need not define it.
        """


Handler = Callable[[TaskRequest], Awaitable[TaskOutcome]]


class FunctionIntegration(Integration):
    """An integration made of async functions, one per resource or action (tests, scripts)."""

    def __init__(self, handlers: dict[str, Handler], name: str = "functions") -> None:
        self.handlers = dict(handlers)
        self.name = name

    def claims(self, resource: str) -> bool:
        """Whether a handler is registered for ``resource``."""
        return resource in self.handlers

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Call the resource's handler."""
        return await self.handlers[request.resource](request)
