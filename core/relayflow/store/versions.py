"""The version of the stores' schema, shared by every driver.

A store records the schema version it was written with under the metadata key
``schema_version``. A store without the key was written before versions were recorded (the
release before scale-out) and is version 1. Opening a store written by an older relayflow
upgrades it in one transaction; a store written by a newer relayflow is refused, since this
release cannot know what the newer one changed.
"""

from __future__ import annotations

from relayflow.store.base import StoreError

__all__ = ["META_KEY", "SCHEMA_VERSION", "check_not_newer"]

#: The metadata key the version is kept under.
META_KEY = "schema_version"
#: The schema this release writes. 1: the first release; 2: request nonces shared by replicas.
SCHEMA_VERSION = 2


def check_not_newer(found: int, where: str) -> None:
    """Refuse a store whose schema is newer than this release's.

    Raises:
        StoreError: ``found`` is above `SCHEMA_VERSION`.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the store {where} has schema version {found}, written by a newer relayflow; "
            f"this one reads up to version {SCHEMA_VERSION}: upgrade relayflow to use it"
        )
