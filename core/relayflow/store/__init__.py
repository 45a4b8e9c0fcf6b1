"""Store drivers, picked by the scheme of a URL.

Built in: `sqlite:///path.db` and `memory://` (both `relayflow.store.sqlite.SQLiteStore`).
Other drivers register with `register_driver` or through the `relayflow.stores` entry-point
group (name: the URL scheme; value: `module:StoreClass`).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from relayflow.store.base import (
    ExecutionRow,
    FlowRow,
    OutboxRow,
    Store,
    StoreError,
    TimerRow,
    Transaction,
)
from relayflow.store.sqlite import SQLiteStore

__all__ = [
    "ExecutionRow",
    "FlowRow",
    "OutboxRow",
    "Store",
    "StoreError",
    "TimerRow",
    "Transaction",
    "open_store",
    "register_driver",
]

_DRIVERS: dict[str, type[Store]] = {"sqlite": SQLiteStore, "memory": SQLiteStore}


def register_driver(scheme: str, driver: type[Store]) -> None:
    """Serve URLs with ``scheme`` by ``driver`` (a `Store` taking the URL)."""
    _DRIVERS[scheme] = driver


def open_store(url: str) -> Store:
    """Open the store a URL names.

    Raises:
        StoreError: the scheme is unknown or the store cannot be opened.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    driver = _DRIVERS.get(scheme)
    if driver is None:
        for ep in entry_points(group="relayflow.stores"):
            if ep.name == scheme:
                driver = ep.load()
                break
    if driver is None:
        known = ", ".join(f"{s}://" for s in sorted(_DRIVERS))
        raise StoreError(f"no store driver for {url!r}; known: {known}")
    return driver(url)  # type: ignore[call-arg]
