"""The `[prometheus]` table of `relayflow.toml`.

```toml
[prometheus]
enabled = true                     # default false: the plugin does nothing at all
path = "/metrics"                  # where `relayflow server` serves the metrics
allow_from = ["127.0.0.1/32", "10.0.0.0/8"]   # client networks allowed; empty: anyone
buckets = [0.1, 1, 10, 60, 600]    # step, task and worker message durations (seconds)
latency_buckets = [0.001, 0.01, 0.1, 1]        # API, commit, outbox and timer lags
waiting_refresh_seconds = 15       # how often the waiting-task gauges are read from the store
waiting_max_pages = 20             # at most this many ListWaitingWork pages per refresh
max_flows = 1000                   # distinct `flow` label values, then "(other)"
max_resources = 200                # distinct `resource` label values, then "(other)"
max_open_steps = 100000            # step and task starts remembered to time their end
```

The model is strict: a misspelt key or a value out of its range is a one-sentence error naming
`[prometheus]` and the key, and the server does not start.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from relayflow_prometheus.constants import DEFAULT_BUCKETS, DEFAULT_LATENCY_BUCKETS, OTHER

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_LATENCY_BUCKETS",
    "OTHER",
    "PrometheusSettings",
]

MAX_BUCKETS: Final = 40
MAX_PATH_CHARS: Final = 200
MAX_NETWORKS: Final = 100


def _problem(text: str) -> PydanticCustomError:
    """A validation error whose message is ``text`` alone (no "value error," before it)."""
    return PydanticCustomError("prometheus_setting", text.replace("{", "(").replace("}", ")"))


def _buckets(value: list[float] | None) -> list[float] | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_BUCKETS:
        raise _problem(f"must list 1 to {MAX_BUCKETS} bucket bounds, got {len(value)}")
    for low, high in itertools.pairwise(value):
        if not low < high:
            raise _problem(f"bucket bounds must increase, got {low} before {high}")
    if not all(math.isfinite(b) and b > 0 for b in value):
        raise _problem("bucket bounds must be finite numbers of seconds above 0")
    return value


def _path(value: str) -> str:
    if not value.startswith("/") or len(value) > MAX_PATH_CHARS:
        raise _problem(f"must be an absolute path of at most {MAX_PATH_CHARS} characters")
    if any(c.isspace() or c in "?#" for c in value):
        raise _problem("must be a plain path, without spaces, ? or #")
    return value


def _networks(value: list[str]) -> list[str]:
    if len(value) > MAX_NETWORKS:
        raise _problem(f"may list at most {MAX_NETWORKS} networks, got {len(value)}")
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _problem(
                f"{item[:60]!r} is not an IP network such as 10.0.0.0/8 or ::1/128"
            ) from None
    return value


Buckets = Annotated[list[float] | None, AfterValidator(_buckets)]


class PrometheusSettings(BaseModel):
    """The validated `[prometheus]` table; every field has a default.

    Attributes:
        enabled: serve and collect metrics; when False the plugin registers nothing else.
        path: the path of `relayflow server` that answers the scrape (`GET`).
        allow_from: client IP networks that may read the metrics; empty lets anyone. Behind a
            proxy the client is the proxy.
        buckets: histogram bounds of step, task attempt and worker message durations.
        latency_buckets: histogram bounds of API requests, commits, outbox and timer lags.
        waiting_refresh_seconds: how often the waiting-task gauges are read from the store.
        waiting_max_pages: the most ListWaitingWork pages one refresh reads (each reads at
            most 1,000 flows and running executions); past it the gauges are partial and
            `relayflow_waiting_scan_truncated` is 1.
        max_flows: distinct values of the `flow` label; later flows are counted as "(other)".
        max_resources: distinct values of the `resource` label, likewise.
        max_open_steps: step entries and task attempts remembered until they end, to time
            them; past it the oldest is forgotten (and its end not timed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    path: Annotated[str, AfterValidator(_path)] = "/metrics"
    allow_from: Annotated[list[str], AfterValidator(_networks)] = Field(default_factory=list)
    buckets: Buckets = None
    latency_buckets: Buckets = None
    waiting_refresh_seconds: float = Field(default=15.0, ge=1.0, le=3600.0)
    waiting_max_pages: int = Field(default=20, ge=1, le=1000)
    max_flows: int = Field(default=1000, ge=1, le=10000)
    max_resources: int = Field(default=200, ge=1, le=10000)
    max_open_steps: int = Field(default=100_000, ge=100, le=10_000_000)

    def duration_buckets(self) -> tuple[float, ...]:
        """The bounds of duration histograms."""
        return tuple(self.buckets) if self.buckets else DEFAULT_BUCKETS

    def latency_bounds(self) -> tuple[float, ...]:
        """The bounds of latency histograms."""
        return tuple(self.latency_buckets) if self.latency_buckets else DEFAULT_LATENCY_BUCKETS
