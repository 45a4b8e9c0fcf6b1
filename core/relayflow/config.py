"""`relayflow.toml`: where it is found, what it may say, and one clear sentence when it is wrong.

Found from `--config`, then the `RELAYFLOW_CONFIG` environment variable, then `./relayflow.toml`;
with none of them the defaults apply. Today it holds the `[engine]` table::

    [engine]
    store = "sqlite:///relayflow.db"   # or sqlite:////abs/path.db, memory://
    max_events = 5000                  # history events per execution
    max_step_data_bytes = 32768        # a step's input, output or local, as JSON
    max_wait_seconds = 172800          # the longest wait step (2 days)
    foreach_concurrency = 100          # iterations of one foreach at once
    lease_seconds = 30                 # how long claimed work stays with one engine
    poll_seconds = 1.0                 # how often the engine looks for work it was not told of
    # token_secret = "..."             # HMAC secret for task tokens; default: kept in the store
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relayflow.engine.model import Limits

__all__ = ["Config", "ConfigError", "EngineConfig", "find_config", "load_config"]

DEFAULT_FILE = "relayflow.toml"


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


class Config(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineConfig = EngineConfig()
    source: str = Field(default="(defaults)", exclude=True)


def find_config(explicit: str | None = None) -> Path | None:
    """The configuration file to read, or None when there is none."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RELAYFLOW_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_config(explicit: str | None = None) -> Config:
    """Read and check the configuration.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a bad key or value.
    """
    path = find_config(explicit)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _key(tuple(first["loc"]))
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{path}: unknown key '{key}'") from None
        raise ConfigError(
            f"{path}: {key}: {first['msg'].lower()}, got {first.get('input')!r}"
        ) from None
