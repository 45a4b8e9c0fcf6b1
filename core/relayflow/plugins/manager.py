"""Finding, loading and calling plugins: a typed face over pluggy.

Plugins come from three places, in this order:

1. installed distributions with an entry point in the group `relayflow`;
2. local modules named in `relayflow.toml` under `[plugins] modules` (looked up from the
   current directory first, then the Python path), the way pytest treats a conftest.py;
3. objects registered in code with `PluginManager.register` (tests, embedding programs).

`[plugins] load` (or `RELAYFLOW_LOAD_PLUGINS=a,b`) keeps only the named entry-point plugins;
`[plugins] disable` (or `RELAYFLOW_DISABLE_PLUGINS=a,b`) drops the named ones. A plugin that
fails to import is reported by `relayflow plugins` and skipped; it never stops the engine.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pluggy
from pydantic import BaseModel, ValidationError
from stevedore import ExtensionManager

from relayflow.config import Config, ConfigError, describe_validation_error
from relayflow.engine.model import HistoryEvent
from relayflow.plugins import hookspecs
from relayflow.plugins.events import HOOK_FOR_EVENT

if TYPE_CHECKING:
    import click

    from relayflow.engine.engine import Engine
    from relayflow.engine.integration import Integration, TaskOutcome, TaskRequest

__all__ = ["IntegrationSpec", "PluginInfo", "PluginManager"]

log = logging.getLogger("relayflow.plugins")

ENTRY_POINT_GROUP = "relayflow"
INTEGRATION_DRIVERS = "relayflow.integrations"
_HOOK_ARG = {
    "relayflow_execution_started": "execution",
    "relayflow_execution_finished": "execution",
    "relayflow_step_entered": "step",
    "relayflow_step_exited": "step",
    "relayflow_task_scheduled": "task",
    "relayflow_task_submitted": "task",
    "relayflow_task_completed": "task",
}


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
    source: str  # "entry point", "module", "code", "integration driver"
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
        except Exception as exc:  # a hook with a wrong name or signature
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            info.error = _one_line(exc)
            log.warning("plugin %s cannot be registered: %s", name, info.error)
            return
        info.hooks = sorted(hook.name for hook in self._pm.get_hookcallers(plugin) or [])
        self._integrations = None
        self._config_models = None

    # -- registrations ------------------------------------------------------------------------

    def integration_specs(self) -> dict[str, IntegrationSpec]:
        """Every registered integration, by name: from hooks, then from stevedore drivers."""
        if self._integrations is not None:
            return self._integrations
        specs: dict[str, IntegrationSpec] = {}
        for impl in self._pm.hook.relayflow_register_integrations.get_hookimpls():
            plugin = impl.plugin_name

            def register(
                name: str,
                factory: Callable[[Any], Integration],
                config_model: type[BaseModel] | None = None,
                *,
                _p: str = plugin,
            ) -> None:
                specs[name] = IntegrationSpec(name, factory, config_model, _p)
                info = self.infos.get(_p)
                if info is not None and name not in info.integrations:
                    info.integrations.append(name)

            try:
                impl.function(register=register)
            except Exception as exc:
                self._fail(plugin, exc)
        drivers: ExtensionManager[Any] = ExtensionManager(
            INTEGRATION_DRIVERS, invoke_on_load=False, on_load_failure_callback=self._driver_failed
        )
        for ext in drivers:
            if ext.name not in specs and self._allowed(ext.name):
                factory = ext.plugin
                specs[ext.name] = IntegrationSpec(
                    ext.name,
                    factory,
                    getattr(factory, "config_model", None),
                    f"driver {ext.entry_point.value}",
                )
                info = self.infos.setdefault(
                    f"driver:{ext.name}",
                    PluginInfo(
                        ext.name, "integration driver", getattr(ext.entry_point.dist, "version", "")
                    ),
                )
                info.integrations = [ext.name]
        self._integrations = specs
        return specs

    def _driver_failed(self, manager: Any, entry_point: EntryPoint, exc: BaseException) -> None:
        self.infos[f"driver:{entry_point.name}"] = PluginInfo(
            entry_point.name, "integration driver", error=_one_line(exc)
        )

    def _fail(self, plugin: str, exc: Exception) -> None:
        info = self.infos.setdefault(plugin, PluginInfo(plugin, "code"))
        info.error = _one_line(exc)
        log.warning("plugin %s failed: %s", plugin, info.error)

    def config_models(self) -> dict[str, type[BaseModel]]:
        """Configuration tables registered by plugins, by table name."""
        if self._config_models is None:
            models: dict[str, type[BaseModel]] = {}
            for impl in self._pm.hook.relayflow_register_config_models.get_hookimpls():
                try:
                    impl.function(register=models.__setitem__)
                except Exception as exc:
                    self._fail(impl.plugin_name, exc)
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
                self._fail(spec.plugin, exc)
        return built

    def start_local_workers(
        self, workers: list[tuple[str, str]], engine: Engine, integrations: list[Integration]
    ) -> list[Callable[[], None]]:
        """Ask plugins to run workers in this process; return the functions that stop them."""
        stoppers: list[Callable[[], None]] = []
        for impl in reversed(self._pm.hook.relayflow_start_local_workers.get_hookimpls()):
            stop = impl.function(workers=workers, engine=engine, integrations=integrations)
            if stop is not None:
                stoppers.append(cast("Callable[[], None]", stop))
        return stoppers

    def register_commands(self, cli: click.Group) -> None:
        """Let plugins add commands to the command line."""
        for impl in self._pm.hook.relayflow_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._fail(impl.plugin_name, exc)

    # -- calls during execution ---------------------------------------------------------------

    @property
    def observes_lifecycle(self) -> bool:
        """Whether any plugin implements a lifecycle hook (else the engine skips the work)."""
        return any(getattr(self._pm.hook, name).get_hookimpls() for name in _HOOK_ARG)

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        """Pass a task request through every plugin, in registration order."""
        # pluggy keeps implementations from last to first: call them the way pluggy would.
        for impl in reversed(self._pm.hook.relayflow_prepare_task_request.get_hookimpls()):
            try:
                changed = impl.function(request=request)
            except Exception:
                log.exception(
                    "plugin %s failed in relayflow_prepare_task_request", impl.plugin_name
                )
                continue
            if inspect.isawaitable(changed):
                log.error(
                    "plugin %s: relayflow_prepare_task_request must not be async; ignored",
                    impl.plugin_name,
                )
                if inspect.iscoroutine(changed):
                    changed.close()
                continue
            if changed is not None:
                request = cast("TaskRequest", changed)
        return request

    def task_outcome(self, request: TaskRequest, outcome: TaskOutcome) -> None:
        """Tell plugins how a task request went."""
        self._call("relayflow_task_outcome", request=request, outcome=outcome)

    def notify(self, flow_name: str, execution_name: str, events: Iterable[HistoryEvent]) -> None:
        """Call the lifecycle hooks for committed history events."""
        for event in events:
            target = HOOK_FOR_EVENT.get(event.type)
            if target is None:
                continue
            hook_name, wrapper = target
            self._call(
                hook_name, **{_HOOK_ARG[hook_name]: wrapper(flow_name, execution_name, event)}
            )

    def _call(self, hook_name: str, **kwargs: Any) -> None:
        # Each implementation on its own, so that one failing plugin does not silence the rest.
        for impl in reversed(getattr(self._pm.hook, hook_name).get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception:
                log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)

    def hook_names(self) -> list[str]:
        """Every hook relayflow defines."""
        return sorted(name for name in dir(hookspecs) if name.startswith("relayflow_"))

    def modules(self) -> list[ModuleType | object]:
        """The registered plugin objects."""
        return list(self._pm.get_plugins())
