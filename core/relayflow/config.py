"""`relayflow.toml`: where it is found, what it may say, and one clear sentence when it is wrong.

Found from `--config`, then the `RELAYFLOW_CONFIG` environment variable, then `./relayflow.toml`;
with none of them the defaults apply. Environment variables override the file, with `__`
between table and key: `RELAYFLOW_ENGINE__STORE=sqlite:///other.db`.

    [engine]                           # the engine; every key is optional
    store = "sqlite:///relayflow.db"   # or sqlite:////abs/path.db, memory://,
                                       # postgresql://user:${PGPASSWORD}@host:5432/db
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
import re
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from relayflow.errors import RelayflowError
from relayflow.limits import DefinitionLimits, Limits
from relayflow.masking import SECRET_WORDS, mask_text

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
    "mask_text",
    "redacted",
    "to_toml",
]

DEFAULT_FILE = "relayflow.toml"
ENV_PREFIX = "RELAYFLOW_"
# Inside a list of keys (`access_keys`, any key ending in `keys`) only these fields are shown.
_DESCRIPTIVE = ("id", "role", "name", "description")
# A key as people write them (or a list index). Another key under a secret, or an unknown key,
# is shown as `*`: it may be a secret pasted in the wrong place.
_PLAIN_NAME = re.compile(r"[a-z_][a-z_\-]{0,39}[0-9]?|[0-9]{1,9}")
# Errors where a table or a list was expected: what came may hold anything, secrets included,
# so only its kind is named.
_SHAPE_ERRORS = frozenset(
    {
        "model_type",
        "model_attributes_type",
        "dataclass_type",
        "dict_type",
        "list_type",
        "tuple_type",
        "set_type",
        "frozen_set_type",
        "iterable_type",
    }
)


class ConfigError(RelayflowError, ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class EngineConfig(BaseModel):
    """The `[engine]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = "sqlite:///relayflow.db"
    token_secret: str | None = Field(default=None, min_length=16)
    max_events: int = Field(default=5000, ge=10)
    max_step_data_bytes: int = Field(default=32 * 1024, ge=1024)
    # Below pydantic-core's ~200 levels with room for the state that wraps execution data.
    max_json_depth: int = Field(default=64, ge=2, le=150)
    max_definition_bytes: int = Field(default=256 * 1024, ge=1024)
    max_definition_depth: int = Field(default=64, ge=8, le=150)
    max_definition_alias_nodes: int = Field(default=10_000, ge=1)
    max_wait_seconds: float = Field(default=2 * 24 * 3600, gt=0)
    foreach_concurrency: int = Field(default=100, ge=1, le=10000)
    steps_per_transition: int = Field(default=2000, ge=1)
    # None: the store's own default (`Store.default_lease_seconds`: 10 s on PostgreSQL).
    lease_seconds: float | None = Field(default=None, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # A waitForCallback task without timeoutSeconds times out after this long (0: never).
    default_callback_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    # Ended executions older than this many days are deleted (unset: kept for ever).
    retention_days: float | None = Field(default=None, gt=0)

    def definition_limits(self) -> DefinitionLimits:
        """The budgets a flow definition is read within."""
        return DefinitionLimits(
            max_bytes=self.max_definition_bytes,
            max_depth=self.max_definition_depth,
            max_alias_nodes=self.max_definition_alias_nodes,
        )

    def limits(self) -> Limits:
        """The engine limits this table sets."""
        return Limits(
            max_events=self.max_events,
            max_step_data_bytes=self.max_step_data_bytes,
            max_json_depth=self.max_json_depth,
            max_wait_seconds=self.max_wait_seconds,
            foreach_concurrency=self.foreach_concurrency,
            steps_per_transition=self.steps_per_transition,
            default_callback_timeout_seconds=self.default_callback_timeout_seconds,
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
    # Against clients that hold connections or memory without finishing a request: the most a
    # request line and headers may take, how long they and a body may take to arrive, and how
    # many connections may be open at once.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    # Replay protection: each nonce is kept until its request's Timestamp leaves the window,
    # never forgotten earlier; a key that has this many kept is throttled instead.
    max_nonces_per_key: int = Field(default=2_000_000, ge=1)
    max_nonce_length: int = Field(default=128, ge=16, le=4096)
    # After a stop signal, how long to go on serving (with /ready failing) so that a load
    # balancer stops sending calls before the listener closes.
    drain_seconds: float = Field(default=0.0, ge=0, le=600)
    # HTTPS: both files or neither (checked, with the files, when the server starts). The key
    # may be encrypted with tls_key_password. TLS 1.2 is the oldest protocol accepted.
    tls_cert_file: str | None = Field(default=None, min_length=1, max_length=4096)
    tls_key_file: str | None = Field(default=None, min_length=1, max_length=4096)
    tls_key_password: str | None = Field(default=None, max_length=1024)
    tls_min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    # What DescribeRegions answers: the one region this server is. region_endpoint defaults
    # to where the server listens (host:port, as the SDKs take an endpoint).
    region_id: str = Field(default="local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    region_name: str | None = Field(default=None, min_length=1, max_length=128)
    region_endpoint: str | None = Field(default=None, pattern=r"^\S+$", max_length=255)
    # "text": human-readable lines; "json": one JSON object per line for a log collector
    # (relayflow.logs). `relayflow server --log-format` overrides it.
    log_format: Literal["text", "json"] = "text"
    # The web console at /console/ (relayflow.console): on unless turned off; how long a
    # sign-in lasts before the person signs in again.
    console: bool = True
    console_session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60)


class ClientConfig(BaseModel):
    """The `[client]` table: what the CLI, the Python client and workers use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "http://127.0.0.1:8765"
    access_key_id: str | None = None
    access_key_secret: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    # A PEM file (or a folder of them) of the CAs to trust for an https:// endpoint, instead
    # of the public ones: for a server whose certificate a private CA signed.
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)


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


def _names_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _holds_keys(key: str) -> bool:
    return key.lower().endswith("keys")


def _secret_from(parts: list[str]) -> int:
    """The index of the first key of a path that holds secrets, or ``len(parts)``."""
    for index, part in enumerate(parts):
        if _names_secret(part) or _holds_keys(part):
            return index
    return len(parts)


def _every_leaf(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(str(key))
            _every_leaf(item, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _every_leaf(item, found)
    elif value is not None and not isinstance(value, bool):
        found.add(str(value))


def _hidden_leaves(value: Any, key: str, keys: bool, found: set[str]) -> None:
    """Add to ``found`` the strings of ``value`` that `redacted` hides (and odd keys beside)."""
    if value is None:
        return
    if _names_secret(key):
        _every_leaf(value, found)
        return
    keys = keys or _holds_keys(key)
    if isinstance(value, dict):
        for name, item in value.items():
            if keys and not _PLAIN_NAME.fullmatch(str(name)):
                found.add(str(name))
            _hidden_leaves(item, str(name), keys, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _hidden_leaves(item, key, keys, found)
    elif keys and key.lower() not in _DESCRIPTIVE and not isinstance(value, bool):
        found.add(str(value))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple | set | frozenset):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__}"


def _quoted(value: Any) -> str:
    text = repr(redacted(value))
    return text if len(text) <= 200 else text[:200] + "..."


def describe_validation_error(where: str, exc: ValidationError, prefix: str = "") -> str:
    """One sentence for the first problem of a pydantic error: file, key, what is wrong.

    No secret is quoted, whatever the shape of the mistake: not the value of a key that names a
    secret or lies in a list of keys (such as `access_keys`), not a key under one that is not a
    plain field name, not a URL's password anywhere.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    head = prefix.split(".") if prefix else []
    parts = [*head, *(str(p) for p in first["loc"])]
    hidden = _secret_from(parts)
    if first["type"] == "extra_forbidden":
        hidden = min(hidden, len(parts) - 2)  # the unknown key is the input, not a field
    key = ".".join(
        p if i <= hidden or _PLAIN_NAME.fullmatch(p) else "*" for i, p in enumerate(parts)
    )
    origin = where
    for size in range(min(len(parts), hidden + 1), 0, -1):
        env = ENV_PREFIX + "__".join(parts[:size]).upper()
        if env in os.environ:
            origin = f"{where} (or ${env})"
            break
    if first["type"] == "extra_forbidden":
        message = f"{origin}: unknown key '{key}'"
    elif first["type"] == "missing":
        message = f"{origin}: '{key}' is required"
    else:
        if first["type"] in _SHAPE_ERRORS:  # a table or a list was expected: say what came
            got = _kind(first.get("input"))
        else:
            got = "***" if hidden < len(parts) else _quoted(first.get("input"))
        message = f"{origin}: {key}: {first['msg'][:1].lower()}{first['msg'][1:]}, got {got}"
    # A validator's own message may quote what it was given: take out every secret of the input.
    secrets: set[str] = set()
    for error in errors:
        path = [*head, *(str(p) for p in error["loc"])] or [""]
        if any(_names_secret(part) for part in path):
            _every_leaf(error.get("input"), secrets)
        else:
            keys = any(_holds_keys(part) for part in path[:-1])
            _hidden_leaves(error.get("input"), path[-1], keys, secrets)
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        message = message.replace(secret, "***")
    return mask_text(message)


def _structured(annotation: Any) -> str | None:
    """'list' or 'table' for a type pydantic-settings reads from the environment as JSON."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        kinds = [kind for arg in get_args(annotation) if (kind := _structured(arg))]
        return kinds[0] if kinds else None
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return "list"
    if origin is dict or annotation is dict:
        return "table"
    if origin is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return None


def _field_type(parts: list[str]) -> Any:
    """The type of the core key an environment variable's name leads to, or None."""
    model: Any = _Settings
    annotation: Any = None
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        annotation = fields[part].annotation
        model = annotation
    return annotation


def _unparsable(where: str, exc: SettingsError) -> str:
    """One sentence for an environment variable that pydantic-settings could not parse.

    Its message, and the error it wraps, may carry the variable's raw value, which may be a
    secret: only the field's name is taken from it, and the variable is found again here.
    """
    match = re.search(r'field "([A-Za-z0-9_]+)"', str(exc))
    field = match.group(1).lower() if match else ""
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if field and parts[0] != field:
            continue
        kind = _structured(_field_type(parts))
        if kind is None:
            continue
        try:
            json.loads(os.environ[name])
        except ValueError:
            example = '["a", "b"]' if kind == "list" else '{"key": "value"}'
            return (
                f"{where}: ${name} is not valid JSON; a {kind} in an environment variable is "
                f"written in JSON, like {example}"
            )
    variables = f"${ENV_PREFIX}{field.upper()}*" if field else f"${ENV_PREFIX}*"
    return (
        f"{where}: a {variables} environment variable does not parse; lists and tables in "
        "environment variables are written in JSON"
    )


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
        raise ConfigError(_unparsable(where, exc)) from None
    return Config(
        engine=settings.engine,
        plugins=settings.plugins,
        server=settings.server,
        client=settings.client,
        integrations=integrations,
        sections=data,
        source=str(path) if path is not None else "(defaults)",
    )


def redacted(value: Any, key: str = "", _keys: bool = False) -> Any:
    """A copy of a configuration value to print, with every secret replaced by `***`.

    A key that names a secret hides its whole value, whatever its shape; in a list of keys
    (`access_keys`, any key ending in `keys`) only descriptive fields (`id`, `role`, ...) show;
    every other string has its URL passwords and secret parameters masked (`mask_text`).
    """
    if value is None:
        return None
    if _names_secret(key):
        return "***"
    keys = _keys or _holds_keys(key)
    if isinstance(value, dict):
        return {k: redacted(v, str(k), keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v, key, keys) for v in value]
    if keys and key.lower() not in _DESCRIPTIVE:
        return "***"
    if isinstance(value, str):
        return mask_text(value)
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
