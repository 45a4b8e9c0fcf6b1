"""A store's schema version, read or upgraded without an engine: `relayflow store version|upgrade`.

Every driver upgrades an older store when it opens it (see `relayflow.store.versions`), so a
server started on an older store upgrades it first. These functions do the same on their own,
so that an operator can upgrade before starting any server, and look at a store's version
without changing it. The SQLite store is opened without its automatic upgrade for that; other
drivers say what their opening did through two attributes, if they have them: ``schema_version``
(the version after opening) and ``upgraded_from`` (None when nothing was upgraded).
"""

from __future__ import annotations

from dataclasses import dataclass

from relayflow.masking import mask_text
from relayflow.store import open_store, scheme_of
from relayflow.store.base import Store, StoreError
from relayflow.store.versions import META_KEY, SCHEMA_VERSION, stored_version

__all__ = ["SchemaState", "look", "open_unchanged", "upgrade"]

_SQLITE_SCHEMES = ("sqlite", "memory")


@dataclass(frozen=True)
class SchemaState:
    """A store's schema version before and after a command, and this release's."""

    before: int
    after: int
    release: int = SCHEMA_VERSION

    @property
    def upgraded(self) -> bool:
        """Whether the command upgraded the store."""
        return self.after != self.before

    def sentence(self) -> str:
        """What an upgrade did: `upgraded from version 1 to 2` or `already at version 2`."""
        if self.upgraded:
            return f"upgraded from version {self.before} to {self.after}"
        return f"already at version {self.after}"

    def as_dict(self) -> dict[str, int | bool]:
        """The versions by name, for `--json`."""
        return {
            "store_version": self.after,
            "previous_version": self.before,
            "release_version": self.release,
            "upgraded": self.upgraded,
        }


def open_unchanged(url: str) -> Store:
    """Open the store at ``url`` without upgrading it, where its driver allows that (SQLite).

    A SQLite file that does not exist is refused rather than made.

    Raises:
        StoreError: the store cannot be opened (or, for drivers that upgrade at opening, is
            newer than this release).
    """
    if scheme_of(url) not in _SQLITE_SCHEMES:
        return open_store(url)
    from relayflow.store import sqlite_file
    from relayflow.store.sqlite import SQLiteStore

    path = sqlite_file.parse_url(url)[0]
    if path is not None and not path.exists():
        raise StoreError(
            f"there is no store at {path.resolve()}: check the path (a server makes a new "
            "store there when it starts)"
        )
    return SQLiteStore(url, upgrade=False)


def version_of(store: Store, where: str) -> int:
    """The schema version the store has now."""
    found = getattr(store, "schema_version", None)
    if isinstance(found, int):
        return found
    with store.reader() as tx:
        return stored_version(tx.get_meta(META_KEY), where)


def look(url: str) -> SchemaState:
    """The schema version of the store at ``url``, which is left as it is.

    Raises:
        StoreError: the store cannot be opened.
    """
    store = open_unchanged(url)
    try:
        found = version_of(store, mask_text(url))
    finally:
        store.close()
    return SchemaState(found, found)


def upgrade(url: str) -> SchemaState:
    """Bring the store at ``url`` to this release's schema, in one transaction.

    A SQLite store is locked against engines meanwhile; on a shared database the driver's own
    opening does the upgrade, in a transaction that other replicas wait for.

    Raises:
        StoreError: the store cannot be opened, is newer than this release, is in use by an
            engine (SQLite), or an upgrade step failed (the store is then left as it was).
    """
    from relayflow.store.sqlite import SQLiteStore

    where = mask_text(url)
    store = open_unchanged(url)
    try:
        if isinstance(store, SQLiteStore):
            before = store.schema_version
            store.upgrade()
        else:
            upgraded_from = getattr(store, "upgraded_from", None)
            before = upgraded_from if isinstance(upgraded_from, int) else version_of(store, where)
        return SchemaState(before, version_of(store, where))
    finally:
        store.close()
