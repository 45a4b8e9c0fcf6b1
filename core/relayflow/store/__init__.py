"""Store drivers, picked by the scheme of a URL.

Built in: `sqlite:///path.db` and `memory://` (both `relayflow.store.sqlite.SQLiteStore`),
declared like any other driver: an entry point in the group `relayflow.stores` whose name is the
URL scheme and whose value is the `Store` class (`module:StoreClass`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import cast

from relayflow.store.base import Listener, Store, StoreConflict, StoreError, Transaction
from relayflow.store.records import (
    ExecutionRow,
    FlowObjectRow,
    FlowRow,
    HistoryEvent,
    OutboxRow,
    TimerRow,
)

__all__ = [
    "ExecutionRow",
    "FlowObjectRow",
    "FlowRow",
    "HistoryEvent",
    "Listener",
    "OutboxRow",
    "Store",
    "StoreConflict",
    "StoreError",
    "TimerRow",
    "Transaction",
    "open_store",
    "register_driver",
    "scheme_of",
]

STORE_DRIVERS = "relayflow.stores"
_DRIVERS: dict[str, type[Store]] = {}


def register_driver(scheme: str, driver: type[Store]) -> None:
    """Serve URLs with ``scheme`` by ``driver`` (a `Store` taking the URL), without packaging."""
    _DRIVERS[scheme] = driver


def scheme_of(url: str) -> str:
    """The scheme of a store URL (``sqlite`` of ``sqlite:///x.db``); empty without one."""
    return url.split("://", 1)[0] if "://" in url else ""


def open_store(url: str) -> Store:
    """Open the store a URL names; drivers are found by scheme through stevedore.

    Raises:
        StoreError: the scheme is unknown or the store cannot be opened.
    """
    scheme = scheme_of(url)
    installed = {ep.name for ep in entry_points(group=STORE_DRIVERS)}
    driver = _DRIVERS.get(scheme)
    # Asked only for an installed name: stevedore would log its own warning for a missing one.
    if driver is None and scheme in installed:
        from stevedore import DriverManager  # only now: most stores are found without it
        from stevedore.exception import NoMatches

        try:
            manager: DriverManager[type[Store]] = DriverManager(
                STORE_DRIVERS, scheme, invoke_on_load=False
            )
            driver = cast("type[Store]", manager.driver)
        except NoMatches:
            driver = None
    if driver is None:
        known = ", ".join(f"{s}://" for s in sorted(installed | set(_DRIVERS)))
        # Only the scheme is quoted: the rest of a URL may carry a password.
        if scheme:
            raise StoreError(f"no store driver for {scheme}:// URLs; known: {known}")
        raise StoreError(f"the store must be a URL such as sqlite:///relayflow.db; known: {known}")
    return driver(url)  # type: ignore[call-arg]
