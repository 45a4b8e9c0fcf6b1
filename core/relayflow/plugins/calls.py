"""How relayflow calls its hooks, and the calls the engine makes while it runs.

`HookCalls` is the half of `relayflow.plugins.PluginManager` that calls plugins once they are
loaded: each plugin on its own in pluggy's order (`_each`), or, for the hooks called for every
history event and task request, straight to each plugin's function (`_direct`) as long as no
hook-call monitoring or tracing is on. The engine reaches these calls through
`relayflow.engine.hooks.EngineHooks`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import pluggy

from relayflow.plugins.events import (
    HOOK_FOR_EVENT,
    ApiRequestEvent,
    CommitEvent,
    CommittedHistory,
)

if TYPE_CHECKING:
    from relayflow.engine.engine import Engine
    from relayflow.engine.hooks import WriterCommit
    from relayflow.engine.integration import TaskOutcome, TaskRequest
    from relayflow.store.records import HistoryEvent

__all__ = ["HookCalls"]

log = logging.getLogger("relayflow.plugins")

#: The lifecycle hooks called once an event, and with them the one called once a transaction.
_EVENT_HOOKS = tuple(dict.fromkeys(hook for hook, _ in HOOK_FOR_EVENT.values()))
_LIFECYCLE_HOOKS = (*_EVENT_HOOKS, "relayflow_history_committed")
_WORK_HOOKS = (
    "relayflow_batch_committed",
    "relayflow_outbox_dispatched",
    "relayflow_timers_fired",
)
# pluggy's own call loop: a hook executor that is not it means monitoring or tracing is on.
# A pluggy that moved it gets None, and every call then goes through pluggy.
_PLUGGY_EXEC: object | None
try:
    from pluggy._callers import _multicall as _PLUGGY_EXEC
except ImportError:
    _PLUGGY_EXEC = None

#: Says how one plugin's failing call is reported: (plugin name, hook name, the exception).
OnFailure = Callable[[str, str, Exception], None]


def log_failure(plugin: str, hook_name: str, exc: Exception) -> None:
    """Log one plugin's failed hook call, with its traceback."""
    log.error("plugin %s failed in %s", plugin, hook_name, exc_info=exc)


class HookCalls:
    """Calls into the plugins registered on one pluggy manager (see the module docstring)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._callers: dict[str, list[tuple[str, pluggy.HookCaller]]] = {}
        self._functions: dict[str, list[tuple[str, Callable[..., object], tuple[str, ...]]]] = {}

    # -- calling hooks ------------------------------------------------------------------------

    def _each(
        self,
        hook_name: str,
        arguments: Callable[[str], Mapping[str, object]],
        on_failure: OnFailure = log_failure,
    ) -> Iterator[tuple[str, object]]:
        """Call each plugin's implementation of a hook on its own, in pluggy's order.

        One pluggy call stops at the first implementation that raises; relayflow's hooks must
        not let one plugin silence the others, so each plugin gets a pluggy call of its own
        (through `subset_hook_caller`, which pluggy's hook-call monitoring and tracing see).
        A call that raises goes to ``on_failure`` and is skipped.

        Args:
            hook_name: the hook.
            arguments: the keyword arguments for a plugin, given its name. It is called just
                before each plugin's call, so it may return what an earlier plugin produced.
            on_failure: reports a plugin whose call raised.

        Yields:
            (plugin name, result) for each result that is not None.
        """
        for plugin_name, caller in self._plugin_callers(hook_name):
            try:
                results = caller(**arguments(plugin_name))
            except Exception as exc:  # one plugin's failure never stops the others
                on_failure(plugin_name, hook_name, exc)
                continue
            for result in results:
                yield plugin_name, result

    def _plugin_callers(self, hook_name: str) -> list[tuple[str, pluggy.HookCaller]]:
        """One hook caller per plugin implementing ``hook_name``, in pluggy's call order."""
        callers = self._callers.get(hook_name)
        if callers is None:
            # pluggy keeps implementations in reverse call order, tryfirst and trylast applied.
            impls = reversed(getattr(self._pm.hook, hook_name).get_hookimpls())
            plugins = dict((impl.plugin_name, impl.plugin) for impl in impls)
            callers = [
                (
                    name,
                    self._pm.subset_hook_caller(
                        hook_name, [p for p in plugins.values() if p is not plugin]
                    ),
                )
                for name, plugin in plugins.items()
            ]
            self._callers[hook_name] = callers
        return callers

    def _direct(
        self, hook_name: str
    ) -> list[tuple[str, Callable[..., object], tuple[str, ...]]] | None:
        """Each plugin's function for ``hook_name`` with its argument names, in call order.

        None while pluggy's hook-call monitoring or tracing is on: callers then go through
        `_each`, which they see. Wrappers are refused on these hooks, so a plain call of each
        function, in order, is what pluggy would do.
        """
        if _PLUGGY_EXEC is None or self._pm._inner_hookexec is not _PLUGGY_EXEC:
            return None  # monitored, traced, or a pluggy whose internals are not known here
        functions = self._functions.get(hook_name)
        if functions is None:
            impls = reversed(getattr(self._pm.hook, hook_name).get_hookimpls())
            functions = [(i.plugin_name, i.function, tuple(i.argnames)) for i in impls]
            self._functions[hook_name] = functions
        return functions

    def _call(self, hook_name: str, **kwargs: object) -> None:
        for _ in self._each(hook_name, lambda _plugin: kwargs):
            pass

    def _call_direct(self, hook_name: str, **kwargs: object) -> None:
        """As `_call`, straight to each plugin's function when nothing monitors hook calls."""
        functions = self._direct(hook_name)
        if functions is None:
            self._call(hook_name, **kwargs)
            return
        for plugin, function, argnames in functions:
            try:
                function(*[kwargs[name] for name in argnames])
            except Exception as exc:  # one plugin's failure never stops the others
                log_failure(plugin, hook_name, exc)

    # -- calls during execution ---------------------------------------------------------------

    @property
    def observes_lifecycle(self) -> bool:
        """Whether any plugin implements a lifecycle hook (else the engine skips the work)."""
        return any(self.implements(name) for name in _LIFECYCLE_HOOKS)

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        """Pass a task request through every plugin, in pluggy's order."""
        hook_name = "relayflow_prepare_task_request"
        functions = self._direct(hook_name)
        if functions is not None:
            for plugin, function, argnames in functions:
                try:
                    changed = function(request) if argnames else function()
                except Exception as exc:  # one plugin's failure never stops the others
                    log_failure(plugin, hook_name, exc)
                    continue
                if changed is None:
                    continue
                if type(changed) is not type(request) and inspect.isawaitable(changed):
                    log.error("plugin %s: %s must not be async; ignored", plugin, hook_name)
                    if inspect.iscoroutine(changed):
                        changed.close()
                    continue
                request = cast("TaskRequest", changed)
            return request
        # `_each` reads the arguments just before each call: each plugin sees the last result.
        arguments: dict[str, object] = {"request": request}
        for plugin, changed in self._each(hook_name, lambda _plugin: arguments):
            if inspect.isawaitable(changed):
                log.error("plugin %s: %s must not be async; ignored", plugin, hook_name)
                if inspect.iscoroutine(changed):
                    changed.close()
                continue
            arguments["request"] = changed
        return cast("TaskRequest", arguments["request"])

    def task_outcome(self, request: TaskRequest, outcome: TaskOutcome) -> None:
        """Tell plugins how a task request went."""
        self._call_direct("relayflow_task_outcome", request=request, outcome=outcome)

    def notify(self, committed: Sequence[tuple[str, str, Sequence[HistoryEvent]]]) -> None:
        """Call the lifecycle hooks for what one transaction committed, then the batch hook.

        `relayflow_history_committed` is called once, with all of it.

        Args:
            committed: ``(flow_name, execution_name, events)`` an execution, in commit order.
        """
        if self._wants_events():
            for flow_name, execution_name, events in committed:
                self._notify_events(flow_name, execution_name, events)
        hook_name = "relayflow_history_committed"
        functions = self._direct(hook_name)
        if functions is None:
            self._call(hook_name, history=CommittedHistory(committed))
        elif functions:
            history = CommittedHistory(committed)
            for plugin, function, argnames in functions:
                try:
                    function(history) if argnames else function()
                except Exception as exc:  # one plugin's failure never stops the others
                    log_failure(plugin, hook_name, exc)

    def _wants_events(self) -> bool:
        """Whether any per-event lifecycle hook has a caller (monitored calls count as one).

        A plugin that takes the whole transaction (`relayflow_history_committed`) then spares
        the engine a walk over every event for nothing.
        """
        for hook_name in _EVENT_HOOKS:
            functions = self._direct(hook_name)
            if functions is None or functions:
                return True
        return False

    def _notify_events(
        self, flow_name: str, execution_name: str, events: Iterable[HistoryEvent]
    ) -> None:
        for event in events:
            target = HOOK_FOR_EVENT.get(event.type)
            if target is None:
                continue
            hook_name, wrapper = target
            functions = self._direct(hook_name)
            if functions is None:
                spec = getattr(self._pm.hook, hook_name).spec
                (argument,) = spec.argnames  # each lifecycle hook takes one argument
                self._call(hook_name, **{argument: wrapper(flow_name, execution_name, event)})
                continue
            if not functions:
                continue
            hooked = wrapper(flow_name, execution_name, event)
            for plugin, function, argnames in functions:
                try:
                    function(hooked) if argnames else function()
                except Exception as exc:  # one plugin's failure never stops the others
                    log_failure(plugin, hook_name, exc)

    # -- the engine's own work ------------------------------------------------------------------

    def implements(self, hook_name: str) -> bool:
        """Whether any registered plugin implements ``hook_name`` (callers skip work if not)."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

    @property
    def observes_work(self) -> bool:
        """Whether any plugin implements a work hook (else the engine skips timing its work)."""
        return any(self.implements(name) for name in _WORK_HOOKS)

    def engine_started(self, engine: Engine) -> None:
        """Tell plugins the engine runs."""
        self._call("relayflow_engine_started", engine=engine)

    def engine_stopping(self, engine: Engine) -> None:
        """Tell plugins the engine is about to stop."""
        self._call("relayflow_engine_stopping", engine=engine)

    def api_request_finished(self, request: ApiRequestEvent) -> None:
        """Tell plugins an API request was answered."""
        self._call_direct("relayflow_api_request_finished", request=request)

    def batch_committed(self, batch: CommitEvent | WriterCommit) -> None:
        """Tell plugins the writer committed a transaction.

        The engine hands over its own `WriterCommit` (it imports nothing of this package);
        plugins get it as a `CommitEvent`.
        """
        if not isinstance(batch, CommitEvent):
            batch = CommitEvent(batch.jobs, batch.seconds, batch.store)
        self._call_direct("relayflow_batch_committed", batch=batch)

    def outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        """Tell plugins a task request left the outbox."""
        self._call_direct("relayflow_outbox_dispatched", resource=resource, lag_seconds=lag_seconds)

    def timers_fired(self, count: int, lag_seconds: float) -> None:
        """Tell plugins timers fired."""
        self._call_direct("relayflow_timers_fired", count=count, lag_seconds=lag_seconds)
