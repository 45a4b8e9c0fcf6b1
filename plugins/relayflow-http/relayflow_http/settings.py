"""The `[integrations.http]` table of `relayflow.toml`, and how host patterns match a URL.

```toml
[integrations.http]
timeout_seconds = 30                     # optional
max_response_bytes = 1048576             # optional
max_json_depth = 64                      # optional
allowed_hosts = ["api.example.com", "*.internal.example.com:8443"]   # optional; empty: any

[integrations.http.header_env."api.example.com"]
Authorization = "EXAMPLE_API_AUTHORIZATION"   # header name = environment variable name
```

A host pattern is a host name or IP address (`[::1]` for IPv6), optionally with `:port`, and
optionally starting with `*.` to match every subdomain. Without a port it matches any port. The
model is strict, so a misspelt key or a malformed pattern is a one-sentence configuration error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from relayflow_http.params import reserved_reason

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT_SECONDS",
    "HostRule",
    "HttpSettings",
    "host_rule",
]

DEFAULT_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024
# The engine's own default (`engine.max_json_depth`), so the plugin's sentence comes first.
DEFAULT_MAX_JSON_DEPTH: Final = 64

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST = re.compile(
    rf"(?P<wild>\*\.)?(?:(?P<name>{_LABEL}(?:\.{_LABEL})*)|\[(?P<ipv6>[0-9a-f:.]+)\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class HostRule:
    """A parsed host pattern: `host`, `host:port`, `*.domain` or `*.domain:port`."""

    host: str
    port: int | None
    wildcard: bool

    def matches(self, host: str, port: int) -> bool:
        """Whether a URL's host (lowercase, IPv6 without brackets) and port fit the pattern."""
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    @property
    def specificity(self) -> tuple[bool, bool]:
        """Sort key: a pattern with a port, then an exact host, beats a looser one."""
        return (self.port is not None, not self.wildcard)


@lru_cache(maxsize=256)
def host_rule(pattern: str) -> HostRule:
    """Parse a host pattern that `HttpSettings` has already validated.

    Raises:
        ValueError: ``pattern`` is not a host pattern.
    """
    match = _HOST.fullmatch(pattern.lower())
    if match is None:
        raise ValueError(f"not a host pattern: {pattern!r}")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    if match["wild"] and match["ipv6"]:
        raise ValueError("an IPv6 address has no subdomains")
    return HostRule(match["name"] or match["ipv6"], port, bool(match["wild"]))


def _check_host(value: str) -> str:
    try:
        host_rule(value)
    except ValueError:
        raise PydanticCustomError(
            "http_host_pattern",
            'a host is written like "api.example.com", "api.example.com:8443", '
            '"*.example.com" or "[::1]", without a scheme or path',
        ) from None
    return value.lower()


def _check_header(value: str) -> str:
    if not _HEADER.fullmatch(value):
        raise PydanticCustomError(
            "http_header_name", "a header name is letters, digits and -, like X-Api-Key"
        )
    reason = reserved_reason(value)
    if reason is not None:
        raise PydanticCustomError(
            "http_header_reserved",
            "{name} cannot be configured: {reason}",
            {"name": value, "reason": reason},
        )
    return value


def _check_one_spelling(headers: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name in headers:
        first = seen.setdefault(name.lower(), name)
        if first != name:
            raise PydanticCustomError(
                "http_header_twice",
                "names one header twice, as {first} and {name} (header names ignore case)",
                {"first": first, "name": name},
            )
    return headers


def _check_env(value: str) -> str:
    if not _ENV.fullmatch(value):
        raise PydanticCustomError(
            "http_env_name",
            "the value is the name of an environment variable, like EXAMPLE_API_TOKEN, "
            "never the secret itself",
        )
    return value


HostPattern = Annotated[str, AfterValidator(_check_host)]
HeaderName = Annotated[str, AfterValidator(_check_header)]
EnvName = Annotated[str, AfterValidator(_check_env)]
SecretTable = Annotated[dict[HeaderName, EnvName], AfterValidator(_check_one_spelling)]


class HttpSettings(BaseModel):
    """Settings of the `http` integration (the `[integrations.http]` table).

    Attributes:
        timeout_seconds: how long a request may take, connecting and reading the whole answer,
            when the step's serviceParams set no `TimeoutSeconds`.
        allowed_hosts: host patterns requests may go to; empty (the default) allows any host.
        max_response_bytes: the largest answer body read; a larger one fails the task with
            `HTTP.ResponseTooLarge`.
        max_json_depth: how deeply objects and arrays may nest in the step's local; the
            answer's JSON is its `Body`, one level down, so it may nest one level less. Deeper
            JSON fails the task with `HTTP.ResponseTooDeep`.
        header_env: headers whose values come from environment variables, by host pattern:
            `{"api.example.com": {"Authorization": "EXAMPLE_API_AUTHORIZATION"}}`. The
            variable holds the whole header value; it is read at each request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    # A list, not a tuple: `relayflow config show` prints tuples as their repr.
    allowed_hosts: list[HostPattern] = Field(default_factory=list)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0)
    # At least 2: the local is an object, and its Body one level below it. At most 1,000:
    # Python's JSON parser gives up near there.
    max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=2, le=1000)
    header_env: dict[HostPattern, SecretTable] = Field(default_factory=dict)
