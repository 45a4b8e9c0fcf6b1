"""Published flow versions and aliases (PublishFlowVersion ... DeleteFlowAlias), and Qualifier.

The operations are a part of `Engine` (it inherits `VersionOperations`).

A published version is a snapshot of the flow as it is when published: the definition it
runs (the engine's revision of it, which the store keeps), its description, environment and
role. Numbers start at 1 and grow by one with each publish; a deleted version's number is not
given again. An alias routes the executions started with it to one or two versions by weight
(whole percentages adding up to 100), drawn at random at each start.

A `Qualifier` (StartExecution, StartSyncExecution, ListExecutions) is a version number or an
alias name; `resolve_qualifier` turns it into what an execution runs. Every write here locks
the flow's row first, so that publishes, alias changes and deletions on several replicas
take turns: no two versions get one number, and no alias is made to route to a version
being deleted.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_OBJECTS_PAGE,
    check_name,
    environment_variables,
    page_size,
)
from relayflow.engine.records import ExecutionInfo, Page
from relayflow.engine.snapshot import redrives_in
from relayflow.engine.version_records import (
    ALIAS_KIND,
    COUNTER_KIND,
    COUNTER_NAME,
    MAX_ALIASES,
    MAX_VERSIONS,
    TOTAL_WEIGHT,
    VERSION_KIND,
    FlowAliasInfo,
    FlowVersionInfo,
    Route,
    check_description,
    parse_routes,
    parse_version,
    version_key,
)
from relayflow.errors import EngineError, already_exists, error, not_exists
from relayflow.store import ExecutionRow, FlowObjectRow, FlowRow, Transaction

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.runtime import Runtime

__all__ = [
    "MAX_QUALIFIED_SCAN",
    "Target",
    "VersionOperations",
    "environment_of",
    "execution_info",
    "flow_not_exists",
    "list_qualified",
    "pick_route",
    "qualified_versions",
    "resolve_qualifier",
]


def flow_not_exists(name: str) -> EngineError:
    """`FlowNotExists`, in the service's words (tools match on them)."""
    return not_exists("FlowNotExists", "Flow", name)


def version_not_exists(flow_name: str, number: int) -> EngineError:
    """`FlowVersionNotExists` for version ``number`` of ``flow_name``."""
    return not_exists("FlowVersionNotExists", "Flow version", str(number), flow_name)


def alias_not_exists(flow_name: str, name: str) -> EngineError:
    """`FlowAliasNotExists` for the alias ``name`` of ``flow_name``."""
    return not_exists("FlowAliasNotExists", "Flow alias", name[:128], flow_name)


@dataclass(frozen=True)
class Target:
    """What an execution started with a Qualifier runs.

    Attributes:
        published_version: the published version's number; 0 for the flow's current
            definition (no Qualifier).
        revision: the engine's revision of the definition (`ExecutionRow.flow_version`).
        environment: the flow's Environment as that version has it (JSON text).
    """

    published_version: int
    revision: int
    environment: str

    def variables(self) -> dict[str, str]:
        """The Environment's variables by name, as `$context.flow.environment` reads them."""
        return {v["Name"]: v["Value"] for v in environment_variables(self.environment)}


def _published(tx: Transaction, flow_name: str, number: int) -> FlowVersionInfo | None:
    row = tx.get_object(flow_name, VERSION_KIND, version_key(number))
    return None if row is None else FlowVersionInfo.of(row)


def pick_route(routes: tuple[Route, ...], draw: int) -> int:
    """The version a start goes to for ``draw`` (0 to 99): each gets its weight's share."""
    for route in routes:
        if draw < route.weight:
            return route.version
        draw -= route.weight
    return routes[-1].version  # unreachable while the weights add up to TOTAL_WEIGHT


def resolve_qualifier(tx: Transaction, flow: FlowRow, qualifier: str, rng: random.Random) -> Target:
    """What an execution of ``flow`` started with ``qualifier`` runs ("" for the current flow).

    A qualifier of digits is a version number; anything else names an alias, which picks one
    of its versions at random by weight.

    Raises:
        EngineError: `FlowVersionNotExists` or `FlowAliasNotExists`, naming the qualifier.
    """
    if not qualifier:
        return Target(0, flow.version, flow.environment)
    if qualifier.isascii() and qualifier.isdigit():
        number = int(qualifier) if len(qualifier) <= 10 else 0
        found = _published(tx, flow.name, number) if number else None
        if found is None:
            raise error(
                "FlowVersionNotExists",
                f"Qualifier '{qualifier[:20]}' names no published version of flow "
                f"'{flow.name}' (ListFlowVersions lists them)",
            )
        return Target(number, found.revision, found.environment)
    draw = rng.randrange(TOTAL_WEIGHT)
    # Twice at most: on PostgreSQL another replica may, between our reads, move the alias off
    # a version and delete it; the second read sees the alias as that change left it.
    for _ in range(2):
        row = tx.get_object(flow.name, ALIAS_KIND, qualifier) if len(qualifier) <= 128 else None
        if row is None:
            raise error(
                "FlowAliasNotExists",
                f"Qualifier '{qualifier[:128]}' names no version or alias of flow '{flow.name}'",
            )
        number = pick_route(FlowAliasInfo.of(row).routes, draw)
        found = _published(tx, flow.name, number)
        if found is not None:
            return Target(number, found.revision, found.environment)
    raise version_not_exists(flow.name, number)


def environment_of(
    tx: Transaction, flow_name: str, published_version: int, seen: dict[int, str]
) -> str:
    """The Environment (stored text) an execution runs with: its version's, else the flow's.

    ``seen`` keeps what was read, by version (0: the flow's), for a listing's next rows.
    """
    if published_version in seen:
        return seen[published_version]
    found = _published(tx, flow_name, published_version) if published_version else None
    if found is not None:
        text = found.environment
    else:  # no version, or one deleted since: the flow's Environment as it is now
        flow = tx.get_flow(flow_name)
        text = "" if flow is None else flow.environment
    seen[published_version] = text
    return text


def execution_info(
    tx: Transaction,
    row: ExecutionRow,
    definition: str | None = None,
    seen: dict[int, str] | None = None,
) -> ExecutionInfo:
    """An execution as the API shows it, with the Environment of the version it runs.

    Args:
        tx: the transaction the row was read in.
        row: the execution.
        definition: the definition it runs when the caller has it; None reads it ("" leaves
            it out, as listings do).
        seen: Environments already read for other rows (`environment_of`).
    """
    if definition is None:
        definition = tx.flow_definition(row.flow_name, row.flow_version) or ""
    environment = environment_of(
        tx, row.flow_name, row.published_version, {} if seen is None else seen
    )
    info = ExecutionInfo.of(row, definition, environment)
    redrives = redrives_in(row.state)  # the start of the text only, not the whole state
    return dataclasses.replace(info, redrive_count=redrives) if redrives else info


#: ListExecutions with a Qualifier filters the store's pages: it reads at most this many
#: executions per call, and answers with fewer than Limit (and a NextToken) when it had to stop.
MAX_QUALIFIED_SCAN = 5000
_SCAN_BATCH = 500


def qualified_versions(tx: Transaction, flow_name: str, qualifier: str) -> set[int]:
    """The versions ListExecutions's ``qualifier`` stands for.

    A version number stands for itself, when the flow has published it (even if it was deleted
    since: its executions are kept); an alias for the versions it routes to now.

    Raises:
        EngineError: `FlowVersionNotExists`, `FlowAliasNotExists`.
    """
    if qualifier.isascii() and qualifier.isdigit():
        number = int(qualifier) if len(qualifier) <= 10 else 0
        row = tx.get_object(flow_name, COUNTER_KIND, COUNTER_NAME)
        last = 0 if row is None else int(json.loads(row.data)["Last"])
        if not 1 <= number <= last:
            raise error(
                "FlowVersionNotExists",
                f"Qualifier '{qualifier[:20]}' names no published version of flow "
                f"'{flow_name}' (ListFlowVersions lists them)",
            )
        return {number}
    alias = tx.get_object(flow_name, ALIAS_KIND, qualifier) if len(qualifier) <= 128 else None
    if alias is None:
        raise error(
            "FlowAliasNotExists",
            f"Qualifier '{qualifier[:128]}' names no version or alias of flow '{flow_name}'",
        )
    return FlowAliasInfo.of(alias).versions()


def list_qualified(
    tx: Transaction,
    flow_name: str,
    qualifier: str,
    after: str,
    size: int,
    filters: dict[str, Any],
) -> tuple[list[ExecutionRow], str]:
    """A page of the flow's executions that ran a version ``qualifier`` stands for.

    Returns the page's executions and its NextToken ("" on the last page). The store has no
    filter for the version, so its pages are read and filtered here, `MAX_QUALIFIED_SCAN`
    executions at most per page; a page that stops there may hold fewer than ``size``.
    """
    wanted = qualified_versions(tx, flow_name, qualifier)
    found: list[ExecutionRow] = []
    scanned = 0
    while True:
        batch = tx.list_executions(flow_name, after=after, limit=_SCAN_BATCH, **filters)
        for row in batch:
            if row.published_version in wanted:
                if len(found) == size:  # one more than the page holds: another page follows
                    return found, found[-1].name
                found.append(row)
            after = row.name
        scanned += len(batch)
        if len(batch) < _SCAN_BATCH:
            return found, ""
        if scanned >= MAX_QUALIFIED_SCAN:
            return found, after


def _locked_flow(tx: Transaction, name: str) -> FlowRow:
    # Locked: publishes and alias changes of one flow on several replicas take turns.
    flow = tx.get_flow(name, lock=True)
    if flow is None:
        raise flow_not_exists(name)
    return flow


def _counter(tx: Transaction, flow_name: str) -> tuple[int, int]:
    """The last version number given and how many versions are kept."""
    row = tx.get_object(flow_name, COUNTER_KIND, COUNTER_NAME, lock=True)
    if row is None:
        return 0, 0
    data = json.loads(row.data)
    return int(data["Last"]), int(data["Kept"])


def _put_counter(tx: Transaction, flow_name: str, last: int, kept: int, now: float) -> None:
    data = json.dumps({"Last": last, "Kept": kept})
    tx.put_object(FlowObjectRow(flow_name, COUNTER_KIND, COUNTER_NAME, data, now, now))


def _aliases(tx: Transaction, flow_name: str) -> list[FlowAliasInfo]:
    """Every alias of a flow (at most `MAX_ALIASES`)."""
    rows = tx.list_objects(flow_name, ALIAS_KIND, "", MAX_ALIASES + 1)
    return [FlowAliasInfo.of(r) for r in rows]


def _check_routes_exist(tx: Transaction, flow_name: str, routes: tuple[Route, ...]) -> None:
    for route in routes:
        if _published(tx, flow_name, route.version) is None:
            raise error(
                "FlowVersionNotExists",
                f"RoutingConfigurations names version {route.version}, which flow "
                f"'{flow_name}' has not published (or was deleted)",
            )


def _page_token(next_token: str, what: str) -> str:
    """A NextToken this API gave for a listing: a name, at most 128 characters."""
    if len(next_token) > 128:
        raise EngineError.of("InvalidArgument", f"NextToken is not one {what} gave")
    return next_token


class VersionOperations:
    """The version and alias actions of the API, as `Engine` methods."""

    _runtime: Runtime
    _routing: random.Random
    """Where aliases draw the version of each start from (seeded in tests)."""

    # -- published versions --------------------------------------------------------------------

    async def publish_flow_version(self, flow_name: str, description: str = "") -> FlowVersionInfo:
        """Publish the flow as it is now as its next version (PublishFlowVersion).

        Raises:
            EngineError: `FlowNotExists`; `InvalidArgument` for a long description or when the
                flow keeps `MAX_VERSIONS` versions already.
        """
        description = check_description(description)
        now = self._runtime.clock()

        def publish(tx: Transaction, ctx: TxContext) -> FlowVersionInfo:
            flow = _locked_flow(tx, flow_name)
            last, kept = _counter(tx, flow_name)
            if kept >= MAX_VERSIONS:
                raise EngineError.of(
                    "InvalidArgument",
                    f"flow '{flow_name}' keeps {MAX_VERSIONS} published versions, the most it "
                    "can; delete old ones (DeleteFlowVersion) to publish another",
                )
            info = FlowVersionInfo(
                flow_name,
                last + 1,
                description,
                datetime.fromtimestamp(now, UTC),
                flow.version,
                flow.description,
                flow.environment,
                flow.role_arn,
                flow.modified,
            )
            if not tx.create_object(info.to_row()):  # the counter is locked: cannot happen
                raise EngineError.of("InternalError", f"version {info.version} exists already")
            _put_counter(tx, flow_name, info.version, kept + 1, now)
            return info

        return await self._runtime.committer.submit(publish)

    async def list_flow_versions(
        self, flow_name: str, limit: int | None = None, next_token: str = ""
    ) -> Page[FlowVersionInfo]:
        """A page of a flow's published versions, oldest first (ListFlowVersions).

        The `next_token` of a page is the number of its last version.
        """
        size = page_size(limit, DEFAULT_PAGE, MAX_OBJECTS_PAGE, "Limit")
        after = version_key(parse_version(next_token, "NextToken")) if next_token else ""

        def page(tx: Transaction) -> list[FlowObjectRow] | None:
            if tx.get_flow(flow_name) is None:
                return None
            return tx.list_objects(flow_name, VERSION_KIND, after, size + 1)

        rows = await self._runtime.committer.read(page)
        if rows is None:
            raise flow_not_exists(flow_name)
        items = [FlowVersionInfo.of(r) for r in rows[:size]]
        return Page(items, str(items[-1].version) if len(rows) > size else "")

    async def delete_flow_version(self, flow_name: str, version: str | int) -> None:
        """Delete a published version (DeleteFlowVersion); executions that ran it keep it.

        Raises:
            EngineError: `FlowNotExists`, `FlowVersionNotExists`, or `FlowVersionInUse` when an
                alias routes to it (the message names the alias).
        """
        number = parse_version(version, "FlowVersion")
        now = self._runtime.clock()

        def delete(tx: Transaction, ctx: TxContext) -> None:
            _locked_flow(tx, flow_name)
            users = [a.name for a in _aliases(tx, flow_name) if number in a.versions()]
            if users:
                named = ", ".join(f"'{n}'" for n in users)
                raise error(
                    "FlowVersionInUse",
                    f"version {number} of flow '{flow_name}' cannot be deleted: the alias "
                    f"{named} routes to it; change or delete the alias first",
                )
            if not tx.delete_object(flow_name, VERSION_KIND, version_key(number)):
                raise version_not_exists(flow_name, number)
            last, kept = _counter(tx, flow_name)
            _put_counter(tx, flow_name, last, max(0, kept - 1), now)

        await self._runtime.committer.submit(delete)

    # -- aliases -------------------------------------------------------------------------------

    async def create_flow_alias(
        self, flow_name: str, name: str, routing_configurations: Any, description: str = ""
    ) -> FlowAliasInfo:
        """Create an alias routing to one or two published versions (CreateFlowAlias).

        Args:
            flow_name: the flow.
            name: the alias's name: letters, digits, `_` and `-`, starting with a letter or `_`.
            routing_configurations: `[{"Version": "1", "Weight": 100}]` (a list, or its JSON
                text): one or two versions, weights adding up to 100.
            description: free text.

        Raises:
            EngineError: `FlowNotExists`, `FlowAliasAlreadyExists`, `FlowVersionNotExists`
                (a version not published), `InvalidArgument` (a bad name or routing).
        """
        check_name(name, "alias name")
        routes = parse_routes(routing_configurations)
        description = check_description(description)
        now = datetime.fromtimestamp(self._runtime.clock(), UTC)

        def create(tx: Transaction, ctx: TxContext) -> FlowAliasInfo:
            _locked_flow(tx, flow_name)
            if tx.get_object(flow_name, ALIAS_KIND, name) is not None:
                raise already_exists("FlowAliasAlreadyExists", "Flow alias", name, flow_name)
            if len(_aliases(tx, flow_name)) >= MAX_ALIASES:
                raise EngineError.of(
                    "InvalidArgument",
                    f"flow '{flow_name}' has {MAX_ALIASES} aliases, the most it can have",
                )
            _check_routes_exist(tx, flow_name, routes)
            info = FlowAliasInfo(flow_name, name, description, routes, now, now)
            tx.create_object(info.to_row())
            return info

        return await self._runtime.committer.submit(create)

    async def describe_flow_alias(self, flow_name: str, name: str) -> FlowAliasInfo:
        """An alias (DescribeFlowAlias).

        Raises:
            EngineError: `FlowNotExists`, `FlowAliasNotExists`.
        """

        def find(tx: Transaction) -> FlowObjectRow | bool | None:
            if tx.get_flow(flow_name) is None:
                return False
            return tx.get_object(flow_name, ALIAS_KIND, name)

        row = await self._runtime.committer.read(find)
        if row is False:
            raise flow_not_exists(flow_name)
        if not isinstance(row, FlowObjectRow):
            raise alias_not_exists(flow_name, name)
        return FlowAliasInfo.of(row)

    async def list_flow_aliases(
        self, flow_name: str, limit: int | None = None, next_token: str = ""
    ) -> Page[FlowAliasInfo]:
        """A page of a flow's aliases by name (ListFlowAliases); `next_token` is a name."""
        size = page_size(limit, DEFAULT_PAGE, MAX_OBJECTS_PAGE, "Limit")
        after = _page_token(next_token, "ListFlowAliases")

        def page(tx: Transaction) -> list[FlowObjectRow] | None:
            if tx.get_flow(flow_name) is None:
                return None
            return tx.list_objects(flow_name, ALIAS_KIND, after, size + 1)

        rows = await self._runtime.committer.read(page)
        if rows is None:
            raise flow_not_exists(flow_name)
        items = [FlowAliasInfo.of(r) for r in rows[:size]]
        return Page(items, items[-1].name if len(rows) > size else "")

    async def update_flow_alias(
        self,
        flow_name: str,
        name: str,
        routing_configurations: Any = None,
        description: str | None = None,
    ) -> FlowAliasInfo:
        """Change an alias's routing or description (UpdateFlowAlias); None keeps a field.

        Executions already started keep the version they were given.

        Raises:
            EngineError: `FlowNotExists`, `FlowAliasNotExists`, `FlowVersionNotExists`,
                `InvalidArgument`.
        """
        routes = None if routing_configurations is None else parse_routes(routing_configurations)
        if description is not None:
            description = check_description(description)
        now = datetime.fromtimestamp(self._runtime.clock(), UTC)

        def update(tx: Transaction, ctx: TxContext) -> FlowAliasInfo:
            _locked_flow(tx, flow_name)
            row = tx.get_object(flow_name, ALIAS_KIND, name, lock=True)
            if row is None:
                raise alias_not_exists(flow_name, name)
            old = FlowAliasInfo.of(row)
            if routes is not None:
                _check_routes_exist(tx, flow_name, routes)
            info = FlowAliasInfo(
                flow_name,
                name,
                old.description if description is None else description,
                old.routes if routes is None else routes,
                old.created_time,
                now,
            )
            tx.put_object(info.to_row())
            return info

        return await self._runtime.committer.submit(update)

    async def delete_flow_alias(self, flow_name: str, name: str) -> None:
        """Delete an alias (DeleteFlowAlias); executions started with it are kept.

        Raises:
            EngineError: `FlowNotExists`, `FlowAliasNotExists`.
        """

        def delete(tx: Transaction, ctx: TxContext) -> None:
            _locked_flow(tx, flow_name)
            if not tx.delete_object(flow_name, ALIAS_KIND, name):
                raise alias_not_exists(flow_name, name)

        await self._runtime.committer.submit(delete)

    # -- for the other operations --------------------------------------------------------------

    async def _flow_version(
        self, flow_name: str, version: str
    ) -> tuple[FlowRow, FlowVersionInfo, str]:
        """The flow, its published ``version`` and that version's definition (DescribeFlow).

        Raises:
            EngineError: `FlowNotExists`, `FlowVersionNotExists`, `InvalidArgument`.
        """
        number = parse_version(version, "FlowVersion")

        def find(tx: Transaction) -> tuple[FlowRow | None, FlowVersionInfo | None, str]:
            flow = tx.get_flow(flow_name)
            found = None if flow is None else _published(tx, flow_name, number)
            text = "" if found is None else tx.flow_definition(flow_name, found.revision) or ""
            return flow, found, text

        flow, found, text = await self._runtime.committer.read(find)
        if flow is None:
            raise flow_not_exists(flow_name)
        if found is None:
            raise version_not_exists(flow_name, number)
        return flow, found, text
