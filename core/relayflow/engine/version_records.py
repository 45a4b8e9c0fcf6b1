"""Published flow versions and aliases as the engine stores them and the API answers with them.

Both are a flow's objects in the store (`relayflow.store.FlowObjectRow`), their fields kept as
JSON text in `data`:

- a published version: kind `version`, named by its number zero-padded to ten digits (so
  that the store's order by name is the order by number). It holds the engine's revision of
  the definition it snapshots (`FlowRow.version`; the store keeps every revision, so
  `Transaction.flow_definition` still has it after later updates), with the flow's
  description, environment and role as they were when it was published.
- a counter, kind `version-counter`: the last number given and how many versions are kept, so
  that a deleted version's number is never given again.
- an alias: kind `alias`, named by the alias, routing starts to one or two versions by weight.

Limits, each refused with `InvalidArgument` naming the field: `MAX_VERSIONS` kept per flow,
`MAX_ALIASES` per flow, `MAX_ROUTES` versions per alias, weights whole numbers adding up to
`TOTAL_WEIGHT`, descriptions of at most `MAX_DESCRIPTION_CHARS`, and RoutingConfigurations
text of at most `MAX_ROUTING_CHARS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relayflow.errors import EngineError
from relayflow.results import iso_time
from relayflow.store import FlowObjectRow

__all__ = [
    "ALIAS_KIND",
    "COUNTER_KIND",
    "COUNTER_NAME",
    "MAX_ALIASES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_ROUTES",
    "MAX_ROUTING_CHARS",
    "MAX_VERSIONS",
    "TOTAL_WEIGHT",
    "VERSION_KIND",
    "FlowAliasInfo",
    "FlowVersionInfo",
    "Route",
    "check_description",
    "parse_routes",
    "parse_version",
    "version_key",
]

VERSION_KIND = "version"
ALIAS_KIND = "alias"
COUNTER_KIND = "version-counter"
COUNTER_NAME = "versions"

#: Published versions a flow keeps at once; delete old ones to publish more.
MAX_VERSIONS = 1000
#: Aliases a flow can have.
MAX_ALIASES = 100
#: Versions one alias routes between ("one or two", as the service has it).
MAX_ROUTES = 2
#: What the weights of an alias add up to: each is a percentage of its starts.
TOTAL_WEIGHT = 100
#: Characters of a version's or an alias's Description.
MAX_DESCRIPTION_CHARS = 1024
#: Characters of the RoutingConfigurations JSON text.
MAX_ROUTING_CHARS = 4096
_DIGITS = 10  # a version's name in the store: its number zero-padded, so names sort as numbers
_LARGEST = 10**_DIGITS - 1


def _invalid(message: str) -> EngineError:
    return EngineError.of("InvalidArgument", message)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def version_key(number: int) -> str:
    """The store's name for version ``number``."""
    return f"{number:0{_DIGITS}d}"


def parse_version(value: Any, what: str) -> int:
    """A version number given as text or an int; `InvalidArgument` naming ``what`` otherwise."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
        raise _invalid(f"{what} must be a version number such as 1, got {str(value)[:40]!r}")
    number = int(text)
    if not 1 <= number <= _LARGEST:
        raise _invalid(f"{what} must be a version number from 1 to {_LARGEST}, got {number}")
    return number


def check_description(value: str | None) -> str:
    """A Description field: text of at most `MAX_DESCRIPTION_CHARS` characters."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_CHARS:
        raise _invalid(f"Description must be at most {MAX_DESCRIPTION_CHARS} characters")
    return value


@dataclass(frozen=True)
class Route:
    """One line of an alias's RoutingConfigurations: a version and its share of the starts."""

    version: int
    weight: int

    def to_api(self) -> dict[str, Any]:
        """`{"Version": "2", "Weight": 30}`, as the service writes it."""
        return {"Version": str(self.version), "Weight": self.weight}


def _weight(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TOTAL_WEIGHT:
        raise _invalid(
            f"{where}.Weight must be a whole number from 0 to {TOTAL_WEIGHT}, "
            f"got {str(value)[:40]!r}"
        )
    return value


def parse_routes(value: Any) -> tuple[Route, ...]:
    """RoutingConfigurations as JSON text, a list of `{"Version", "Weight"}` or of `Route`s.

    One or two versions, each named once, with whole-number weights adding up to 100.

    Raises:
        EngineError: `InvalidArgument`, with a sentence naming what is wrong.
    """
    if isinstance(value, str | bytes):
        if len(value) > MAX_ROUTING_CHARS:
            raise _invalid(f"RoutingConfigurations must be at most {MAX_ROUTING_CHARS} characters")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _invalid(f"RoutingConfigurations is not valid JSON: {exc}") from None
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise _invalid(
            "RoutingConfigurations must be a list of 1 or 2 objects with Version and Weight, "
            'such as [{"Version": "1", "Weight": 100}]'
        )
    if len(value) > MAX_ROUTES:
        raise _invalid(
            f"RoutingConfigurations routes to at most {MAX_ROUTES} versions, got {len(value)}"
        )
    routes: list[Route] = []
    for index, item in enumerate(value):
        where = f"RoutingConfigurations[{index}]"
        if isinstance(item, Route):
            item = item.to_api()
        if not isinstance(item, Mapping) or "Version" not in item or "Weight" not in item:
            raise _invalid(f"{where} must be an object with Version and Weight")
        route = Route(
            parse_version(item["Version"], f"{where}.Version"), _weight(item["Weight"], where)
        )
        if any(r.version == route.version for r in routes):
            raise _invalid(f"RoutingConfigurations names version {route.version} twice")
        routes.append(route)
    total = sum(r.weight for r in routes)
    if total != TOTAL_WEIGHT:
        raise _invalid(
            f"the Weights in RoutingConfigurations must add up to {TOTAL_WEIGHT}, "
            f"they add up to {total}"
        )
    return tuple(routes)


@dataclass(frozen=True)
class FlowVersionInfo:
    """A published version of a flow, as PublishFlowVersion and ListFlowVersions answer.

    Attributes:
        flow_name: the flow.
        version: its number: 1 for the first published, one more for each after; never reused.
        description: the Description given when it was published.
        created_time: when it was published (UTC).
        revision: the engine's revision of the flow's definition it runs (`FlowInfo.version`).
        flow_description: the flow's own Description when it was published.
        environment: the flow's Environment then (JSON text, "" for none).
        role_arn: the flow's RoleArn then.
        flow_modified: the flow's last change before it was published (seconds since the epoch).
    """

    flow_name: str
    version: int
    description: str
    created_time: datetime
    revision: int
    flow_description: str = ""
    environment: str = ""
    role_arn: str = ""
    flow_modified: float = 0.0

    @classmethod
    def of(cls, row: FlowObjectRow) -> FlowVersionInfo:
        """From the store's object."""
        data = json.loads(row.data)
        return cls(
            row.flow_name,
            int(data["Version"]),
            data.get("Description", ""),
            _utc(row.created),
            int(data["Revision"]),
            data.get("FlowDescription", ""),
            data.get("Environment", ""),
            data.get("RoleArn", ""),
            float(data.get("FlowModified", 0.0)),
        )

    def to_row(self) -> FlowObjectRow:
        """The store's object for this version."""
        data = {
            "Version": self.version,
            "Description": self.description,
            "Revision": self.revision,
            "FlowDescription": self.flow_description,
            "Environment": self.environment,
            "RoleArn": self.role_arn,
            "FlowModified": self.flow_modified,
        }
        created = self.created_time.timestamp()
        return FlowObjectRow(
            self.flow_name,
            VERSION_KIND,
            version_key(self.version),
            json.dumps(data),
            created,
            created,
        )

    def to_api(self) -> dict[str, Any]:
        """The fields of PublishFlowVersion's answer (ListFlowVersions's items without FlowName)."""
        return {
            "FlowName": self.flow_name,
            "Version": str(self.version),
            "Description": self.description,
            "CreatedTime": iso_time(self.created_time),
        }


@dataclass(frozen=True)
class FlowAliasInfo:
    """An alias of a flow, as CreateFlowAlias, DescribeFlowAlias and ListFlowAliases answer.

    Attributes:
        flow_name: the flow.
        name: the alias's name (a name as flows have them: it never looks like a number).
        description: free text.
        routes: the versions it starts and the percentage of starts each gets.
        created_time: when it was created (UTC).
        last_modified_time: when it was last updated (UTC).
    """

    flow_name: str
    name: str
    description: str
    routes: tuple[Route, ...]
    created_time: datetime
    last_modified_time: datetime

    @classmethod
    def of(cls, row: FlowObjectRow) -> FlowAliasInfo:
        """From the store's object."""
        data = json.loads(row.data)
        routes = tuple(Route(int(r["Version"]), int(r["Weight"])) for r in data["Routes"])
        return cls(
            row.flow_name,
            row.name,
            data.get("Description", ""),
            routes,
            _utc(row.created),
            _utc(row.modified),
        )

    def to_row(self) -> FlowObjectRow:
        """The store's object for this alias."""
        data = {
            "Description": self.description,
            "Routes": [{"Version": r.version, "Weight": r.weight} for r in self.routes],
        }
        return FlowObjectRow(
            self.flow_name,
            ALIAS_KIND,
            self.name,
            json.dumps(data),
            self.created_time.timestamp(),
            self.last_modified_time.timestamp(),
        )

    def to_api(self) -> dict[str, Any]:
        """The alias's fields: Name, Description, RoutingConfigurations, CreatedTime, ..."""
        return {
            "FlowName": self.flow_name,
            "Name": self.name,
            "Description": self.description,
            "RoutingConfigurations": [r.to_api() for r in self.routes],
            "CreatedTime": iso_time(self.created_time),
            "LastModifiedTime": iso_time(self.last_modified_time),
        }

    def versions(self) -> set[int]:
        """The versions it routes to, weight 0 included."""
        return {r.version for r in self.routes}
