"""`relayflow run`: one execution of one flow on the embedded engine, start to end."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relayflow.config import Config
from relayflow.engine import Engine, Integration
from relayflow.errors import EngineError
from relayflow.plugins import PluginManager

__all__ = ["RunResult", "run_flow"]


class RunResult:
    """What `relayflow run` prints and the exit code it returns."""

    def __init__(self, code: int, document: dict[str, Any]) -> None:
        self.code = code
        self.document = document

    def json(self) -> str:
        """The document as one line of JSON."""
        return json.dumps(self.document, ensure_ascii=False)


def flow_name_for(path: Path) -> str:
    """A valid flow name made from a file name: `order-approval.yaml` → `order-approval`."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:128]
    return name if name and (name[0].isalpha() or name[0] == "_") else f"_{name}"[:128]


async def _run(
    definition: str,
    flow_name: str,
    data: dict[str, Any],
    name: str | None,
    config: Config,
    store_url: str,
    integrations: list[Integration],
    plugins: PluginManager | None,
    workers: list[tuple[str, str]],
) -> RunResult:
    engine = Engine.from_config(
        config, integrations=integrations, plugins=plugins, store_url=store_url, poll_seconds=0.2
    )
    await engine.start()
    stoppers: list[Callable[[], None]] = []
    try:
        if workers:
            if plugins is not None:
                stoppers = plugins.start_local_workers(workers, engine, integrations)
            if not stoppers:
                raise EngineError(
                    "NoWorkerRuntime",
                    "no installed plugin runs workers for --worker; install relayflow-mns",
                    400,
                )
        try:
            await engine.describe_flow(flow_name)
            await engine.update_flow(flow_name, definition)
        except EngineError as exc:
            if exc.code != "FlowNotExists":
                raise
            await engine.create_flow(flow_name, definition)
        info = await engine.start_execution(flow_name, data, name)
        while not info.done:
            info = await engine.describe_execution(flow_name, info.name, wait_seconds=60)
    finally:
        for stop in stoppers:
            stop()
        await engine.close(grace_seconds=0)
    if info.status == "Succeeded":
        return RunResult(0, info.output or {})
    return RunResult(1, {"status": info.status, "error": info.error, "cause": info.cause})


def run_flow(
    definition: str,
    flow_name: str,
    data: dict[str, Any],
    *,
    name: str | None,
    config: Config,
    integrations: list[Integration],
    plugins: PluginManager | None = None,
    workers: list[tuple[str, str]] | None = None,
) -> RunResult:
    """Run one execution and wait for its end.

    The store is the configuration's when a configuration file was given, else a private
    in-memory one.
    """
    chosen = config.from_file or "RELAYFLOW_ENGINE__STORE" in os.environ
    store_url = config.engine.store if chosen else "memory://"
    return asyncio.run(
        _run(
            definition,
            flow_name,
            data,
            name,
            config,
            store_url,
            integrations,
            plugins,
            workers or [],
        )
    )
