"""`relayflow store version|upgrade|copy`: look after a store without starting a server.

The store modules are imported inside the commands, so that `relayflow --help` does not pay for
them. Store URLs are printed with their passwords masked; a refusal is one line, exit 2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from relayflow.cli._common import (
    CONTEXT,
    CommandError,
    Invalid,
    config_option,
    echo_json,
    json_option,
    load_config_or_fail,
    one_of,
)

if TYPE_CHECKING:
    from relayflow.store.base import StoreError

__all__ = ["register", "store"]

F = TypeVar("F", bound=Callable[..., Any])

_STORE_HELP = "The store's URL (default: [engine] store of the configuration)."
_CONFIG_HELP = "relayflow.toml whose [engine] store to use (without --store)."


@click.group(context_settings=CONTEXT)
def store() -> None:
    """Show a store's schema version, upgrade it, or copy it to another store.

    \b
    relayflow store version                      the store's schema version and this release's
    relayflow store upgrade                      upgrade the store before starting servers
    relayflow store copy sqlite:///relayflow.db 'postgresql://rf:${PGPASSWORD}@db:5432/rf'
                                                 move everything to an empty store

    Stop every server on a store before upgrading or copying it.
    """


def _url(store_url: str | None, config_path: str | None) -> str:
    """The store URL from `--store`, or else the configuration's `[engine] store`."""
    one_of(("--store", store_url), ("--config", config_path))
    if store_url is not None:
        return store_url
    return load_config_or_fail(config_path).engine.store


def _refusal(exc: StoreError) -> Invalid:
    """A store's refusal as the command's one line (exit 2), passwords masked."""
    from relayflow.store.copy import DestinationNotEmpty
    from relayflow.store.versions import StoreNewer

    if isinstance(exc, StoreNewer):
        code = "StoreTooNew"
    elif isinstance(exc, DestinationNotEmpty):
        code = "StoreNotEmpty"
    else:
        code = "StoreUnavailable"
    return Invalid(code, str(exc), mask=True)


class _Interrupted(CommandError):
    """Ctrl-C during a copy (exit 130, as `relayflow run`)."""

    exit_code = 130


def _store_options(fn: F) -> F:
    fn = json_option(fn)
    fn = config_option(help=_CONFIG_HELP)(fn)
    return click.option("--store", "store_url", metavar="URL", help=_STORE_HELP)(fn)


@store.command()
@_store_options
def version(store_url: str | None, config_path: str | None, as_json: bool) -> None:
    """Show a store's schema version and this relayflow's.

    The store is not changed. A store older than this release is upgraded when a server (or
    `relayflow store upgrade`) opens it; a newer one is refused.
    """
    from relayflow.masking import mask_text
    from relayflow.store import StoreError
    from relayflow.store.upgrade import look

    url = _url(store_url, config_path)
    try:
        state = look(url)
    except StoreError as exc:
        raise _refusal(exc) from None
    if as_json:
        echo_json({"store": mask_text(url), **state.as_dict()})
        return
    click.echo(f"store:   {mask_text(url)}")
    click.echo(f"schema:  version {state.after}")
    click.echo(f"release: version {state.release} (this relayflow)")
    if state.after < state.release:
        click.echo("relayflow store upgrade (or the next server start) upgrades it")
    elif state.after > state.release:
        click.echo("written by a newer relayflow: this one refuses it")


@store.command()
@_store_options
def upgrade(store_url: str | None, config_path: str | None, as_json: bool) -> None:
    """Upgrade a store to this relayflow's schema, without a server.

    The upgrade is one transaction: if it fails, the store is left as it was. A SQLite store
    is refused while a server runs on it; stop the servers of a PostgreSQL store first.
    """
    from relayflow.masking import mask_text
    from relayflow.store import StoreError
    from relayflow.store.upgrade import upgrade as upgrade_store

    url = _url(store_url, config_path)
    try:
        state = upgrade_store(url)
    except StoreError as exc:
        raise _refusal(exc) from None
    if as_json:
        echo_json({"store": mask_text(url), **state.as_dict()})
    else:
        click.echo(f"{mask_text(url)}: {state.sentence()}")


class _Progress:
    """A line on stderr, redrawn at most ten times a second, when stderr is a terminal."""

    def __init__(self) -> None:
        self.shown = sys.stderr.isatty()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.shown or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        percent = 100 * done // total if total else 100
        click.echo(f"\rcopying executions: {done}/{total} ({percent} %)", nl=False, err=True)
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            click.echo(err=True)
            self.drawn = False


@store.command()
@click.argument("source_url", metavar="SRC_URL")
@click.argument("destination_url", metavar="DST_URL")
@json_option
def copy(source_url: str, destination_url: str, as_json: bool) -> None:
    """Copy a store into another, empty store of any kind.

    Flows with every version, executions (running ones too) with their histories, timers,
    pending task messages and the task-token secret go across, so that running executions
    carry on on the new store and tokens handed out before stay valid. The destination is
    written in one transaction: an error or Ctrl-C leaves it empty.

    No server may run on either store meanwhile: a SQLite store is locked (the copy is
    refused while a server runs on it); stop the servers of a PostgreSQL store by hand.

    \b
    relayflow store copy sqlite:///relayflow.db 'postgresql://rf:${PGPASSWORD}@db:5432/rf'
    """
    from relayflow.store import StoreError
    from relayflow.store.copy import copy_urls

    progress = _Progress()
    try:
        counts = copy_urls(source_url, destination_url, progress)
    except StoreError as exc:
        progress.end()
        raise _refusal(exc) from None
    except KeyboardInterrupt:
        progress.end()
        raise _Interrupted(
            "Interrupted", "the copy was interrupted; nothing was written to the destination"
        ) from None
    progress.end()
    if as_json:
        echo_json(counts.as_dict())
    else:
        click.echo(counts.summary())


def register(cli: click.Group) -> None:
    """Add `store` to ``cli``."""
    cli.add_command(store)
