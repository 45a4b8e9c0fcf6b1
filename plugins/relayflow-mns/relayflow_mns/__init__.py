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
from typing import Any

import click

from relayflow.importing import import_callable
from relayflow.plugins import hookimpl
from relayflow_mns import sqlite_transport as sqlite_transport  # registers the kombu alias
from relayflow_mns.integration import DEFAULT_TRANSPORT, MnsIntegration, MnsSettings
from relayflow_mns.worker import EngineReporter, Worker

__all__ = ["DEFAULT_TRANSPORT", "MnsIntegration", "MnsSettings"]


def _make(settings: Any) -> MnsIntegration:
    return MnsIntegration(settings if isinstance(settings, MnsSettings) else None)


@hookimpl
def relayflow_register_integrations(register: Callable[..., None]) -> None:
    """Register the `mns` integration."""
    register("mns", _make, MnsSettings)


@hookimpl
def relayflow_start_local_workers(
    workers: list[tuple[str, str]], engine: Any, integrations: list[Any]
) -> Callable[[], None] | None:
    """Serve `relayflow run --worker QUEUE=module:function` with in-process workers."""
    mns = next((i for i in integrations if isinstance(i, MnsIntegration)), None)
    if mns is None or not workers:
        return None
    reporter = EngineReporter(engine, asyncio.get_running_loop())
    started: list[Worker] = []
    for queue, target in workers:
        worker = Worker(
            queue,
            import_callable(target),
            transport_url=mns.settings.transport,
            reporter=reporter,
            transport_options=mns.settings.transport_options,
            poll_interval=0.2,
        )
        worker.start()
        started.append(worker)

    def stop() -> None:
        # Called on the engine's loop: ask, do not wait (a waiting handler may need the loop).
        for worker in started:
            worker.request_stop()

    return stop


@hookimpl
def relayflow_register_commands(cli: click.Group) -> None:
    """Add `relayflow worker`."""
    from relayflow_mns.cli import worker

    cli.add_command(worker)
