"""The hooks relayflow calls, and what a plugin may do in each. Every name starts `relayflow_`.

A plugin is a module (or an object) with functions decorated by `relayflow.plugins.hookimpl`
and named like the specs below; it takes only the arguments it needs::

    from relayflow.plugins import hookimpl

    @hookimpl
    def relayflow_execution_finished(execution):
        print(execution.flow_name, execution.name, execution.status)

Register it with an entry point in the group `relayflow` (an installed distribution), or name
its module in `relayflow.toml` under `[plugins] modules`. Lifecycle hooks are called after the
change they report has been committed, on the engine's event loop: keep them quick, and hand
slow work to a thread. An exception in a hook is logged and does not stop the engine.

Every hook is called in pluggy's order (the plugin registered last first; `tryfirst` and
`trylast` move an implementation). `relayflow_start_local_workers` is one pluggy call, so
wrappers (`@hookimpl(wrapper=True)`) work there as pluggy defines them; every other hook calls
each plugin on its own, so that one failing plugin does not silence the others, and a plugin
that declares a wrapper for one of them is refused when it registers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from relayflow.config import Config
    from relayflow.engine.engine import Engine
    from relayflow.engine.integration import Integration, TaskOutcome, TaskRequest
    from relayflow.plugins.events import (
        ApiRequestEvent,
        CommitEvent,
        CommittedHistory,
        ExecutionEvent,
        StepEvent,
        TaskEvent,
    )
    from relayflow.plugins.manager import PluginManager

__all__ = [
    "PROJECT",
    "ConfigModelRegister",
    "IntegrationRegister",
    "RouteRegister",
    "hookimpl",
    "hookspec",
]

PROJECT = "relayflow"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The hooks called as one pluggy call, where wrappers work; the others refuse wrappers.
PLUGGY_CALLED = frozenset({"relayflow_start_local_workers"})


class IntegrationRegister(Protocol):
    """The ``register`` that `relayflow_register_integrations` receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[[Any], Integration],
        config_model: type[BaseModel] | None = None,
        *,
        services: Iterable[str] = (),
    ) -> None:
        """Register one integration.

        Args:
            name: the integration's name, and the key of its `[integrations.<name>]` table.
            factory: builds the integration from its validated table.
            config_model: the pydantic model of that table, if it has one.
            services: the `acs:<service>` resourceArn services it serves beyond the built-in
                fc, mns and fnf (flows may then name `acs:<service>:...` resources).
        """


class ConfigModelRegister(Protocol):
    """The ``register`` that `relayflow_register_config_models` receives."""

    def __call__(self, table: str, model: type[BaseModel]) -> None:
        """Validate the top-level table ``table`` of `relayflow.toml` with ``model``."""


#: An ASGI application: ``await app(scope, receive, send)``.
AsgiApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class RouteRegister(Protocol):
    """The ``register`` that `relayflow_register_http_routes` receives."""

    def __call__(self, path: str, app: AsgiApp) -> None:
        """Serve ``GET path`` (and `HEAD`) of `relayflow server` with the ASGI app ``app``.

        Args:
            path: an absolute path such as `/metrics`; it must not be `/`, `/health`, `/ready`
                or start with `/console`, and two plugins may not register the same one.
            app: called with the request's ASGI scope, receive and send. relayflow checks no
                signature on these routes: the app decides who may read it.
        """


@hookspec
def relayflow_configure(config: Config, plugins: PluginManager) -> None:
    """Read your settings once the configuration is loaded: ``plugins.settings(config, "x")``.

    Called once per process, after every plugin is loaded and the configuration is checked.
    """


@hookspec
def relayflow_register_integrations(register: IntegrationRegister) -> None:
    """Register service integrations.

    Call ``register(name, factory, config_model=None, *, services=())`` once per integration.
    ``factory`` receives the `[integrations.<name>]` table: validated into an instance of
    ``config_model`` when there is one, else the table as a dict (None when the file has no such
    table). It returns an `relayflow.engine.Integration`. The name is the key of its table.
    ``services`` names the `acs:<service>` resourceArn services the integration serves, so that
    flows may name them.
    """


@hookspec
def relayflow_register_config_models(register: ConfigModelRegister) -> None:
    """Register a pydantic model for a top-level table of `relayflow.toml` your plugin owns.

    Call ``register("audit", AuditSettings)``; the `[audit]` table is then validated by the
    model, and `PluginManager.settings(config, "audit")` returns the instance.
    """


@hookspec
def relayflow_register_commands(cli: click.Group) -> None:
    """Add commands to the `relayflow` command line: ``cli.add_command(my_command)``."""


@hookspec
def relayflow_prepare_task_request(request: TaskRequest) -> TaskRequest | None:
    """See, change or replace every task request before its integration gets it.

    Return a new request (`dataclasses.replace(request, headers={...})`) or None to leave it.
    It must be a plain function, not a coroutine. Plugins are applied one after another, in
    pluggy's order (the last registered first; `tryfirst` and `trylast` move a plugin), each
    seeing the previous one's result: add
    `headers` (integrations that speak HTTP or send messages pass them on), trace context, or
    redact fields of `input`. ``request.headers`` is the attempt's own dict: a plugin that only
    adds a header may set it in place and return None (no copy of the request).
    """


@hookspec
def relayflow_task_outcome(request: TaskRequest, outcome: TaskOutcome) -> None:
    """See the outcome of every task request, before the engine records it."""


@hookspec
def relayflow_start_local_workers(
    workers: list[tuple[str, str]], engine: Engine, integrations: list[Integration]
) -> Callable[[], None] | None:
    """Start in-process workers for `relayflow run --worker QUEUE=module:function`.

    ``workers`` lists (queue, "module:function") pairs. A plugin that serves those queues
    starts a worker for each, reporting to ``engine``, and returns a function that stops them
    all; a plugin that does not returns None. Called after the engine has started.
    """


@hookspec
def relayflow_execution_started(execution: ExecutionEvent) -> None:
    """An execution has started."""


@hookspec
def relayflow_execution_finished(execution: ExecutionEvent) -> None:
    """An execution has ended: `execution.status` says how."""


@hookspec
def relayflow_step_entered(step: StepEvent) -> None:
    """A step was entered; `step.detail["input"]` is its mapped input."""


@hookspec
def relayflow_step_exited(step: StepEvent) -> None:
    """A step was left, after it succeeded or failed."""


@hookspec
def relayflow_task_scheduled(task: TaskEvent) -> None:
    """A task attempt was scheduled; its integration is invoked next."""


@hookspec
def relayflow_task_submitted(task: TaskEvent) -> None:
    """A callback or sync task was handed to its service and now waits for a report."""


@hookspec
def relayflow_task_completed(task: TaskEvent) -> None:
    """A task attempt succeeded, failed or timed out (`task.type` says which)."""


@hookspec
def relayflow_history_committed(history: CommittedHistory) -> None:
    """Every history event one store transaction committed, in one call.

    For plugins that watch most events: one call a transaction instead of one an event. Called
    under the lifecycle hooks' rules (after the commit, in commit order, on the engine's loop,
    at most once), after the lifecycle hooks of the same transaction.
    """


# -- the engine's own work, for metrics and traces --------------------------------------------
# Called on the engine's event loop (the API hooks on the server's): keep them quick.


@hookspec
def relayflow_engine_started(engine: Engine) -> None:
    """The engine has started and takes work: keep ``engine`` to read from it later.

    Called once per engine, after `Engine.start` (in `relayflow server`, `relayflow run` and
    any program that starts one with plugins). Read through the engine's public methods only.
    """


@hookspec
def relayflow_engine_stopping(engine: Engine) -> None:
    """The engine is about to stop: flush what you buffer (spans, metrics) now.

    Called once, at the start of `Engine.close`, while the store still answers.
    """


@hookspec
def relayflow_register_http_routes(register: RouteRegister) -> None:
    """Serve extra `GET` paths from `relayflow server`: ``register("/metrics", app)``.

    Called once as the server starts. A path already taken, or reserved (see
    `RouteRegister`), stops the server with a sentence naming both plugins.
    """


@hookspec
def relayflow_api_request_finished(request: ApiRequestEvent) -> None:
    """An RPC request to `relayflow server` was answered (whatever its status)."""


@hookspec
def relayflow_batch_committed(batch: CommitEvent) -> None:
    """The engine's writer committed one transaction of ``batch.jobs`` jobs."""


@hookspec
def relayflow_outbox_dispatched(resource: str, lag_seconds: float | None) -> None:
    """A task request left the outbox for its integration (`resource` is its resourceArn).

    ``lag_seconds`` is the time from the commit that wrote it to its dispatch, or None for a
    request this engine took over from the store (after a restart, or another replica's).
    """


@hookspec
def relayflow_timers_fired(count: int, lag_seconds: float) -> None:
    """``count`` timers (waits, retry pauses, timeouts) fired; the earliest was this late."""
