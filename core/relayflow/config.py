"""`relayflow.toml`: where it is found, what it may say, and one clear sentence when it is wrong.

Found from `--config`, then the `RELAYFLOW_CONFIG` environment variable, then `./relayflow.toml`;
with none of them the defaults apply. Environment variables override the file, with `__`
between table and key: `RELAYFLOW_ENGINE__STORE=sqlite:///other.db`.

    [engine]                           # the engine; every key is optional
    store = "sqlite:///relayflow.db"   # or sqlite:////abs/path.db, memory://
    max_events = 5000

    [plugins]
    modules = ["my_hooks"]             # local modules registered as plugins, like a conftest.py
    load = ["fc"]                      # only these installed plugins (default: all)
    disable = ["audit"]                # never these

    [integrations.fc.functions]        # each integration validates its own table
    "trip/bookTrain" = "trip_functions:book_train"

Core tables are checked strictly; `[integrations.<name>]` tables are checked by the integration
that owns them, and other tables by the plugin that registered them.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from relayflow.engine.model import Limits

__all__ = [
    "AccessKey",
    "ClientConfig",
    "Config",
    "ConfigError",
    "EngineConfig",
    "PluginsConfig",
    "ServerConfig",
    "describe_validation_error",
    "find_config",
    "load_config",
    "redacted",
    "to_toml",
]

DEFAULT_FILE = "relayflow.toml"
ENV_PREFIX = "RELAYFLOW_"
_SECRET_WORDS = ("secret", "password", "token", "passwd", "credential", "private")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class EngineConfig(BaseModel):
    """The `[engine]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = "sqlite:///relayflow.db"
    token_secret: str | None = Field(default=None, min_length=16)
    max_events: int = Field(default=5000, ge=10)
    max_step_data_bytes: int = Field(default=32 * 1024, ge=1024)
    max_wait_seconds: float = Field(default=2 * 24 * 3600, gt=0)
    foreach_concurrency: int = Field(default=100, ge=1, le=10000)
    steps_per_transition: int = Field(default=2000, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)

    def limits(self) -> Limits:
        """The engine limits this table sets."""
        return Limits(
            max_events=self.max_events,
            max_step_data_bytes=self.max_step_data_bytes,
            max_wait_seconds=self.max_wait_seconds,
            foreach_concurrency=self.foreach_concurrency,
            steps_per_transition=self.steps_per_transition,
        )


class AccessKey(BaseModel):
    """One `[[server.access_keys]]` entry: who may call the API, and with which role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    secret: str = Field(min_length=8)
    role: Literal["admin", "worker", "reader"]


class ServerConfig(BaseModel):
    """The `[server]` table: where the API listens and who may call it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    access_keys: list[AccessKey] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    timestamp_window_seconds: int = Field(default=900, ge=1)


class ClientConfig(BaseModel):
    """The `[client]` table: what the CLI, the Python client and workers use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "http://127.0.0.1:8765"
    access_key_id: str | None = None
    access_key_secret: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class PluginsConfig(BaseModel):
    """The `[plugins]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modules: list[str] = Field(default_factory=list)
    load: list[str] | None = None
    disable: list[str] = Field(default_factory=list)


class _Settings(BaseSettings):
    """Core tables, from the file (passed in) and the environment (which wins)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    engine: EngineConfig = EngineConfig()
    plugins: PluginsConfig = PluginsConfig()
    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


class Config(BaseModel):
    """The effective configuration.

    Attributes:
        engine, plugins: the core tables, checked.
        integrations: `[integrations.<name>]` tables as written; each integration checks its own.
        sections: other top-level tables as written; the plugins that registered them check them.
        source: the file read, or `(defaults)`.
    """

    model_config = ConfigDict(frozen=True)

    engine: EngineConfig = EngineConfig()
    plugins: PluginsConfig = PluginsConfig()
    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()
    integrations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sections: dict[str, Any] = Field(default_factory=dict)
    source: str = "(defaults)"

    @property
    def from_file(self) -> bool:
        """Whether a configuration file was read."""
        return self.source != "(defaults)"


def find_config(explicit: str | None = None) -> Path | None:
    """The configuration file to read, or None when there is none."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RELAYFLOW_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def describe_validation_error(where: str, exc: ValidationError, prefix: str = "") -> str:
    """One sentence for the first problem of a pydantic error: file, key, what is wrong."""
    first = exc.errors(include_url=False)[0]
    key = ".".join(str(p) for p in (*([prefix] if prefix else []), *first["loc"]))
    env = ENV_PREFIX + key.upper().replace(".", "__")
    origin = f"{where} (or ${env})" if env in os.environ else where
    if first["type"] == "extra_forbidden":
        return f"{origin}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{origin}: '{key}' is required"
    # The offending value is quoted, unless a key on its path names a secret.
    secret = any(word in str(part).lower() for part in key.split(".") for word in _SECRET_WORDS)
    got = "***" if secret else repr(first.get("input"))
    return f"{origin}: {key}: {first['msg'][:1].lower()}{first['msg'][1:]}, got {got}"


def load_config(explicit: str | None = None) -> Config:
    """Read and check the configuration's core tables.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a core key or value is wrong.
    """
    path = find_config(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = str(path) if path is not None else "the environment"
    core = {k: data.pop(k) for k in ("engine", "plugins", "server", "client") if k in data}
    integrations = data.pop("integrations", {})
    if not isinstance(integrations, dict) or not all(
        isinstance(v, dict) for v in integrations.values()
    ):
        raise ConfigError(
            f"{where}: [integrations] must hold one table per integration, like [integrations.fc]"
        )
    try:
        settings = _Settings(**core)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(where, exc)) from None
    except SettingsError as exc:  # an environment variable that does not parse
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    return Config(
        engine=settings.engine,
        plugins=settings.plugins,
        server=settings.server,
        client=settings.client,
        integrations=integrations,
        sections=data,
        source=str(path) if path is not None else "(defaults)",
    )


def redacted(value: Any, key: str = "") -> Any:
    """A copy of a configuration value with secrets replaced by `***`."""
    if isinstance(value, dict):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, key) for v in value]
    if value is not None and any(word in key.lower() for word in _SECRET_WORDS):
        return "***"
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """Write nested tables as TOML text (enough for `relayflow config show`)."""
    lines: list[str] = []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"[{prefix}]")
    lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items())
    out = "\n".join(lines) + "\n\n" if lines else ""
    for key, table in tables.items():
        out += to_toml(table, f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key))
    return out
