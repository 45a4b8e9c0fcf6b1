"""The flow actions of the API (CreateFlow, UpdateFlow, DescribeFlow, ListFlows, DeleteFlow).

`FlowOperations` holds them as `Engine` methods, as the other groups of operations are held.
A definition is loaded and checked on a thread of its own (`Engine`'s ``_definitions``), so a
large one does not stall the API; the writes go through the committer, so two replicas creating
one name at once give one flow and one `FlowAlreadyExists`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_FLOWS_PAGE,
    check_environment,
    check_name,
    page_size,
)
from relayflow.engine.batches import TxContext
from relayflow.engine.express import EXECUTION_MODES, check_express_flow
from relayflow.engine.records import FlowInfo, Page
from relayflow.engine.retention import FORCE_ROUNDS, busy_flow
from relayflow.engine.runtime import Runtime
from relayflow.engine.versions import flow_not_exists
from relayflow.errors import EngineError, already_exists
from relayflow.fdl import DefinitionError, Flow, load_flow
from relayflow.store import FlowRow, Transaction

if TYPE_CHECKING:
    from relayflow.engine.version_records import FlowVersionInfo

__all__ = ["FlowOperations"]


class FlowOperations:
    """The flow actions of the API, as `Engine` methods."""

    _runtime: Runtime
    _definitions: ThreadPoolExecutor
    """The thread definitions are loaded on."""

    if TYPE_CHECKING:  # `Engine`'s, from the groups that hold them

        async def _flow_version(
            self, flow_name: str, version: str
        ) -> tuple[FlowRow, FlowVersionInfo, str]:
            """The flow, one of its published versions and its definition (`VersionOperations`)."""

        async def _stop_all_running(self, flow_name: str) -> None:
            """Stop every running execution of a flow (`RetentionOperations`)."""

    async def _validate_definition(self, name: str, definition: str) -> Flow:
        """Load ``definition`` on a thread of its own: a large one must not stall the API."""

        def validate() -> Flow:
            try:
                return load_flow(definition, name, limits=self._runtime.definition_limits)
            except DefinitionError as exc:
                raise EngineError.of("InvalidDefinition", str(exc)) from None

        return await asyncio.get_running_loop().run_in_executor(self._definitions, validate)

    async def create_flow(
        self,
        name: str,
        definition: str,
        description: str = "",
        type: str = "FDL",
        role_arn: str = "",
        execution_mode: str = "Standard",
        environment: str = "",
    ) -> FlowInfo:
        """Create a flow (CreateFlow).

        Args:
            name: the flow's name.
            definition: its FDL text.
            description: free text.
            type: `FDL`, the only type.
            role_arn: kept and shown, not used.
            execution_mode: `Standard` or `Express` (`relayflow.engine.express`).
            environment: the flow's `Environment`, JSON text ("" for none).
        """
        check_name(name, "flow name")
        if execution_mode not in EXECUTION_MODES:
            raise EngineError.of(
                "InvalidArgument",
                f"ExecutionMode must be Standard or Express, got {execution_mode!r}",
            )
        environment = check_environment(environment)
        flow = await self._validate_definition(name, definition)
        if execution_mode == "Express":
            check_express_flow(flow, name)
        now = self._runtime.clock()

        def create(tx: Transaction, ctx: TxContext) -> FlowInfo:
            row = FlowRow(
                name,
                str(uuid.uuid4()),
                definition,
                description,
                type,
                role_arn,
                1,
                now,
                now,
                execution_mode,
                environment,
            )
            # The store settles two replicas creating one name at once: one of them wins.
            if not tx.create_flow(row):
                raise already_exists("FlowAlreadyExists", "Flow", name)
            return FlowInfo.of(row)

        return await self._runtime.committer.submit(create)

    async def update_flow(
        self,
        name: str,
        definition: str | None = None,
        description: str | None = None,
        role_arn: str | None = None,
        environment: str | None = None,
    ) -> FlowInfo:
        """Change a flow (UpdateFlow); running executions keep the definition they started with.

        ``environment`` None keeps the flow's Environment; "" clears it.
        """
        if environment is not None:
            environment = check_environment(environment)
        if definition is not None:
            checked: Flow | None = await self._validate_definition(name, definition)
        else:
            checked = None
        now = self._runtime.clock()

        def update(tx: Transaction, ctx: TxContext) -> FlowInfo:
            old = tx.get_flow(name, lock=True)  # another replica's update waits: none is lost
            if old is None:
                raise flow_not_exists(name)
            if checked is not None and old.execution_mode == "Express":
                check_express_flow(checked, name)
            row = FlowRow(
                name,
                old.id,
                definition if definition is not None else old.definition,
                description if description is not None else old.description,
                old.type,
                role_arn if role_arn is not None else old.role_arn,
                old.version + (definition is not None and definition != old.definition),
                old.created,
                now,
                old.execution_mode,
                environment if environment is not None else old.environment,
            )
            tx.put_flow(row)
            return FlowInfo.of(row)

        return await self._runtime.committer.submit(update)

    async def describe_flow(self, name: str, flow_version: str | int = "") -> FlowInfo:
        """A flow (DescribeFlow); with ``flow_version``, as that published version has it.

        A published version shows the definition, description, environment and role the flow
        had when it was published; its name, id, type and creation time are the flow's.
        """
        if flow_version:
            flow, version, definition = await self._flow_version(name, str(flow_version))
            published = dataclasses.replace(
                flow,
                definition=definition,
                description=version.flow_description,
                role_arn=version.role_arn,
                version=version.revision,
                modified=version.created_time.timestamp(),
                environment=version.environment,
            )
            return FlowInfo.of(published)
        row = await self._runtime.committer.read(lambda tx: tx.get_flow(name))
        if row is None:
            raise flow_not_exists(name)
        return FlowInfo.of(row)

    async def list_flows(self, limit: int | None = None, next_token: str = "") -> Page[FlowInfo]:
        """Flows by name (ListFlows); pass the page's `next_token` for the next page."""
        size = page_size(limit, DEFAULT_PAGE, MAX_FLOWS_PAGE, "Limit")
        rows = await self._runtime.committer.read(lambda tx: tx.list_flows(next_token, size + 1))
        more = len(rows) > size
        rows = rows[:size]
        return Page([FlowInfo.of(r) for r in rows], rows[-1].name if more else "")

    async def delete_flow(self, name: str, *, force: bool = False) -> None:
        """Delete a flow with its executions and their history (DeleteFlow).

        A flow with running executions is refused (`FlowHasRunningExecutions`) unless
        ``force``, which stops them first, as StopExecution does (their running children too),
        and then deletes. Executions started meanwhile are stopped in a further round, up to
        `FORCE_ROUNDS` rounds.
        """

        def delete(tx: Transaction, ctx: TxContext) -> int:
            # Counted in the transaction that deletes: on one writer, none can start between.
            running = tx.count_matching(name, status="Running")
            if running:
                return running
            if not tx.delete_flow(name):
                raise flow_not_exists(name)
            return 0

        for _ in range(FORCE_ROUNDS):
            if force:
                await self._stop_all_running(name)
            running = await self._runtime.committer.submit(delete)
            if not running:
                return
            if not force:
                break
        raise busy_flow(name, running, force)
