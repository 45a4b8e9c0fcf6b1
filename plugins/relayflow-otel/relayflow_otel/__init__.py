"""relayflow-otel: one OpenTelemetry trace per execution, continued by workers.

Installed, it does nothing until tracing is enabled: this module only registers the `[otel]`
table and, in `relayflow_configure`, reads it. When tracing is on (an endpoint is known and
nothing turns it off) it registers an `EngineTracer` with the plugin manager and starts the
SDK's export thread; when it is off, no hook does any work, no thread runs and no port opens.
See the README for the table, the environment variables and the spans.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# The worker's marker (the same pluggy project as relayflow.plugins.hookimpl): importing this
# package, as `relayflow worker` does for relayflow_otel.worker, must not load the
# configuration models, pydantic or the engine. They are imported when the engine asks.
from relayflow.worker.hooks import hookimpl

if TYPE_CHECKING:
    from relayflow.config import Config
    from relayflow.plugins import ConfigModelRegister, PluginManager
    from relayflow_otel.config import TABLE, OtelSettings, ResolvedSettings, resolve
    from relayflow_otel.engine_spans import EngineTracer
    from relayflow_otel.pipe import PipeSink

__all__ = ["TABLE", "OtelSettings", "ResolvedSettings", "enable", "resolve"]

__version__ = "0.1.0"

#: The name the engine-side hook object is registered under.
ENGINE_PLUGIN_NAME = "otel-engine"

log = logging.getLogger("relayflow.otel")
_LAZY = frozenset({"TABLE", "OtelSettings", "ResolvedSettings", "resolve"})


def __getattr__(name: str) -> Any:
    """The configuration's names, imported on first use (see the import of `hookimpl`)."""
    if name in _LAZY:
        from relayflow_otel import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def relayflow_register_config_models(register: ConfigModelRegister) -> None:
    """Own the `[otel]` table."""
    from relayflow_otel.config import TABLE, OtelSettings

    register(TABLE, OtelSettings)


def enable(settings: ResolvedSettings, plugins: PluginManager) -> EngineTracer:
    """Start exporting and register the engine's tracing hooks with ``plugins``.

    Returns:
        The registered hook object.
    """
    from relayflow_otel.engine_spans import EngineTracer  # the SDK is imported only when on
    from relayflow_otel.export import SpanSink

    sink = SpanSink.from_settings(settings)
    try:  # FC handlers run in this process: their spans go out through the SDK's processor
        from relayflow_otel.worker import trace_handlers

        trace_handlers(sink.resource, sink.processor)
    except Exception:  # the engine's spans do not depend on it
        log.warning("relayflow-otel cannot trace FC handlers", exc_info=True)
    engine_sink = _engine_sink(settings)
    if engine_sink is None:  # gRPC, or no exporter process: the SDK's path, in this process
        tracer = EngineTracer(sink.emit, settings.sampling_ratio)
        tracer.on_stopping = sink.flush
        tracer.on_close = sink.close
    else:
        pipe = engine_sink

        def flush() -> None:
            pipe.flush()
            sink.flush()

        def close() -> None:
            pipe.close()
            sink.close()

        tracer = EngineTracer(
            sampling_ratio=settings.sampling_ratio, emit_records=pipe.emit_records
        )
        tracer.on_stopping = flush
        tracer.on_close = close
    plugins.register(tracer, name=ENGINE_PLUGIN_NAME)
    return tracer


def _engine_sink(settings: ResolvedSettings) -> PipeSink | None:
    """The exporter process for the engine's spans (OTLP/HTTP only), or None."""
    if settings.protocol != "http/protobuf":
        return None
    from relayflow_otel.pipe import PipeSink

    try:
        return PipeSink.from_settings(settings)
    except OSError as exc:
        log.warning("relayflow-otel exports from the engine's process: %s", exc)
        return None


@hookimpl
def relayflow_configure(config: Config, plugins: PluginManager) -> None:
    """Read `[otel]` and the `OTEL_*` variables; when tracing is on, register its hooks."""
    from relayflow.config import ConfigError
    from relayflow_otel.config import TABLE, OtelSettings, resolve

    try:
        table = plugins.settings(config, TABLE)
        settings = resolve(table if isinstance(table, OtelSettings) else OtelSettings())
    except ConfigError as exc:  # the engine runs on, untraced: said once, in one sentence
        log.error("relayflow-otel is off: %s", exc)
        return
    if settings.enabled:
        enable(settings, plugins)
