"""`relayflow server`: the engine and its HTTP API, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

import click

from relayflow.cli._common import Invalid, config_option

__all__ = ["register", "server"]


@click.command()
@config_option
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def server(config_path: str | None, log_level: str) -> None:
    """Run the engine and its HTTP API until SIGTERM or SIGINT.

    The API speaks Serverless Workflow's actions (version 2019-03-15) on [server] host and
    port (default 127.0.0.1:8765), signed with [[server.access_keys]]; without access keys it
    only listens on loopback. With [server] tls_cert_file and tls_key_file it serves HTTPS
    (both files are checked first). Executions resume where they were: after a crash, pending work
    is dispatched again, late timers fire, and waiting tasks keep waiting. The store is
    [engine] store in relayflow.toml (default sqlite:///relayflow.db).
    """
    from relayflow.cli.local import setup
    from relayflow.config import ConfigError
    from relayflow.server import run_server
    from relayflow.store import StoreError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
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
