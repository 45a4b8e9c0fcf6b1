"""Which kombu transport a broker URL names, whether kombu can load it, and URLs fit to print."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from kombu.connection import Connection as _KombuConnection
from kombu.transport import resolve_transport

from relayflow_mns import redis_transport

__all__ = ["DEFAULT_TRANSPORT", "register_transport_aliases", "safe_url", "transport_problem"]

#: The embedded transport: SQLite with MNS queue semantics, no server needed.
DEFAULT_TRANSPORT = "relayflow-sqlite:///relayflow-queues.db"

Connection: Any = _KombuConnection  # kombu has no type hints


@functools.cache
def register_transport_aliases() -> None:
    """Make kombu find the transports installed distributions declare.

    Distributions name their transports under the `kombu.transports` entry point group,
    which kombu itself does not read; an alias that kombu already knows is left as it is.
    (This distribution's own `relayflow-sqlite` is added when `sqlite_transport` is imported.)
    """
    from kombu.transport import TRANSPORT_ALIASES

    for entry in entry_points(group="kombu.transports"):
        TRANSPORT_ALIASES.setdefault(entry.name, entry.value)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def transport_problem(url: str, setting: str = "[integrations.mns] transport") -> str | None:
    """None when kombu can load the transport of ``url``; else one sentence naming ``setting``.

    Only the transport's name is checked (`reddis://` is not a transport; `sqs://` needs
    boto3), not whether the broker answers: a broker may well start after the engine.
    """
    register_transport_aliases()
    if redis_transport.transport_for(url) is not None:
        return None
    where = f"{setting} {safe_url(url)!r}"
    try:
        name = Connection(url).transport_cls  # kombu's reading: "sqla+sqlite://" is "sqla"
        if isinstance(name, str):
            resolve_transport(name)
    except KeyError as exc:
        said = " ".join(str(exc.args[0] if exc.args else exc).split())
        return f"{where} names no transport kombu knows: {said}"
    except ImportError as exc:
        return f"{where}: kombu cannot load its transport: {exc}"
    except Exception as exc:  # a URL kombu cannot read at all
        return f"{where} is not a broker URL kombu can read: {type(exc).__name__}: {exc}"
    return None
