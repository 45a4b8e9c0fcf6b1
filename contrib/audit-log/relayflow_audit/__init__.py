"""relayflow-audit: a JSON-lines audit log of every lifecycle event of every execution.

One line per event the lifecycle hooks report (execution started and finished, step entered
and exited, task scheduled, submitted and completed), for example::

    {"time": "2026-11-28T11:31:45.892Z", "flow": "orders", "execution": "order-7",
     "type": "TaskScheduled", "event_id": 6, "step": "charge", "task_id": 6}

(one line in the file; wrapped here). Configured by its own table of relayflow.toml::

    [audit]
    path = "audit.jsonl"        # default: relayflow-audit.jsonl

Where the settings come from, first answer kept:

1. a path given in code: `relayflow_audit.configure("audit.jsonl")`;
2. the environment variable `RELAYFLOW_AUDIT__PATH`;
3. `[audit] path` of the configuration the command line loaded (`--config`, else
   `$RELAYFLOW_CONFIG`, else `./relayflow.toml`), handed over by the `relayflow_configure`
   hook; a program that embeds the engine without it gets the file `load_config()` finds;
4. `relayflow-audit.jsonl`.

A relative path is taken from the current directory when the log is opened. The table is also
registered through `relayflow_register_config_models`, so `relayflow validate --strict`,
`relayflow run` and `relayflow server` reject a misspelt key before the engine starts, and
`relayflow config show` prints it.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relayflow.config import Config, ConfigError, describe_validation_error, load_config
from relayflow.plugins import (
    ExecutionEvent,
    LifecycleEvent,
    PluginManager,
    StepEvent,
    TaskEvent,
    hookimpl,
)

__all__ = [
    "DEFAULT_PATH",
    "ENV_PATH",
    "TABLE",
    "AuditLog",
    "AuditSettings",
    "configure",
    "current",
    "record_for",
]

__version__ = "0.1.0"

#: The table of relayflow.toml this plugin owns.
TABLE = "audit"
#: Where the log goes when nothing says otherwise.
DEFAULT_PATH = "relayflow-audit.jsonl"
#: The environment variable that overrides `[audit] path`, spelt like relayflow's own overrides.
ENV_PATH = "RELAYFLOW_AUDIT__PATH"


class AuditSettings(BaseModel):
    """The `[audit]` table.

    Attributes:
        path: the JSON-lines file the log is appended to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(default=DEFAULT_PATH, min_length=1)


def configured_path() -> Path:
    """The log's path from the environment or the configuration file (steps 2 to 4 above).

    Returns:
        The path as written, possibly relative.

    Raises:
        ConfigError: the configuration file cannot be read, or its `[audit]` table is wrong.
    """
    env = os.environ.get(ENV_PATH)
    if env:
        return Path(env)
    config = load_config()
    raw = config.sections.get(TABLE)
    try:
        settings = AuditSettings.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(config.source, exc, TABLE)) from None
    return Path(settings.path)


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_for(event: LifecycleEvent) -> dict[str, Any]:
    """The audit record of one lifecycle event.

    Args:
        event: what a lifecycle hook received.

    Returns:
        `time` (ISO 8601, UTC), `flow`, `execution`, `type`, `event_id` and `step` (None for
        execution events); `status` for execution events, `task_id` for task events, and
        `error` when the event carries one. Inputs and outputs are left out on purpose: they
        may be large or sensitive.
    """
    history = event.event
    record: dict[str, Any] = {
        "time": _timestamp(history.time),
        "flow": event.flow_name,
        "execution": event.execution_name,
        "type": history.type,
        "event_id": history.event_id,
        "step": history.step_name or None,
    }
    if isinstance(event, ExecutionEvent):
        record["status"] = event.status
    if isinstance(event, TaskEvent):
        record["task_id"] = event.task_id
    error = history.detail.get("error")
    if error:
        record["error"] = error
    return record


class AuditLog:
    """An append-only JSON-lines file, opened on the first record.

    Writing one short line and flushing it takes microseconds, so records are written on the
    engine's event loop, in the order the engine committed the events.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remember where to write.

        Args:
            path: the file; None means "ask `configured_path()` on the first record".
        """
        self._path = Path(path) if path is not None else None
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The file, absolute, deciding it now if no record decided it yet.

        Raises:
            ConfigError: the configuration cannot be read.
        """
        if self._path is None or not self._path.is_absolute():
            self._path = (self._path or configured_path()).resolve()
        return self._path

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line.

        Args:
            record: a JSON-ready mapping.

        Raises:
            ConfigError: the configuration cannot be read (on the first record).
            OSError: the file cannot be opened or written.
        """
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                path = self.path
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def event(self, event: LifecycleEvent) -> None:
        """Append the record of one lifecycle event.

        Args:
            event: what a lifecycle hook received.
        """
        self.write(record_for(event))

    def close(self) -> None:
        """Close the file; a later record opens it again."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


_current = AuditLog()


def configure(path: str | os.PathLike[str] | None = None) -> AuditLog:
    """Replace the process's audit log (closing the old one), for programs and tests.

    Args:
        path: where to write; None goes back to reading the configuration on the next event.

    Returns:
        The new log.
    """
    global _current
    _current.close()
    _current = AuditLog(path)
    return _current


def current() -> AuditLog:
    """The audit log the hooks write to."""
    return _current


@atexit.register
def _close_at_exit() -> None:
    _current.close()


# -- hooks --------------------------------------------------------------------------------------


@hookimpl
def relayflow_configure(config: Config, plugins: PluginManager) -> None:
    """Take `[audit] path` from the configuration the command line loaded.

    Args:
        config: the checked configuration.
        plugins: relayflow's plugin manager, which validates the `[audit]` table.
    """
    settings = plugins.settings(config, TABLE)
    if _current._path is None and not os.environ.get(ENV_PATH):  # nothing chosen in code
        configure(getattr(settings, "path", DEFAULT_PATH))


@hookimpl
def relayflow_register_config_models(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Own the `[audit]` table, so that relayflow checks it and `config show` prints it.

    Args:
        register: relayflow's ``register(table, model)``.
    """
    register(TABLE, AuditSettings)


@hookimpl
def relayflow_execution_started(execution: ExecutionEvent) -> None:
    """Log ExecutionStarted.

    Args:
        execution: the event.
    """
    _current.event(execution)


@hookimpl
def relayflow_execution_finished(execution: ExecutionEvent) -> None:
    """Log ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut or ExecutionStopped.

    Args:
        execution: the event.
    """
    _current.event(execution)


@hookimpl
def relayflow_step_entered(step: StepEvent) -> None:
    """Log StepEntered.

    Args:
        step: the event.
    """
    _current.event(step)


@hookimpl
def relayflow_step_exited(step: StepEvent) -> None:
    """Log StepExited.

    Args:
        step: the event.
    """
    _current.event(step)


@hookimpl
def relayflow_task_scheduled(task: TaskEvent) -> None:
    """Log TaskScheduled.

    Args:
        task: the event.
    """
    _current.event(task)


@hookimpl
def relayflow_task_submitted(task: TaskEvent) -> None:
    """Log TaskSubmitted.

    Args:
        task: the event.
    """
    _current.event(task)


@hookimpl
def relayflow_task_completed(task: TaskEvent) -> None:
    """Log TaskSucceeded, TaskFailed or TaskTimedOut.

    Args:
        task: the event.
    """
    _current.event(task)
