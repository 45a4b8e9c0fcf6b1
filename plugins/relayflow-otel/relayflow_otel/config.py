"""The `[otel]` table of relayflow.toml, and the standard `OTEL_*` variables under it.

The table is validated by `OtelSettings` (registered through `relayflow_register_config_models`,
so `relayflow validate --strict`, `run` and `server` refuse a bad key before starting). Then
`resolve` fills what the file leaves out from the environment: a key written in the file wins
over its variable.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relayflow.config import ConfigError

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "GRPC_MODULE",
    "TABLE",
    "OtelSettings",
    "ResolvedSettings",
    "resolve",
]

#: The table of relayflow.toml this plugin owns.
TABLE = "otel"
DEFAULT_SERVICE_NAME = "relayflow"
#: The module the `grpc` protocol needs (distribution opentelemetry-exporter-otlp-proto-grpc).
GRPC_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
_TRACES_PATH = "/v1/traces"

# Limits on what the table and the variables may hold (documented in the README).
MAX_URL = 2000
MAX_NAME = 200
MAX_VALUE = 1000
MAX_ATTRIBUTES = 64
MAX_HEADERS = 32
MAX_HEADER_VALUE = 4000
MAX_TIMEOUT = 60.0
MAX_QUEUE = 100_000
#: The engine ends a whole transaction's spans at once (a group commit of 1,000 transitions
#: ends 2,000): the queue holds several such bursts while the exporter process catches up.
DEFAULT_QUEUE = 32_768

Protocol = Literal["http/protobuf", "grpc"]


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain spaces")
    return url


def _check_pairs(pairs: Mapping[str, str], limit: int, value_limit: int, what: str) -> None:
    if len(pairs) > limit:
        raise ValueError(f"holds at most {limit} {what}")
    for key, value in pairs.items():
        if not key or len(key) > MAX_NAME or any(c in key for c in "\r\n\0"):
            raise ValueError(f"a name must be 1 to {MAX_NAME} characters on one line")
        if len(value) > value_limit or any(c in value for c in "\r\n\0"):
            raise ValueError(
                f"the value of {key!r:.60} must be one line of at most {value_limit} characters"
            )


def grpc_available() -> bool:
    """Whether the OTLP/gRPC exporter is installed."""
    try:
        return importlib.util.find_spec(GRPC_MODULE) is not None
    except ModuleNotFoundError:
        return False


def _check_protocol(protocol: str) -> str:
    if protocol == "grpc" and not grpc_available():
        raise ValueError(
            "'grpc' needs the package opentelemetry-exporter-otlp-proto-grpc; install it or "
            "use 'http/protobuf'"
        )
    return protocol


class OtelSettings(BaseModel):
    """The `[otel]` table, as written: every key optional.

    Attributes:
        enabled: trace or not; by default, on when an endpoint is known (here or in
            `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`).
        endpoint: the collector's OTLP/HTTP base URL (`/v1/traces` is appended unless the
            path already ends with it).
        protocol: `http/protobuf`, or `grpc` when its exporter is installed.
        service_name: the resource's `service.name`.
        sampling_ratio: the share of executions traced, 0 to 1, decided on the trace id.
        resource_attributes: extra resource attributes.
        headers: extra headers of each export request (an API key, say).
        timeout_seconds: the limit of one export request.
        max_queue_size: how many ended spans wait for export at most; more are dropped.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    endpoint: str | None = Field(default=None, min_length=1, max_length=MAX_URL)
    protocol: Protocol | None = None
    service_name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    sampling_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0.0, le=MAX_TIMEOUT)
    max_queue_size: int = Field(default=DEFAULT_QUEUE, ge=1, le=MAX_QUEUE)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str | None) -> str | None:
        return None if value is None else _check_protocol(value)

    @field_validator("resource_attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        _check_pairs(value, MAX_ATTRIBUTES, MAX_VALUE, "attributes")
        return value

    # Header values are checked by `resolve`, whose sentence never quotes them (an API key):
    # a pydantic error here would print the table's input.


@dataclass(frozen=True)
class ResolvedSettings:
    """What the plugin runs with: the table with the environment filled in.

    Attributes:
        enabled: whether tracing is on.
        traces_url: the full URL spans are posted to ("" when none is known).
        protocol, service_name, sampling_ratio, timeout_seconds, max_queue_size: as the table.
        resource_attributes, headers: the environment's, overridden key by key by the file's.
    """

    enabled: bool
    traces_url: str
    protocol: str
    service_name: str
    sampling_ratio: float
    resource_attributes: dict[str, str]
    headers: dict[str, str]
    timeout_seconds: float
    max_queue_size: int


#: `OTEL_TRACES_SAMPLER` values that fix the ratio (the ratio ones read the argument).
_SAMPLERS = {
    "always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_on": 1.0,
    "parentbased_always_off": 0.0,
}

_OFF = ResolvedSettings(
    enabled=False,
    traces_url="",
    protocol="http/protobuf",
    service_name=DEFAULT_SERVICE_NAME,
    sampling_ratio=1.0,
    resource_attributes={},
    headers={},
    timeout_seconds=10.0,
    max_queue_size=DEFAULT_QUEUE,
)


def _pairs(text: str, variable: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (values URL-encoded, as the OTEL spec writes them)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"${variable}: {item.strip()[:60]!r} is not a key=value pair")
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _traces_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.path.rstrip("/").endswith(_TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + _TRACES_PATH


def _env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def resolve(settings: OtelSettings, environ: Mapping[str, str] | None = None) -> ResolvedSettings:
    """Fill what the table leaves out from the standard `OTEL_*` variables.

    Args:
        settings: the validated `[otel]` table.
        environ: the environment (default: `os.environ`).

    Returns:
        The settings to run with.

    Raises:
        ConfigError: a variable's value cannot be used; the sentence names the variable.
    """
    env = os.environ if environ is None else environ
    fileset = settings.model_fields_set
    if "enabled" in fileset and settings.enabled is not None:
        switched: bool | None = settings.enabled
    elif _env_flag(env.get("OTEL_SDK_DISABLED")) or (
        env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none"
    ):
        switched = False
    else:
        switched = None  # on when an endpoint is known
    if switched is False:  # off: the variables are not read, so none of them can be wrong
        return _OFF

    def bad(variable: str, what: str) -> ConfigError:
        return ConfigError(f"${variable}: {what}, got {env.get(variable, '')[:60]!r}")

    traces_url = ""
    if settings.endpoint is not None:
        traces_url = _traces_url(settings.endpoint)
    else:
        for variable, full in (
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", True),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", False),
        ):
            value = env.get(variable, "").strip()
            if value:
                try:
                    _check_url(value)
                except ValueError as exc:
                    raise bad(variable, str(exc)) from None
                if len(value) > MAX_URL:
                    raise bad(variable, f"must be at most {MAX_URL} characters")
                # The signal-specific variable is the full URL; the general one is a base.
                traces_url = value if full else _traces_url(value)
                break

    protocol: str | None = settings.protocol
    if protocol is None:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            value = env.get(variable, "").strip()
            if value:
                if value not in ("http/protobuf", "grpc"):
                    raise bad(variable, "relayflow-otel speaks 'http/protobuf' or 'grpc'")
                try:
                    protocol = _check_protocol(value)
                except ValueError as exc:
                    raise bad(variable, str(exc)) from None
                break
    protocol = protocol or "http/protobuf"

    service_name = settings.service_name or env.get("OTEL_SERVICE_NAME", "").strip()
    if len(service_name) > MAX_NAME:
        raise bad("OTEL_SERVICE_NAME", f"must be at most {MAX_NAME} characters")

    ratio = settings.sampling_ratio
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if ratio is None and sampler in _SAMPLERS:
        ratio = _SAMPLERS[sampler]
    if ratio is None:
        text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        ratio = 1.0
        if text:
            try:
                ratio = float(text)
            except ValueError:
                ratio = math.nan
            if not 0.0 <= ratio <= 1.0:  # NaN fails this too
                raise bad("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1")

    attributes = _pairs(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES")
    attributes.update(settings.resource_attributes)
    headers = _pairs(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""), "OTEL_EXPORTER_OTLP_HEADERS")
    headers.update(
        _pairs(
            env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""), "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        )
    )
    headers.update(settings.headers)
    try:
        _check_pairs(attributes, MAX_ATTRIBUTES, MAX_VALUE, "attributes")
    except ValueError as exc:
        raise bad("OTEL_RESOURCE_ATTRIBUTES", str(exc)) from None
    try:
        _check_pairs(headers, MAX_HEADERS, MAX_HEADER_VALUE, "headers")
    except ValueError as exc:
        where = "[otel] headers" if settings.headers else "$OTEL_EXPORTER_OTLP_HEADERS"
        raise ConfigError(f"{where}: {exc}") from None
    if not service_name:
        service_name = attributes.get("service.name") or DEFAULT_SERVICE_NAME

    timeout = settings.timeout_seconds
    if timeout is None:
        timeout = 10.0
        variable = next(
            (
                v
                for v in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
                if env.get(v)
            ),
            "",
        )
        if variable:  # the spec gives milliseconds
            try:
                timeout = float(env[variable]) / 1000.0
            except ValueError:
                timeout = math.nan
            if not 0.0 < timeout <= MAX_TIMEOUT:
                raise bad(
                    variable,
                    f"must be milliseconds, more than 0 and at most {int(MAX_TIMEOUT * 1000)}",
                )

    enabled = bool(traces_url) if switched is None else switched
    if enabled and not traces_url:
        raise ConfigError(
            "[otel] enabled = true but no endpoint is known: set [otel] endpoint or "
            "$OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    return ResolvedSettings(
        enabled=enabled,
        traces_url=traces_url,
        protocol=protocol,
        service_name=service_name,
        sampling_ratio=ratio,
        resource_attributes=attributes,
        headers=headers,
        timeout_seconds=timeout,
        max_queue_size=settings.max_queue_size,
    )
