"""The hooks a worker process calls, for plugins that watch workers (traces, metrics).

`relayflow worker` (and any program that builds a `relayflow_mns.worker.Worker` with
``plugins=WorkerPlugins.load()``) loads the installed distributions with an entry point in the
group `relayflow.worker`, and the modules named in `RELAYFLOW_WORKER_PLUGINS` (comma
separated). It is a group of its own, not `relayflow`'s: a worker starts in a fraction of a
second because it imports neither the engine nor the integrations, and stays so.

A plugin implements any of these, decorated with `hookimpl` (this module's, or
`relayflow.plugins.hookimpl`: they are the same marker, but importing this one keeps a
worker's start light, as `relayflow.plugins` loads the configuration's models)::

    from relayflow.worker.hooks import hookimpl

    @hookimpl
    def relayflow_worker_message_handled(message, outcome, seconds):
        print(message.queue, outcome, seconds)

Hooks run on the thread that handles the message; one that raises is logged and skipped, and
never fails the message or stops the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, cast

import pluggy

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODULES_ENV",
    "WorkerInfo",
    "WorkerMessage",
    "WorkerPlugins",
    "hookimpl",
]

#: pluggy's project name, `relayflow.plugins.hookspecs.PROJECT` (not imported from there: that
#: package loads the engine-side configuration, which a worker does without).
PROJECT = "relayflow"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a worker hook's implementation; the same marker as `relayflow.plugins.hookimpl`.
hookimpl = pluggy.HookimplMarker(PROJECT)

log = logging.getLogger("relayflow.worker.plugins")

ENTRY_POINT_GROUP = "relayflow.worker"
MODULES_ENV = "RELAYFLOW_WORKER_PLUGINS"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as it starts.

    Attributes:
        queues: the queues it serves.
        concurrency: how many messages it handles at once.
        transport: the broker's URL scheme (`redis`, `amqp`, `relayflow-sqlite`...), never
            the URL itself, which may hold a password.
    """

    queues: tuple[str, ...]
    concurrency: int
    transport: str


@dataclass(frozen=True, slots=True)
class WorkerMessage:
    """One task message a worker took off its queue.

    Attributes:
        queue: the queue it came from.
        flow, execution, step: the task's, from the message's headers ("" when absent).
        headers: the message's headers (or MNS message properties) as text, such as
            `traceparent`; the task token is left out.
    """

    queue: str
    flow: str
    execution: str
    step: str
    headers: Mapping[str, str] = field(default_factory=dict)


class _WorkerSpecs:
    """The worker hooks; every name starts `relayflow_worker_`."""

    @hookspec
    def relayflow_worker_started(self, worker: WorkerInfo) -> None:
        """The worker is about to take messages."""

    @hookspec
    def relayflow_worker_serve_metrics(self, host: str, port: int) -> bool | None:
        """Serve the worker's metrics on ``host``:``port`` (`relayflow worker --metrics-port`).

        Return True if this plugin serves them. When none does, the worker refuses to start
        with a sentence saying a metrics plugin is needed.
        """

    @hookspec
    def relayflow_worker_message(
        self, message: WorkerMessage
    ) -> AbstractContextManager[object] | None:
        """A context manager the handler runs in (a span, say), or None.

        Entered on the handling thread before the handler runs, and left after the report,
        with the handler's exception, if any, already turned into a failure report.
        """

    @hookspec
    def relayflow_worker_message_handled(
        self, message: WorkerMessage, outcome: str, seconds: float
    ) -> None:
        """A message was handled.

        ``outcome`` is the word of the worker's log line (`succeeded`, `failed`, ...);
        ``seconds`` runs from its receipt to its report.
        """

    @hookspec
    def relayflow_worker_stopping(self, worker: WorkerInfo) -> None:
        """The worker is stopping: flush what you buffer now."""


class WorkerPlugins:
    """The worker plugins of one process, and typed calls into them."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(_WorkerSpecs)

    @classmethod
    def load(cls) -> WorkerPlugins:
        """Load the `relayflow.worker` entry points and the `RELAYFLOW_WORKER_PLUGINS` modules."""
        plugins = cls()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                plugins.register(ep.load(), ep.name)
            except Exception as exc:  # a broken plugin is reported, never fatal
                log.warning("worker plugin %s failed to load: %s", ep.name, exc)
        names = [n.strip() for n in os.environ.get(MODULES_ENV, "").split(",") if n.strip()]
        for name in names:
            try:
                plugins.register(importlib.import_module(name), name)
            except Exception as exc:
                log.warning("worker plugin module %s failed to load: %s", name, exc)
        return plugins

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module.

        Raises:
            pluggy.PluginValidationError: a hook's name or arguments are wrong.
        """
        self._pm.register(plugin, name=name)
        try:
            self._pm.check_pending()
        except Exception:
            self._pm.unregister(plugin)
            raise

    @property
    def active(self) -> bool:
        """Whether any plugin is registered (else the worker skips the calls)."""
        return bool(self._pm.get_plugins())

    def _each(self, hook_name: str, **kwargs: Any) -> Iterator[object]:
        """Each plugin's result of one hook, each plugin called on its own."""
        hook = getattr(self._pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            try:
                result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except Exception:  # a failing plugin never fails the message or the worker
                log.exception("worker plugin %s failed in %s", impl.plugin_name, hook_name)
                continue
            if result is not None:
                yield result

    def started(self, worker: WorkerInfo) -> None:
        """Call `relayflow_worker_started`."""
        for _ in self._each("relayflow_worker_started", worker=worker):
            pass

    def serve_metrics(self, host: str, port: int) -> bool:
        """Ask plugins to serve metrics; whether one does."""
        return any(self._each("relayflow_worker_serve_metrics", host=host, port=port))

    @contextlib.contextmanager
    def message(self, message: WorkerMessage) -> Iterator[None]:
        """Run the body inside every plugin's context manager for ``message``.

        A manager that fails to enter is skipped, one that fails to exit is logged, and none
        can swallow the body's exception: a plugin never changes what happens to the message.
        """
        entered: list[AbstractContextManager[object]] = []
        for result in self._each("relayflow_worker_message", message=message):
            manager = cast("AbstractContextManager[object]", result)
            try:
                manager.__enter__()
            except Exception:  # not a context manager at all, say
                log.exception("a worker plugin's context for a message failed to enter")
                continue
            entered.append(manager)
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            for manager in reversed(entered):
                try:
                    manager.__exit__(
                        None if error is None else type(error),
                        error,
                        None if error is None else error.__traceback__,
                    )
                except Exception:
                    log.exception("a worker plugin's context for a message failed to exit")

    def handled(self, message: WorkerMessage, outcome: str, seconds: float) -> None:
        """Call `relayflow_worker_message_handled`."""
        for _ in self._each(
            "relayflow_worker_message_handled", message=message, outcome=outcome, seconds=seconds
        ):
            pass

    def stopping(self, worker: WorkerInfo) -> None:
        """Call `relayflow_worker_stopping`."""
        for _ in self._each("relayflow_worker_stopping", worker=worker):
            pass

    def implements(self, hook_name: str) -> bool:
        """Whether any registered plugin implements ``hook_name``."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

    def hook_names(self) -> list[str]:
        """Every worker hook."""
        return sorted(n for n in dir(_WorkerSpecs) if n.startswith("relayflow_worker_"))
