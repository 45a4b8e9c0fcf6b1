"""`relayflow server`: the engine and its HTTP API, until SIGTERM or SIGINT."""

from __future__ import annotations

import click

from relayflow.cli._common import Invalid, config_option, load_config_or_fail

__all__ = ["register", "server"]


@click.command()
@config_option
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default=None,
    type=click.Choice(["text", "json"]),
    help="text: human-readable lines; json: one JSON object per line (time, level, logger, "
    "message, and flow, execution, step where known). Default: [server] log_format, else text.",
)
def server(config_path: str | None, log_level: str, log_format: str | None) -> None:
    """Run the engine and its HTTP API until SIGTERM or SIGINT.

    The API speaks Serverless Workflow's actions (version 2019-03-15) on [server] host and
    port (default 127.0.0.1:8765), signed with [[server.access_keys]]; without access keys it
    only listens on loopback. With [server] tls_cert_file and tls_key_file it serves HTTPS
    (both files are checked first). Executions resume where they were: after a crash, pending work
    is dispatched again, late timers fire, and waiting tasks keep waiting. The store is
    [engine] store in relayflow.toml (default sqlite:///relayflow.db).

    Logs go to stderr. For a log collector, `log_format = "json"` under [server] (or
    RELAYFLOW_SERVER__LOG_FORMAT=json, or --log-format json) writes one JSON object per line.

    \b
    Examples:
        relayflow server --config relayflow.toml
        relayflow server --log-format json --log-level WARNING
    """
    from relayflow.cli.local import setup
    from relayflow.config import ConfigError
    from relayflow.logs import configure_logging
    from relayflow.server import run_server
    from relayflow.store import StoreError

    # The configuration is read first (once more in setup) so that plugins log in its format.
    fmt = log_format or load_config_or_fail(config_path).server.log_format
    configure_logging(log_level, "json" if fmt == "json" else "text")
    config, plugins, integrations = setup(config_path)
    try:
        run_server(config, integrations=integrations, plugins=plugins)
    except ConfigError as exc:
        raise Invalid("InvalidConfig", str(exc), mask=True) from None
    except StoreError as exc:
        raise Invalid("StoreUnavailable", str(exc), mask=True) from None


def register(cli: click.Group) -> None:
    """Add `server` to ``cli``."""
    cli.add_command(server)
