"""The version of the stores' schema, shared by every driver, and how a driver upgrades one.

A store records the schema version it was written with under the metadata key
``schema_version``. A store without the key was written before versions were recorded (the
release before scale-out) and is version 1. Opening a store written by an older relayflow
upgrades it in one transaction; a store written by a newer relayflow is refused, since this
release cannot know what the newer one changed.

Each driver keeps its upgrade steps as a mapping `Upgrades`: the version a step brings a store
to, and the statements (in the driver's own SQL) that do it. A schema change is one new entry
there and `SCHEMA_VERSION` raised by one; `upgrade_plan` gives the statements an older store
needs, in order, and the driver runs them and `META_KEY` in one transaction:

    found = stored_version(tx.get_meta(META_KEY), where)
    for statement in upgrade_plan(found, UPGRADES, where):
        run(statement)
    tx.set_meta(META_KEY, str(SCHEMA_VERSION))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relayflow.store.base import StoreError

__all__ = [
    "FIRST_VERSION",
    "META_KEY",
    "SCHEMA_VERSION",
    "StoreNewer",
    "Upgrades",
    "check_not_newer",
    "stored_version",
    "upgrade_plan",
]

#: The metadata key the version is kept under.
META_KEY = "schema_version"
#: The schema this release writes. 1: the first release; 2: request nonces shared by replicas;
#: 3: a flow's objects (schedules, aliases, published versions), its execution mode and
#: environment, and the published version each execution runs; 4: which execution started which,
#: and ended executions indexed by their end (retention); 5: a flow's executions indexed by
#: status and by start time (the console's list at scale).
SCHEMA_VERSION = 5
#: The version a store had before versions were recorded.
FIRST_VERSION = 1

#: A driver's upgrade steps: the version each step brings a store to, and its statements.
Upgrades = Mapping[int, Sequence[str]]


class StoreNewer(StoreError):
    """The store was written by a newer relayflow (its schema version is above this one's)."""


def check_not_newer(found: int, where: str) -> None:
    """Refuse a store whose schema is newer than this release's.

    Raises:
        StoreNewer: ``found`` is above `SCHEMA_VERSION`.
    """
    if found > SCHEMA_VERSION:
        raise StoreNewer(
            f"the store {where} has schema version {found}, written by a newer relayflow; "
            f"this one reads up to version {SCHEMA_VERSION}: upgrade relayflow to use it"
        )


def stored_version(value: str | None, where: str) -> int:
    """The schema version a store's ``schema_version`` metadata names (none recorded: 1).

    Raises:
        StoreError: the value is not a whole number of at least 1.
    """
    if value is None:
        return FIRST_VERSION
    try:
        found = int(value)
    except ValueError:
        found = 0
    if found < FIRST_VERSION:
        raise StoreError(
            f"the store {where} records the schema version {value[:20]!r}, which no relayflow "
            "writes: restore the store from a backup"
        )
    return found


def upgrade_plan(found: int, steps: Upgrades, where: str) -> list[str]:
    """The statements that bring a store from version ``found`` to `SCHEMA_VERSION`, in order.

    Args:
        found: the store's version (see `stored_version`).
        steps: the driver's upgrade steps, keyed by the version each one brings a store to.
        where: the store, as its refusals name it (no password).

    Returns:
        The statements to run in one transaction; none when the store is current.

    Raises:
        StoreError: the store is newer than this release, or the driver lacks a step (a bug).
    """
    check_not_newer(found, where)
    plan: list[str] = []
    for version in range(found + 1, SCHEMA_VERSION + 1):
        if version not in steps:
            raise StoreError(
                f"this relayflow cannot upgrade the store {where} to schema version {version}: "
                "its driver has no step for it"
            )
        plan.extend(steps[version])
    return plan
