"""`relayflow server`: the engine loop over the configured store, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from relayflow.config import Config
from relayflow.engine import Engine, Integration
from relayflow.plugins import PluginManager

__all__ = ["serve"]

log = logging.getLogger("relayflow.server")


async def serve(
    config: Config, integrations: list[Integration], plugins: PluginManager | None = None
) -> None:
    """Run the engine until a stop signal; then finish in-flight work and close the store."""
    settings = config.engine
    engine = Engine.from_config(config, integrations=integrations, plugins=plugins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    log.info("relayflow engine running on %s (config: %s)", settings.store, config.source)
    try:
        await stop.wait()
        log.info("stopping: finishing in-flight work")
    finally:
        await engine.close(grace_seconds=settings.lease_seconds / 3)
    log.info("stopped")
