"""`relayflow run`: one execution of one flow on the embedded engine, start to end.

Besides running, the command says what a newcomer would otherwise have to guess: a `--worker`
for a queue no step uses is warned about; an execution that waits on a queue (or a callback)
nobody serves here is named once, on stderr, after `NOTICE_SECONDS`; and Ctrl-C says what it
left behind (the execution, its status, and the store it is kept in).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from relayflow.cli._common import (
    EXIT_INVALID,
    CommandError,
    Invalid,
    JsonObject,
    config_option,
    one_of,
)

if TYPE_CHECKING:
    import asyncio

    from relayflow.config import Config
    from relayflow.engine import Engine, Integration
    from relayflow.fdl import Flow
    from relayflow.plugins import PluginManager

__all__ = [
    "NOTICE_SECONDS",
    "RunResult",
    "flow_name_for",
    "register",
    "run",
    "run_flow",
    "unused_queues",
]

#: How long `relayflow run` waits before it says which task waits on what.
NOTICE_SECONDS = 5

T = TypeVar("T")
#: Exit status after Ctrl-C, as shells report a process that SIGINT ended.
EXIT_INTERRUPTED = 130
_PENDING = {"TaskScheduled", "TaskSubmitted", "TaskStarted"}


class RunResult:
    """What `relayflow run` prints and the exit code it returns."""

    def __init__(self, code: int, document: dict[str, Any]) -> None:
        self.code = code
        self.document = document

    def json(self) -> str:
        """The document as one line of JSON."""
        return json.dumps(self.document, ensure_ascii=False)


@dataclass
class _Progress:
    """Where the run got to, for the Ctrl-C message."""

    flow_name: str
    store_url: str
    execution: str = ""
    status: str = ""
    noticed: bool = False
    served: set[str] = field(default_factory=set)


def flow_name_for(path: Path) -> str:
    """A valid flow name made from a file name: `order-approval.yaml` → `order-approval`."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:128]
    return name if name and (name[0].isalpha() or name[0] == "_") else f"_{name}"[:128]


def _task_resources(flow: Flow) -> dict[str, tuple[str, str, str]]:
    """Each task step's name → (resource text, queue name or "", pattern)."""
    from relayflow.fdl import TaskStep

    found: dict[str, tuple[str, str, str]] = {}
    for _, step in flow.walk():
        if not isinstance(step, TaskStep):
            continue
        arn = step.resource_arn
        queue = arn.name if arn is not None and arn.service == "mns" and arn.kind == "queue" else ""
        resource = str(arn) if arn is not None else step.action or ""
        found.setdefault(step.name, (resource, queue, step.pattern))
    return found


def unused_queues(flow: Flow, queues: list[str]) -> list[str]:
    """The ``queues`` (from `--worker`) that no task step of ``flow`` sends to.

    A flow that publishes to a topic or starts child flows may reach queues it does not name:
    then nothing is reported.
    """
    from relayflow.fdl import TaskStep

    named: set[str] = set()
    for _, step in flow.walk():
        if not isinstance(step, TaskStep) or step.resource_arn is None:
            continue
        arn = step.resource_arn
        if arn.kind in ("topic", "flow"):
            return []
        if arn.service == "mns" and arn.kind == "queue":
            named.add(arn.name)
    return [queue for queue in dict.fromkeys(queues) if queue not in named]


async def _waiting_notice(engine: Engine, flow: Flow, progress: _Progress) -> str:
    """One line naming the tasks the execution waits on that nothing here serves, or ""."""
    latest: dict[str, str] = {}
    token = ""
    while True:
        page = await engine.get_execution_history(
            progress.flow_name, progress.execution, next_token=token
        )
        for event in page.items:
            if event.type.startswith("Task") and event.step_name:
                latest[event.step_name] = event.type
        token = page.next_token
        if not token:
            break
    resources = _task_resources(flow)
    waits: list[str] = []
    for step, kind in latest.items():
        if kind not in _PENDING or step not in resources:
            continue
        resource, queue, pattern = resources[step]
        if queue and queue not in progress.served:
            waits.append(
                f"task {step} waits for a worker on queue {queue} (serve it here with "
                f"--worker {queue}=MODULE:FUNCTION)"
            )
        elif not queue and pattern == "waitForCallback":
            waits.append(f"task {step} waits for a callback on its task token ({resource})")
    if not waits:
        return ""
    return f"relayflow: waiting: execution {progress.execution}: " + "; ".join(waits)


async def _run(
    definition: str,
    flow: Flow | None,
    data: dict[str, Any],
    name: str | None,
    config: Config,
    integrations: list[Integration],
    plugins: PluginManager | None,
    workers: list[tuple[str, str]],
    progress: _Progress,
) -> RunResult:
    from relayflow.engine import Engine
    from relayflow.errors import EngineError

    engine = Engine.from_config(
        config,
        integrations=integrations,
        plugins=plugins,
        store_url=progress.store_url,
        poll_seconds=0.2,
    )
    await engine.start()
    stoppers: list[Callable[[], None]] = []
    flow_name = progress.flow_name
    try:
        if workers:
            if plugins is not None:
                stoppers = _start_workers(plugins, workers, engine, integrations)
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
        progress.execution, progress.status = info.name, info.status
        interrupted = _on_ctrl_c()
        while not info.done:
            wait = 60 if progress.noticed or flow is None else NOTICE_SECONDS
            info = await _unless(
                interrupted, engine.describe_execution(flow_name, info.name, wait_seconds=wait)
            )
            progress.status = info.status
            if not info.done and not progress.noticed and flow is not None:
                progress.noticed = True
                notice = await _waiting_notice(engine, flow, progress)
                if notice:
                    click.echo(notice, err=True)
    finally:
        _ignore_ctrl_c_here()
        for stop in stoppers:
            stop()
        await engine.close(grace_seconds=0)
    if info.status == "Succeeded":
        return RunResult(0, info.output or {})
    return RunResult(1, {"status": info.status, "error": info.error, "cause": info.cause})


class Interrupted(Exception):
    """Ctrl-C during the wait: `run` says what it leaves behind and exits 130."""


def _on_ctrl_c() -> asyncio.Event:
    """An event that Ctrl-C (SIGINT) sets, instead of asyncio's cancelling of the main task.

    A cancellation can be absorbed by the code it lands in; an event the wait loop checks
    cannot, so Ctrl-C always ends the wait. Where the loop cannot take signals (not the main
    thread), the event is never set and asyncio's own handling stays.
    """
    import asyncio

    event = asyncio.Event()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, event.set)
    return event


def _ignore_ctrl_c_here() -> None:
    """Give SIGINT back to Python's default handler (a second Ctrl-C ends the process)."""
    import asyncio

    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)


async def _unless(interrupted: asyncio.Event, call: Awaitable[T]) -> T:
    """``call``'s result, or `Interrupted` as soon as ``interrupted`` is set."""
    import asyncio

    task = asyncio.ensure_future(call)
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if interrupted.is_set():
        task.cancel()
        raise Interrupted
    return task.result()


def _start_workers(
    plugins: PluginManager,
    workers: list[tuple[str, str]],
    engine: Engine,
    integrations: list[Integration],
) -> list[Callable[[], None]]:
    """Start the plugins' in-process workers; a worker that cannot start is `Invalid`."""
    from relayflow.errors import first_line
    from relayflow.importing import ImportTargetError

    try:
        return plugins.start_local_workers(workers, engine, integrations)
    except ImportTargetError as exc:
        raise Invalid("InvalidHandler", f"--worker {exc.spec}: {exc.message}") from None
    except Exception as exc:  # the broker is down, the transport unknown, ...: say why, once
        # relayflow.worker's WorkerError carries the code `relayflow worker` prints too.
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", None)
        if isinstance(code, str) and isinstance(message, str):
            raise Invalid(code, message, mask=True) from None
        raise Invalid("WorkerNotStarted", first_line(exc), mask=True) from None


def _store_url(config: Config) -> str:
    """The configuration's store when a file (or the environment) chose one, else memory."""
    chosen = config.from_file or "RELAYFLOW_ENGINE__STORE" in os.environ
    return config.engine.store if chosen else "memory://"


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
    flow: Flow | None = None,
    progress: _Progress | None = None,
) -> RunResult:
    """Run one execution and wait for its end.

    The store is the configuration's when a configuration file was given, else a private
    in-memory one. With ``flow`` (the parsed definition), a wait on an unserved queue or
    callback is named on stderr after `NOTICE_SECONDS`.
    """
    import asyncio

    progress = progress or _Progress(flow_name, _store_url(config))
    progress.served = {queue for queue, _ in workers or []}
    return asyncio.run(
        _run(
            definition,
            flow,
            data,
            name,
            config,
            integrations,
            plugins,
            workers or [],
            progress,
        )
    )


def _worker_spec(spec: str) -> tuple[str, str]:
    """`QUEUE=module:function` split in two (the plugin that runs workers imports the handler)."""
    queue, _, handler = spec.partition("=")
    if not queue or ":" not in handler:
        raise Invalid("InvalidArgument", f"--worker {spec!r} must look like QUEUE=module:function")
    return queue, handler


def _left_behind(progress: _Progress) -> str:
    """What Ctrl-C leaves: the execution, its status, and where it is kept."""
    if not progress.execution:
        return "relayflow: interrupted before the execution started; nothing was left behind"
    from relayflow.masking import mask_text

    where = mask_text(progress.store_url)
    if where.startswith("memory:"):
        kept = "it was kept in memory only, so it is gone"
    else:
        kept = (
            f"it stays in the store {where}, where `relayflow server` with the same "
            "configuration resumes it"
        )
    return (
        f"relayflow: interrupted: execution {progress.execution} of flow {progress.flow_name} "
        f"was {progress.status or 'Running'}; {kept}"
    )


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
    runs in memory. Task steps use the integrations that are installed. If the execution
    still waits after a few seconds on a queue no --worker serves, stderr says which task
    waits on which queue; Ctrl-C says what it leaves behind.
    """
    from relayflow.cli.local import check_file, fail_with_problems, setup
    from relayflow.errors import EngineError
    from relayflow.store import StoreError

    data = one_of(("--input", input_data), ("--input-file", input_file_data)) or {}
    config, plugins, integrations = setup(config_path)  # first: plugins add step types, services
    flow_obj, problems = check_file(flow)
    if flow_obj is None:
        fail_with_problems(problems)
    specs = [_worker_spec(spec) for spec in workers]
    for queue in unused_queues(flow_obj, [queue for queue, _ in specs]):
        click.echo(
            f"relayflow: warning: --worker {queue}=...: no task step of {flow} sends to the "
            f"queue {queue}; this worker will get nothing",
            err=True,
        )
    progress = _Progress(flow_name_for(Path(flow)), _store_url(config))
    try:
        result = run_flow(
            Path(flow).read_text(encoding="utf-8"),
            progress.flow_name,
            data,
            name=name,
            config=config,
            integrations=integrations,
            plugins=plugins,
            workers=specs,
            flow=flow_obj,
            progress=progress,
        )
    except CommandError as exc:
        exc.show()
        _exit(exc.exit_code)
    except EngineError as exc:
        Invalid(exc.code, exc.message, mask=True).show()
        _exit(EXIT_INVALID)
    except StoreError as exc:
        Invalid("StoreUnavailable", str(exc), mask=True).show()
        _exit(EXIT_INVALID)
    except (KeyboardInterrupt, Interrupted):
        click.echo(_left_behind(progress), err=True)
        _exit(EXIT_INTERRUPTED)
    click.echo(result.json())
    _exit(result.code)


def register(cli: click.Group) -> None:
    """Add `run` to ``cli``."""
    cli.add_command(run)
