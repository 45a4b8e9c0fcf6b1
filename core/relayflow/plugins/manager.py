"""Finding, loading and calling plugins: a typed face over pluggy.

Plugins come from three places, in this order:

1. installed distributions with an entry point in the group `relayflow`;
2. local modules named in `relayflow.toml` under `[plugins] modules` (looked up from the
   current directory first, then the Python path), the way pytest treats a conftest.py;
3. objects registered in code with `PluginManager.register` (tests, embedding programs).

`[plugins] load` (or `RELAYFLOW_LOAD_PLUGINS=a,b`) keeps only the named entry-point plugins;
`[plugins] disable` (or `RELAYFLOW_DISABLE_PLUGINS=a,b`) drops the named ones. A plugin that
fails to import is reported by `relayflow plugins` and skipped; it never stops the engine.

Calling the hooks once plugins are loaded is `relayflow.plugins.calls.HookCalls`'s part: every
hook in pluggy's order, one plugin's failure never silencing the others.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pluggy
from pydantic import BaseModel, ValidationError

from relayflow.config import Config, ConfigError, describe_validation_error
from relayflow.plugins import hookspecs
from relayflow.plugins.calls import HookCalls

if TYPE_CHECKING:
    import click

    from relayflow.engine.engine import Engine
    from relayflow.engine.integration import Integration

__all__ = ["IntegrationSpec", "PluginInfo", "PluginManager"]

log = logging.getLogger("relayflow.plugins")

ENTRY_POINT_GROUP = "relayflow"
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


class PluginManager(HookCalls):
    """The plugins of one process, and typed calls into them."""

    def __init__(self) -> None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        super().__init__(pm)
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

    # -- routes and introspection -----------------------------------------------------------

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
