"""Finding, loading and calling plugins: a typed face over pluggy.

Plugins come from three places, in this order:

1. installed distributions with an entry point in the group `relayflow`;
2. local modules named in `relayflow.toml` under `[plugins] modules` (looked up from the
   current directory first, then the Python path), the way pytest treats a conftest.py;
3. objects registered in code with `PluginManager.register` (tests, embedding programs).

`[plugins] load` (or `RELAYFLOW_LOAD_PLUGINS=a,b`) keeps only the named entry-point plugins;
`[plugins] disable` (or `RELAYFLOW_DISABLE_PLUGINS=a,b`) drops the named ones. A plugin that
fails to import is reported by `relayflow plugins` and skipped; it never stops the engine.

Every hook is called in pluggy's order (the last registered first, `tryfirst` and `trylast`
applied). `relayflow_start_local_workers` is one pluggy call; the other hooks call each plugin
through a pluggy call of its own (`PluginManager._each`), so that one failing plugin does not
silence the others and hook-call monitoring still sees every call. The hooks called for every
history event and task request go straight to each plugin's function instead (`_direct`),
the same calls in the same order without pluggy's few microseconds a call, as long as no
hook-call monitoring or tracing is on (then they go through pluggy too).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pluggy
from pydantic import BaseModel, ValidationError

from relayflow.config import Config, ConfigError, describe_validation_error
from relayflow.plugins import hookspecs
from relayflow.plugins.events import (
    HOOK_FOR_EVENT,
    ApiRequestEvent,
    CommitEvent,
    CommittedHistory,
)

if TYPE_CHECKING:
    import click

    from relayflow.engine.engine import Engine
    from relayflow.engine.hooks import WriterCommit
    from relayflow.engine.integration import Integration, TaskOutcome, TaskRequest
    from relayflow.store.records import HistoryEvent

__all__ = ["IntegrationSpec", "PluginInfo", "PluginManager"]

log = logging.getLogger("relayflow.plugins")

ENTRY_POINT_GROUP = "relayflow"
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

#: Paths `relayflow server` serves itself; plugins may not take them.
_RESERVED_PATHS = frozenset({"/", "/health", "/ready"})


def _route_problem(path: object) -> str | None:
    """Why a plugin may not serve ``path``, or None."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 200:
        return f"a route must be an absolute path of at most 200 characters, got {path!r:.60}"
    if path in _RESERVED_PATHS or path == "/console" or path.startswith("/console/"):
        return f"{path} is served by relayflow itself"
    if any(c.isspace() or c in "?#" for c in path):
        return f"a route must be a plain path without spaces, ? or #, got {path!r:.60}"
    return None


#: Says how one plugin's failing call is reported: (plugin name, hook name, the exception).
_OnFailure = Callable[[str, str, Exception], None]


def _log_failure(plugin: str, hook_name: str, exc: Exception) -> None:
    log.error("plugin %s failed in %s", plugin, hook_name, exc_info=exc)


@dataclass(frozen=True)
class IntegrationSpec:
    """A registered integration: its name, how to build it, and its configuration model."""

    name: str
    factory: Callable[[Any], Integration]
    config_model: type[BaseModel] | None
    plugin: str


@dataclass
class PluginInfo:
    """One plugin, as `relayflow plugins` lists it."""

    name: str
    source: str  # "entry point", "module" or "code"
    version: str = ""
    hooks: list[str] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "hooks": self.hooks,
            "integrations": self.integrations,
            "error": self.error,
        }


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class PluginManager:
    """The plugins of one process, and typed calls into them."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._integrations: dict[str, IntegrationSpec] | None = None
        self._config_models: dict[str, type[BaseModel]] | None = None
        self._lists: tuple[list[str] | None, set[str]] = (None, set())
        self._callers: dict[str, list[tuple[str, pluggy.HookCaller]]] = {}
        self._functions: dict[str, list[tuple[str, Callable[..., object], tuple[str, ...]]]] = {}

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Config) -> PluginManager:
        """Load every plugin the configuration and the environment allow."""
        manager = cls()
        manager.load_entry_points(config)
        manager.load_modules(config.plugins.modules)
        return manager

    def configure(self, config: Config) -> None:
        """Call `relayflow_configure` once the configuration has been checked."""
        self._call("relayflow_configure", config=config, plugins=self)

    def _allowed(self, name: str) -> bool:
        allow, deny = self._lists
        return name not in deny and (allow is None or name in allow)

    def load_entry_points(self, config: Config) -> None:
        """Import the installed plugins of the group `relayflow`, minding allow and deny lists."""
        allow = _env_list("RELAYFLOW_LOAD_PLUGINS")
        if allow is None:
            allow = config.plugins.load
        deny = set(config.plugins.disable) | set(_env_list("RELAYFLOW_DISABLE_PLUGINS") or [])
        self._lists = (allow, deny)
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if self._allowed(ep.name):
                self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        version = ep.dist.version if ep.dist is not None else ""
        info = PluginInfo(ep.name, "entry point", version)
        self.infos[ep.name] = info
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, never fatal
            info.error = _one_line(exc)
            log.warning("plugin %s failed to load: %s", ep.name, info.error)
            return
        self._register(plugin, ep.name, info)

    def load_modules(self, names: Iterable[str]) -> None:
        """Register local modules as plugins (the current directory comes first on the path)."""
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        for name in names:
            info = PluginInfo(name, "module")
            self.infos[name] = info
            try:
                module = importlib.import_module(name)
            except Exception as exc:
                info.error = _one_line(exc)
                log.warning("plugin module %s failed to load: %s", name, info.error)
                continue
            self._register(module, name, info)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module from code."""
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(label, "code")
        self.infos[label] = info
        self._register(plugin, label, info)

    def _register(self, plugin: object, name: str, info: PluginInfo) -> None:
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()  # a relayflow_* function no hook has: a misspelt name
            self._refuse_wrappers(plugin)
        except Exception as exc:  # a hook with a wrong name or signature
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            info.error = _one_line(exc)
            log.warning("plugin %s cannot be registered: %s", name, info.error)
            return
        finally:
            self._callers.clear()
            self._functions.clear()
        info.hooks = sorted(hook.name for hook in self._pm.get_hookcallers(plugin) or [])
        self._integrations = None
        self._config_models = None

    def _refuse_wrappers(self, plugin: object) -> None:
        """Refuse a wrapper on a hook that calls each plugin on its own (see `_each`)."""
        for hook in self._pm.get_hookcallers(plugin) or []:
            if hook.name in hookspecs.PLUGGY_CALLED:
                continue
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                    raise TypeError(
                        f"{hook.name} cannot be a wrapper (wrapper=True or hookwrapper=True): "
                        "relayflow calls each plugin's implementation of it on its own"
                    )

    # -- calling hooks ------------------------------------------------------------------------

    def _each(
        self,
        hook_name: str,
        arguments: Callable[[str], Mapping[str, object]],
        on_failure: _OnFailure = _log_failure,
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
                _log_failure(plugin, hook_name, exc)

    # -- registrations ------------------------------------------------------------------------

    def integration_specs(self) -> dict[str, IntegrationSpec]:
        """Every registered integration, by name, in the order the engine asks them.

        That is pluggy's order: the integrations of the plugin registered last come first, and
        when two plugins register one name, the one called first keeps it.
        """
        if self._integrations is not None:
            return self._integrations
        from relayflow.fdl.resources import register_resource_service  # loads the FDL models

        specs: dict[str, IntegrationSpec] = {}

        def register_for(plugin: str) -> Mapping[str, object]:
            def register(
                name: str,
                factory: Callable[[Any], Integration],
                config_model: type[BaseModel] | None = None,
                *,
                services: Iterable[str] = (),
            ) -> None:
                if name in specs:
                    log.warning(
                        "plugin %s registers the integration %s again; %s's is used",
                        plugin,
                        name,
                        specs[name].plugin,
                    )
                    return
                for service in [services] if isinstance(services, str) else services:
                    register_resource_service(service, name)
                specs[name] = IntegrationSpec(name, factory, config_model, plugin)
                info = self.infos.get(plugin)
                if info is not None and name not in info.integrations:
                    info.integrations.append(name)

            served: hookspecs.IntegrationRegister = register
            return {"register": served}

        for _ in self._each("relayflow_register_integrations", register_for, self._fail):
            pass
        self._integrations = specs
        return specs

    def _fail(self, plugin: str, hook_name: str, exc: Exception) -> None:
        info = self.infos.setdefault(plugin, PluginInfo(plugin, "code"))
        info.error = _one_line(exc)
        log.warning("plugin %s failed in %s: %s", plugin, hook_name, info.error)

    def config_models(self) -> dict[str, type[BaseModel]]:
        """Configuration tables registered by plugins, by table name."""
        if self._config_models is None:
            models: dict[str, type[BaseModel]] = {}

            def register(table: str, model: type[BaseModel]) -> None:
                models[table] = model

            typed: hookspecs.ConfigModelRegister = register
            for _ in self._each(
                "relayflow_register_config_models",
                lambda _plugin: {"register": typed},
                self._fail,
            ):
                pass
            self._config_models = models
        return self._config_models

    def settings(self, config: Config, table: str) -> BaseModel | None:
        """A plugin's validated table, or None when the file has none.

        Raises:
            ConfigError: the table does not fit its model.
        """
        model = self.config_models().get(table)
        if model is None:
            raise KeyError(f"no plugin registered the table [{table}]")
        raw = config.sections.get(table)
        try:
            return model.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(config.source, exc, table)) from None

    def check_config(self, config: Config) -> None:
        """Check every plugin-owned table of the configuration.

        Raises:
            ConfigError: a table nobody owns, or a table its owner rejects.
        """
        models = self.config_models()
        for table in config.sections:
            if table not in models:
                core = ["client", "engine", "integrations", "plugins", "server"]
                known = ", ".join(sorted([*core, *models]))
                raise ConfigError(f"{config.source}: unknown table [{table}]; known: {known}")
            self.settings(config, table)
        specs = self.integration_specs()
        disabled = set(config.plugins.disable)
        for name in config.integrations:
            if name not in specs and name not in disabled:
                known = ", ".join(sorted(specs)) or "none"
                raise ConfigError(
                    f"{config.source}: [integrations.{name}] configures no installed "
                    f"integration; installed: {known}"
                )
        for spec in specs.values():
            self._integration_settings(config, spec)

    def _integration_settings(self, config: Config, spec: IntegrationSpec) -> Any:
        raw = config.integrations.get(spec.name)
        if spec.config_model is None:
            return raw
        try:
            return spec.config_model.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            raise ConfigError(
                describe_validation_error(config.source, exc, f"integrations.{spec.name}")
            ) from None

    def integrations(self, config: Config) -> list[Integration]:
        """Build every registered integration with its configuration table.

        Raises:
            ConfigError: an integration's table does not fit its model.
        """
        built: list[Integration] = []
        for spec in self.integration_specs().values():
            settings = self._integration_settings(config, spec)
            try:
                built.append(spec.factory(settings))
            except ConfigError:
                raise
            except Exception as exc:
                self._fail(spec.plugin, "its integration factory", exc)
        return built

    def start_local_workers(
        self, workers: list[tuple[str, str]], engine: Engine, integrations: list[Integration]
    ) -> list[Callable[[], None]]:
        """Ask plugins to run workers in this process; return the functions that stop them."""
        stoppers = self._pm.hook.relayflow_start_local_workers(
            workers=workers, engine=engine, integrations=integrations
        )
        return [cast("Callable[[], None]", stop) for stop in stoppers]

    def register_commands(self, cli: click.Group) -> None:
        """Let plugins add commands to the command line."""
        for _ in self._each(
            "relayflow_register_commands", lambda _plugin: {"cli": cli}, self._fail
        ):
            pass

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
                    _log_failure(plugin, hook_name, exc)
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
                    _log_failure(plugin, hook_name, exc)

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
                    _log_failure(plugin, hook_name, exc)

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

    def http_routes(self) -> dict[str, hookspecs.AsgiApp]:
        """The extra `GET` paths plugins serve, each with its ASGI app.

        Raises:
            ConfigError: a path is reserved, malformed, or registered by two plugins.
        """
        routes: dict[str, tuple[str, hookspecs.AsgiApp]] = {}
        problems: list[str] = []

        def register_for(plugin: str) -> Mapping[str, object]:
            def register(path: str, app: hookspecs.AsgiApp) -> None:
                problem = _route_problem(path)
                if problem is None and path in routes:
                    problem = f"{path} is already served by plugin {routes[path][0]}"
                if problem is not None:
                    problems.append(f"plugin {plugin}: {problem}")
                    return
                routes[path] = (plugin, app)

            return {"register": register}

        for _ in self._each("relayflow_register_http_routes", register_for, self._fail):
            pass
        if problems:
            raise ConfigError("; ".join(problems))
        return {path: app for path, (_plugin, app) in routes.items()}

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

    def hook_names(self) -> list[str]:
        """Every hook relayflow defines."""
        return sorted(name for name in dir(hookspecs) if name.startswith("relayflow_"))

    def modules(self) -> list[ModuleType | object]:
        """The registered plugin objects."""
        return list(self._pm.get_plugins())

    @property
    def pluggy_manager(self) -> pluggy.PluginManager:
        """The pluggy manager underneath, for `add_hookcall_monitoring` and `enable_tracing`.

        Every hook call goes through it; register plugins with `register`, not here.
        """
        return self._pm
