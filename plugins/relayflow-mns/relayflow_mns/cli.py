"""`relayflow worker`: run a Python function for every task message on a queue.

The plugin registers `worker` with the `relayflow` command. It reads two tables of
`relayflow.toml`:

    [integrations.mns]
    transport = "redis://localhost:6379/0"         # the broker; default DEFAULT_TRANSPORT
    transport_options = { visibility_timeout = 60 }  # kombu transport options (optional)

    [client]
    endpoint = "http://127.0.0.1:8765"             # where reports go (https:// works too)
    access_key_id = "worker-key"
    access_key_secret = "worker-secret-change-me"
    # ca_file = "/etc/relayflow/ca.pem"            # a private CA that signed the server's
                                                   # certificate (or --ca-file)

`visibility_timeout` in `transport_options` is also the worker's own: how long a message stays
hidden while its task runs, and when a message whose report failed comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from relayflow.cli._common import (
    CONTEXT,
    EXIT_INVALID,
    EXIT_REFUSED,
    CommandError,
    Invalid,
    config_option,
    load_config_or_fail,
)
from relayflow.cli._remote import ca_file_option
from relayflow.client import Client
from relayflow.importing import ImportTargetError, import_callable
from relayflow.logs import configure_logging
from relayflow.worker import WorkerError, check_credentials
from relayflow_mns._transports import DEFAULT_TRANSPORT
from relayflow_mns.worker import Worker, run_worker

if TYPE_CHECKING:
    from relayflow.config import Config
    from relayflow.worker.hooks import WorkerPlugins

# This module is imported only when `relayflow worker` runs (an entry point of the group
# `relayflow.commands`); it loads neither the engine nor the queue integration: a worker
# only receives and reports.

__all__ = [
    "DEFAULT_TRANSPORT",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "EXIT_INVALID",
    "HandlerError",
    "broker_settings",
    "broker_settings_from",
    "load_handler",
    "split_queues",
    "worker",
]
#: Seconds a received message stays hidden when the configuration does not say.
DEFAULT_VISIBILITY_TIMEOUT = 30.0

log = logging.getLogger("relayflow_mns.worker")


#: A `--handler` that cannot be loaded: the project's one `module:function` error.
HandlerError = ImportTargetError


def load_handler(target: str) -> Callable[[Any], Any]:
    """Import ``module:function`` (the function may be dotted, as in `jobs:Jobs.run`).

    The current directory goes to the front of the Python path first, so a module next to
    where the worker starts wins over an installed one of the same name.

    Raises:
        HandlerError: the text is not `module:function`, the module is not found or does not
            import, it lacks the attribute, or the attribute cannot be called.
    """
    return import_callable(target, label="--handler")


def broker_settings(config: Config) -> tuple[str, dict[str, Any], float]:
    """The broker URL, its kombu transport options and the visibility timeout.

    Read from the raw `[integrations.mns]` table: `transport` (default `DEFAULT_TRANSPORT`)
    and `transport_options`, whose `visibility_timeout` (default 30 s) the worker uses too.

    Raises:
        ConfigError: a value has the wrong type.
    """
    from relayflow.config import ConfigError

    try:
        return broker_settings_from(config.integrations.get("mns", {}), config.source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def broker_settings_from(table: Any, source: str) -> tuple[str, dict[str, Any], float]:
    """`broker_settings` from the `[integrations.mns]` table as read from ``source``.

    Raises:
        ValueError: a value has the wrong type; the message names the file and the key.
    """
    where = f"{source}: [integrations.mns]"
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, got {type(table).__name__}")
    url = table.get("transport", DEFAULT_TRANSPORT)
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{where} transport must be a broker URL, got {url!r}")
    options = table.get("transport_options", {})
    if not isinstance(options, dict):
        raise ValueError(f"{where} transport_options must be a table, got {options!r}")
    visibility = options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    if isinstance(visibility, bool) or not isinstance(visibility, int | float) or visibility <= 0:
        raise ValueError(
            f"{where} transport_options.visibility_timeout must be a number of seconds "
            f"above 0, got {visibility!r}"
        )
    return url.strip(), dict(options), float(visibility)


def _settings(config_path: str | None) -> tuple[Client, tuple[str, dict[str, Any], float]]:
    """The client and the broker settings, read without pydantic when that is safe.

    A worker needs two tables; loading the whole configuration would import pydantic-settings
    and the plugins' models for nothing. Whenever the plain TOML reading is unsure (see
    `relayflow.cli._remote.raw_config`), the full reading checks the file as before.

    Raises:
        Invalid: `InvalidConfig`, naming the file and the key.
    """
    from relayflow.cli._remote import (
        ClientSettings,
        fast_client_settings,
        raw_config,
        with_ca_option,
    )

    raw = raw_config(config_path)
    fast = None if raw is None else fast_client_settings(raw)
    try:
        if raw is None or fast is None:
            config = load_config_or_fail(config_path)
            settings = with_ca_option(ClientSettings.of(config.client))
            return settings.client(), broker_settings(config)
        integrations = raw.tables.get("integrations", {})
        table = integrations.get("mns", {}) if isinstance(integrations, dict) else None
        return with_ca_option(fast).client(), broker_settings_from(table, raw.source)
    except ValueError as exc:  # ConfigError too
        raise Invalid("InvalidConfig", str(exc), mask=True) from None


def serve_metrics(plugins: WorkerPlugins, host: str, port: int) -> None:
    """Ask the worker plugins to serve metrics on ``host``:``port``.

    Raises:
        Invalid: `InvalidArgument` for a host that is empty, longer than 253 characters or
            holds spaces; `MetricsUnavailable` when no plugin serves them (none installed,
            or the one installed failed: its reason is in the log above).
    """
    if not host or len(host) > 253 or any(c.isspace() for c in host):
        raise Invalid(
            "InvalidArgument",
            "--metrics-host must be a host name or address of at most 253 characters without "
            f"spaces, got {host[:60]!r}",
        )
    if plugins.serve_metrics(host, port):
        return
    if plugins.implements("relayflow_worker_serve_metrics"):
        raise Invalid(
            "MetricsUnavailable",
            f"no worker plugin could serve metrics on {host}:{port}; the log above says why",
        )
    raise Invalid(
        "MetricsUnavailable",
        f"--metrics-port {port} needs a worker plugin that serves metrics, such as "
        "relayflow-prometheus (pip install relayflow-prometheus); none is installed",
    )


class WorkerFailed(CommandError):
    """The worker stopped on a bug of its own (not a user's mistake): exit 1."""

    exit_code = EXIT_REFUSED


def split_queues(names: tuple[str, ...] | list[str]) -> list[str]:
    """Queue names from arguments that may each hold several, comma-separated (`a,b`).

    Raises:
        Invalid: no name is left, or one is empty (`a,,b`).
    """
    queues = [name.strip() for text in names for name in text.split(",")]
    if not queues or not all(queues):
        raise Invalid(
            "InvalidArgument",
            f"QUEUE must be one or more queue names separated by commas, got {','.join(names)!r}",
        )
    return list(dict.fromkeys(queues))


@click.command("worker", context_settings=CONTEXT)
@click.argument("queues", nargs=-1, required=True, metavar="QUEUE[,QUEUE...]")
@click.option(
    "--handler",
    "handler_path",
    required=True,
    metavar="MODULE:FUNCTION",
    help="The function that does a task. It gets the message body (JSON as Python values, "
    "else text) and returns the task's output, a dict; an exception fails the task with its "
    "class name. MODULE is imported from the current directory first.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    metavar="N",
    type=click.IntRange(min=1, max=1024),
    help="How many messages to handle at once, each on its own thread.",
)
@config_option(
    help="relayflow.toml to use (default: $RELAYFLOW_CONFIG, then ./relayflow.toml). "
    "[integrations.mns] transport is the broker (default "
    f"{DEFAULT_TRANSPORT}); [client] says where to report and with which key."
)
@ca_file_option
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar="RELAYFLOW_WORKER_LOG_FORMAT",
    type=click.Choice(["text", "json"]),
    help="text: human-readable lines; json: one JSON object per line (time, level, logger, "
    "message) for a log collector. Also $RELAYFLOW_WORKER_LOG_FORMAT.",
)
@click.option(
    "--metrics-port",
    default=None,
    metavar="PORT",
    envvar="RELAYFLOW_WORKER_METRICS_PORT",
    type=click.IntRange(min=1, max=65535),
    help="Serve the worker's metrics for Prometheus on this port (a worker plugin such as "
    "relayflow-prometheus must be installed). Also $RELAYFLOW_WORKER_METRICS_PORT.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    envvar="RELAYFLOW_WORKER_METRICS_HOST",
    help="The address --metrics-port listens on; 0.0.0.0 for every interface. "
    "Also $RELAYFLOW_WORKER_METRICS_HOST.",
)
def worker(
    queues: tuple[str, ...],
    handler_path: str,
    concurrency: int,
    config_path: str | None,
    log_format: str,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a Python function for every task message on QUEUE and report the results.

    For each message: call the handler with the body; report ReportTaskSucceeded with the dict
    it returns, or ReportTaskFailed with its exception's class name and message, using the
    message's task token; only then delete the message. A message whose report cannot be
    made (the API is down) comes back after its visibility timeout and runs again; a report
    refused because the task already has its answer just deletes it.

    One worker serves several queues: name them separated by commas (`warehouse,notify`, as
    Celery's -Q a,b) or as several arguments.

    \b
    Example: a file jobs.py in the current directory,
        def handle(body):
            if body["job"] == "extract":
                return {"rows": [1, 2, 3]}
            return {"count": len(body["rows"])}
    and the worker for the queue of contrib/examples/seed-three-tasks.yaml:
        relayflow worker fnf-demo --handler jobs:handle --concurrency 4
    and the same writing its log (stderr) as JSON lines for a collector:
        relayflow worker fnf-demo --handler jobs:handle --log-format json
    and with its metrics at http://127.0.0.1:9464/metrics (relayflow-prometheus installed):
        relayflow worker fnf-demo --handler jobs:handle --metrics-port 9464
    and with each message in a span of the execution's trace (relayflow-otel installed):
        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \\
        relayflow worker fnf-demo --handler jobs:handle

    Worker plugins (installed distributions with an entry point in the group
    relayflow.worker, and the modules named in $RELAYFLOW_WORKER_PLUGINS, comma separated)
    hear of every message: traces and metrics come from them.

    At start the worker checks its access key with the server (one signed report that touches
    no task) and stops if the server refuses it; so it does if a report is refused for the key
    later, leaving the message on the queue. SIGTERM or Ctrl-C stops taking messages, lets the
    tasks in progress finish, and exits 0. Exit 2: the handler, the configuration, the broker
    or the access key cannot be used, or --metrics-port has no plugin to serve it (one line
    on stderr: relayflow: <Code>: <message>).
    """
    from relayflow.worker.hooks import WorkerPlugins

    configure_logging(logging.INFO, "json" if log_format == "json" else "text")
    names = split_queues(queues)
    client, (url, options, visibility) = _settings(config_path)
    try:
        handler = load_handler(handler_path)
    except ImportTargetError as exc:
        raise Invalid("InvalidHandler", str(exc)) from None
    plugins = WorkerPlugins.load()
    if metrics_port is not None:
        serve_metrics(plugins, metrics_host, metrics_port)
    with client:
        try:
            # The broker first: a worker that cannot receive has nothing to report.
            Worker(
                names,
                handler,
                transport_url=url,
                reporter=client,
                transport_options=options,
                visibility_timeout=visibility,
            ).check_broker()
            warning = check_credentials(client)
        except WorkerError as exc:
            raise Invalid(exc.code, exc.message, mask=True) from None
        if warning:
            log.warning("relayflow worker: %s; reports are retried as messages come", warning)

        def started() -> None:
            # Said once SIGTERM is handled: a supervisor that stops the worker as soon as it
            # reads this line gets the graceful stop and exit 0, not the default death.
            log.info(
                "relayflow worker: queue %s, %d thread(s), handler %s, reporting to %s; "
                "SIGTERM or Ctrl-C stops it",
                ", ".join(names),
                concurrency,
                handler_path,
                client.endpoint,
            )

        try:
            stats = run_worker(
                names,
                handler,
                transport_url=url,
                reporter=client,
                concurrency=concurrency,
                visibility_timeout=visibility,
                transport_options=options,
                plugins=plugins,
                started=started,
            )
        except WorkerError as exc:
            raise Invalid(exc.code, exc.message, mask=True) from None
        except ValueError as exc:
            raise Invalid("InvalidArgument", str(exc)) from None
        except Exception as exc:  # a bug in the worker, logged with its traceback already
            raise WorkerFailed(
                "WorkerFailed",
                f"the worker stopped on an unexpected error ({type(exc).__name__}: {exc}); "
                "its traceback is in the log above",
            ) from None
    log.info(
        "relayflow worker: stopped; %d message(s): %d succeeded, %d failed, %d already "
        "answered, %d without a token, %d left for redelivery",
        stats.received,
        stats.succeeded,
        stats.failed,
        stats.settled,
        stats.no_token,
        stats.kept,
    )
