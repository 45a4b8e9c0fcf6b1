"""relayflow-mns: MNS-style queues and topics over kombu transports, and the worker runtime.

Installing this distribution gives relayflow:

- the integration `mns`, for task steps whose resourceArn is an `acs:mns` queue or topic
  (configured by `[integrations.mns]`);
- the embedded kombu transport `relayflow-sqlite://` (SQLite with MNS queue semantics), the
  default when no broker is configured;
- the command `relayflow worker QUEUE --handler module:function`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
import pluggy

from relayflow_mns import sqlite_transport as sqlite_transport  # registers the kombu alias
from relayflow_mns._transports import DEFAULT_TRANSPORT

if TYPE_CHECKING:
    from relayflow_mns.integration import MnsIntegration, MnsSettings

__all__ = ["DEFAULT_TRANSPORT", "MnsIntegration", "MnsSettings"]

# relayflow's hook marker, made here rather than imported from relayflow.plugins: importing
# that package loads the plugin manager and the engine, which `relayflow worker` (a process
# that only receives and reports) must not pay for. Markers are matched by project name.
hookimpl = pluggy.HookimplMarker("relayflow")


def __getattr__(name: str) -> Any:
    # The integration (and with it the engine and pydantic) is imported on first use only.
    if name in ("MnsIntegration", "MnsSettings"):
        from relayflow_mns import integration

        return getattr(integration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make(settings: Any) -> MnsIntegration:
    from relayflow_mns.integration import MnsIntegration, MnsSettings

    return MnsIntegration(settings if isinstance(settings, MnsSettings) else None)


@hookimpl
def relayflow_register_integrations(register: Callable[..., None]) -> None:
    """Register the `mns` integration."""
    from relayflow_mns.integration import MnsSettings

    register("mns", _make, MnsSettings)


@hookimpl
def relayflow_start_local_workers(
    workers: list[tuple[str, str]], engine: Any, integrations: list[Any]
) -> Callable[[], None] | None:
    """Serve `relayflow run --worker QUEUE=module:function` with in-process workers.

    QUEUE may name several queues separated by commas. Every handler is imported before any
    worker starts, and a worker that cannot start stops those started before it.

    Raises:
        relayflow.importing.ImportTargetError: a handler cannot be loaded.
        relayflow.worker.WorkerError: the broker cannot be used.
    """
    from relayflow.importing import import_callable
    from relayflow.worker import EngineReporter
    from relayflow.worker.hooks import WorkerPlugins
    from relayflow_mns.integration import MnsIntegration
    from relayflow_mns.worker import Worker

    mns = next((i for i in integrations if isinstance(i, MnsIntegration)), None)
    if mns is None or not workers:
        return None
    reporter = EngineReporter(engine, asyncio.get_running_loop())
    handlers = [(queue.split(","), import_callable(target)) for queue, target in workers]
    started: list[Worker] = []
    # The worker plugins (traces, metrics) see in-process workers as they see `relayflow worker`.
    plugins = WorkerPlugins.load()

    def stop() -> None:
        # Called on the engine's loop: ask, do not wait (a waiting handler may need the loop).
        for worker in started:
            worker.request_stop()

    try:
        for queues, handler in handlers:
            worker = Worker(
                [name.strip() for name in queues],
                handler,
                transport_url=mns.settings.transport,
                reporter=reporter,
                transport_options=mns.settings.transport_options,
                poll_interval=0.2,
                plugins=plugins if plugins.active else None,
            )
            worker.start()
            started.append(worker)
    except BaseException:
        stop()
        raise
    return stop


@hookimpl
def relayflow_register_commands(cli: click.Group) -> None:
    """Add `relayflow worker`."""
    from relayflow_mns.cli import worker

    cli.add_command(worker)
