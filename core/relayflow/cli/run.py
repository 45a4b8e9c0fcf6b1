"""`relayflow run`: one execution of one flow on the embedded engine, start to end."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import EXIT_INVALID, JsonObject, config_option, one_of

if TYPE_CHECKING:
    from relayflow.config import Config
    from relayflow.engine import Integration
    from relayflow.plugins import PluginManager

__all__ = ["RunResult", "flow_name_for", "register", "run", "run_flow"]


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
    from relayflow.engine import Engine
    from relayflow.errors import EngineError

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
    import asyncio

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


def _worker_spec(spec: str) -> tuple[str, str]:
    from relayflow.cli._common import Invalid

    queue, _, handler = spec.partition("=")
    if not queue or ":" not in handler:
        raise Invalid("InvalidArgument", f"--worker {spec!r} must look like QUEUE=module:function")
    return queue, handler


def _exit(code: int) -> None:
    # Task code may still run in threads the engine does not own; do not wait for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_data",
    metavar="JSON",
    type=JsonObject(blank_is_empty=True),
    help="The execution's input object.",
)
@click.option(
    "--input-file",
    "input_file_data",
    metavar="FILE",
    type=JsonObject(from_file=True, blank_is_empty=True),
    help="Read the input from a file.",
)
@config_option
@click.option("--name", help="The execution's name (default: a generated one).")
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="QUEUE=module:function",
    help="Serve QUEUE with this handler in-process while the flow runs (repeatable).",
)
def run(
    flow: str,
    input_data: dict[str, Any] | None,
    input_file_data: dict[str, Any] | None,
    config_path: str | None,
    name: str | None,
    workers: tuple[str, ...],
) -> None:
    """Run one execution of FLOW in-process and wait for its end.

    \b
    relayflow run flow.yaml --input '{"id": 7}'
    relayflow run seed.yaml --worker fnf-demo=jobs:handle --config relayflow.toml

    \b
    Exit 0: the execution succeeded; its output is printed as one JSON object.
    Exit 1: it failed, timed out or was stopped; {"status", "error", "cause"} is printed.
    Exit 2: the flow, the input or the configuration is invalid; errors go to stderr.

    With a configuration file the execution is kept in its [engine] store; without one it
    runs in memory. Task steps use the integrations that are installed.
    """
    from relayflow.cli._common import Invalid
    from relayflow.cli.local import check_file, fail_with_problems, setup
    from relayflow.errors import EngineError
    from relayflow.store import StoreError

    data = one_of(("--input", input_data), ("--input-file", input_file_data)) or {}
    flow_obj, problems = check_file(flow)
    if flow_obj is None:
        fail_with_problems(problems)
    specs = [_worker_spec(spec) for spec in workers]
    config, plugins, integrations = setup(config_path)
    try:
        result = run_flow(
            Path(flow).read_text(encoding="utf-8"),
            flow_name_for(Path(flow)),
            data,
            name=name,
            config=config,
            integrations=integrations,
            plugins=plugins,
            workers=specs,
        )
    except EngineError as exc:
        Invalid(exc.code, exc.message, mask=True).show()
        _exit(EXIT_INVALID)
    except StoreError as exc:
        Invalid("StoreUnavailable", str(exc), mask=True).show()
        _exit(EXIT_INVALID)
    click.echo(result.json())
    _exit(result.code)


def register(cli: click.Group) -> None:
    """Add `run` to ``cli``."""
    cli.add_command(run)
