"""The engine's operations: flows, executions and task reports, with Serverless Workflow rules.

    async with Engine(open_store("sqlite:///relayflow.db")) as engine:
        await engine.create_flow("orders", definition=text)
        run = await engine.start_execution("orders", input={"id": 7}, name="order-7")
        done = await engine.describe_execution("orders", "order-7", wait_seconds=30)

Every write returns once it is durable. Refusals are `EngineError`s with a stable code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_EXECUTIONS_PAGE,
    check_name,
    check_text,
    page_size,
    parse_object,
)
from relayflow.engine.batches import TxContext
from relayflow.engine.bulk import BulkOperations
from relayflow.engine.childflows import ChildFlowIntegration
from relayflow.engine.correlation import CorrelationOperations
from relayflow.engine.express import (
    ExpressOperations,
    refuse_express_start,
)
from relayflow.engine.family import FamilyOperations, link_parent, with_family
from relayflow.engine.flows import FlowOperations
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.integration import Integration
from relayflow.engine.model import ExecutionState, Start, Stop
from relayflow.engine.outcomes import MAX_CAUSE_CHARS, MAX_ERROR_CHARS
from relayflow.engine.records import ExecutionInfo, Page
from relayflow.engine.redrive import RedriveOperations
from relayflow.engine.reports import ReportOperations
from relayflow.engine.retention import RetentionOperations
from relayflow.engine.runtime import Runtime
from relayflow.engine.schedules import ScheduleOperations
from relayflow.engine.snapshot import dump_state
from relayflow.engine.tokens import check_issued, parse_token
from relayflow.engine.versions import (
    Target,
    VersionOperations,
    execution_info,
    flow_not_exists,
    list_qualified,
    resolve_qualifier,
)
from relayflow.engine.waiting import WaitingOperations, waiting_of
from relayflow.errors import EngineError, not_exists
from relayflow.limits import DEFAULT_LIMITS, DefinitionLimits, Limits
from relayflow.store import ExecutionRow, Store, Transaction, open_store

if TYPE_CHECKING:
    from relayflow.config import Config

__all__ = ["Engine"]

T = TypeVar("T")


def served(integrations: Sequence[Integration]) -> list[Integration]:
    """What an engine with ``integrations`` serves: them, then its own child flows."""
    return [*integrations, ChildFlowIntegration()]


class Engine(
    FlowOperations,
    ScheduleOperations,
    VersionOperations,
    ExpressOperations,
    ReportOperations,
    RedriveOperations,
    BulkOperations,
    WaitingOperations,
    RetentionOperations,
    FamilyOperations,
    CorrelationOperations,
):
    """The embedded engine: the operations of the Serverless Workflow API on a runtime it holds.

    Executions are here; flows, schedules, published versions and aliases, Express executions,
    task reports, redrives, bulk actions, what is waiting, retention, families of executions
    and reports by correlation key are in the modules of the classes it inherits, one group
    each.

    Every engine serves child flows (`relayflow.engine.childflows`) after the integrations
    it is given, so a plugin that claims `acs:fnf` resources comes first.

    Args:
        store: where everything is kept.
        integrations: the integrations task steps can use, asked in order.
        limits: engine limits.
        token_secret: the HMAC secret for task tokens; by default the store makes and keeps one.
        lease_seconds: how long a claimed outbox row stays with this engine without renewal;
            by default the store's (`Store.default_lease_seconds`).
        poll_seconds: how often the engine looks for work it was not told about (timers due,
            task attempts left by a crash).
        clock: the time source (seconds since the epoch); tests may pass their own.
        plugins: the plugins whose hooks see task requests and lifecycle events (a
            `relayflow.plugins.PluginManager`, or anything with the `EngineHooks` methods).
        definition_limits: the budgets a flow definition is read within.
        routing_random: where aliases draw the version each start runs from; tests pass a
            seeded `random.Random` to make it repeatable.
        retention_days: ended executions older than this many days are deleted by the
            engine (`relayflow.engine.retention`); None keeps them.
    """

    def __init__(
        self,
        store: Store,
        *,
        integrations: Iterable[Integration] = (),
        limits: Limits | None = None,
        token_secret: bytes | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        plugins: EngineHooks | None = None,
        definition_limits: DefinitionLimits = DEFAULT_LIMITS,
        routing_random: random.Random | None = None,
        retention_days: float | None = None,
    ) -> None:
        self._runtime = Runtime(
            store,
            integrations=served(list(integrations)),
            limits=limits,
            token_secret=token_secret,
            lease_seconds=lease_seconds,
            poll_seconds=poll_seconds,
            clock=clock,
            plugins=plugins,
            definition_limits=definition_limits,
        )
        self._definitions = ThreadPoolExecutor(1, thread_name_prefix="relayflow-definitions")
        self._ping: asyncio.Future[str | None] | None = None
        self._routing = routing_random or random.Random()
        self._retention_days = retention_days
        self._told_started = False  # the plugins heard of the start: they hear of the stop

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        integrations: list[Integration],
        plugins: EngineHooks | None = None,
        store_url: str | None = None,
        poll_seconds: float | None = None,
    ) -> Engine:
        """An engine as `relayflow.toml`'s `[engine]` table describes it.

        Raises:
            StoreError: the store cannot be opened.
        """
        settings = config.engine
        return cls(
            open_store(store_url or settings.store),
            integrations=integrations,
            limits=settings.limits(),
            definition_limits=settings.definition_limits(),
            token_secret=settings.token_secret.encode() if settings.token_secret else None,
            lease_seconds=settings.lease_seconds,
            poll_seconds=min(settings.poll_seconds, poll_seconds or settings.poll_seconds),
            plugins=plugins,
            retention_days=settings.retention_days,
        )

    @property
    def store(self) -> Store:
        """The store this engine runs on."""
        return self._runtime.store

    @property
    def integrations(self) -> list[Integration]:
        """The integrations task steps can use, in the order they are asked (child flows last)."""
        return self._runtime.integrations

    @property
    def accepting(self) -> bool:
        """Whether the engine runs and takes new work (False from `begin_shutdown` on)."""
        return self._runtime.accepting

    @property
    def closing(self) -> bool:
        """Whether `begin_shutdown` (or `close`) was called."""
        return self._runtime.shutting_down

    def derived_key(self, purpose: str) -> bytes:
        """A secret key for ``purpose`` (such as `console-session`), derived from the token secret.

        Every engine on the same store derives the same key, so what one replica signs with it
        another accepts; the token secret itself never leaves the engine. Call after `start`.
        """
        secret = self._runtime.secret
        if not secret:
            raise RuntimeError("derived_key needs a started engine")
        return hmac.new(secret, f"relayflow:{purpose}".encode(), hashlib.sha256).digest()

    async def start(self) -> None:
        """Take over the store, start the loops, and hand the integrations their reporter."""
        await self._runtime.start()
        for integration in self._runtime.integrations:
            integration.bind(self)
        await self._start_retention()
        hooks = self._runtime.hooks
        if hooks is not None and not self._told_started:
            self._told_started = True
            hooks.engine_started(self)

    def begin_shutdown(self) -> None:
        """Start stopping: `accepting` turns False and pending long polls answer at once.

        A server calls it as soon as it is told to stop, before it stops serving requests, so
        that its readiness check fails and no caller waits out a long poll. Operations other
        than long polls still work until `close`.
        """
        self._runtime.begin_shutdown()

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop taking new work; integrations still running get ``grace_seconds`` to finish.

        Outcomes that arrive within the grace period are committed. Task attempts still
        running after it are abandoned here and dispatched again by the next engine.
        """
        hooks = self._runtime.hooks
        if hooks is not None and self._told_started:
            self._told_started = False
            hooks.engine_stopping(self)  # while the store still answers
        self.begin_shutdown()
        await self._stop_retention()
        await self._express_drain(grace_seconds)
        await self._runtime.close(grace_seconds)
        self._definitions.shutdown(wait=False)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` on a read-only view of the store, off the event loop, and return its result.

        For tools, tests and benchmarks that inspect what is stored (``tx.count_executions``,
        say); it sees every change that has been answered. Changes go through the operations.
        """
        return await self._runtime.committer.read(fn)

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether the store answers a read within ``timeout`` seconds (for `/ready`).

        Callers that come while a read is outstanding wait for that one rather than start
        another: a store that hangs holds one reader thread, not one per readiness check.
        """
        probe = self._ping
        if probe is None or probe.done():
            probe = self._ping = asyncio.ensure_future(
                self._runtime.committer.read(lambda tx: tx.get_meta("schema_version"))
            )
            # Its outcome may come after every caller gave up: retrieve it, so it is not logged.
            probe.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(probe)
        except Exception:  # a timeout, a store error or a stopped engine: all mean not ready
            return False
        return True

    async def use_nonce(self, key: str, window: float) -> bool:
        """Record a request nonce in the store; False when it was recorded there before.

        Shared by every replica on the store, so a signed request replayed to another replica
        is refused too. Nonces are kept at least ``window`` seconds.
        """
        now = self._runtime.clock()
        return await self._runtime.committer.submit(lambda tx, ctx: tx.use_nonce(key, now, window))

    # -- executions ---------------------------------------------------------------------------

    async def start_execution(
        self,
        flow_name: str,
        input: Any = None,
        name: str | None = None,
        callback_token: str = "",
        qualifier: str = "",
        parent: tuple[str, str] | None = None,
    ) -> ExecutionInfo:
        """Start an execution (StartExecution), idempotent by name.

        The same name while that execution runs returns it; after it has finished the name is
        taken (`ExecutionAlreadyExists`). Without a name, one is generated.

        ``qualifier`` runs a published version (its number) or what an alias routes to (its
        name) instead of the flow's current definition (`relayflow.engine.versions`); the
        execution records the version it runs (`ExecutionInfo.flow_version`).

        ``parent`` (flow, name) is the execution whose task starts this one (child flows):
        the two are linked (`relayflow.engine.family`).
        """
        data = parse_object(input, "Input", self._runtime.limits.max_json_depth)
        exec_name = check_name(name, "execution name") if name else str(uuid.uuid4())
        if callback_token:
            try:
                check_issued(self._runtime.secret, parse_token(callback_token))
            except EngineError:
                raise EngineError.of(
                    "InvalidArgument",
                    "CallbackFnFTaskToken is not a task token relayflow issued; pass the "
                    "waiting task's token exactly as the task received it",
                ) from None
        now = self._runtime.clock()

        def start(tx: Transaction, ctx: TxContext) -> ExecutionInfo:
            flow = tx.get_flow(flow_name)
            if flow is None:
                raise flow_not_exists(flow_name)
            refuse_express_start(flow)
            target = (
                resolve_qualifier(tx, flow, qualifier, self._routing)
                if qualifier
                else Target(0, flow.version, flow.environment)
            )
            row = ExecutionRow(
                0,
                uuid.uuid4().hex,
                flow_name,
                exec_name,
                flow.id,
                target.revision,
                "Running",
                json.dumps(data),
                None,
                "",
                "",
                now,
                None,
                dump_state(ExecutionState(environment=target.variables())),
                callback_token,
                target.published_version,
            )
            # Inserting first settles a race between replicas in the database: one insert
            # wins, the other finds the name taken and answers as for any repeated start.
            row_id = tx.insert_execution(row)
            if row_id is None:
                existing = tx.get_execution(flow_name, exec_name, lock=True)
                assert existing is not None
                if existing.status == "Running":
                    return execution_info(tx, existing)
                raise EngineError.of(
                    "ExecutionAlreadyExists",
                    f"Execution '{exec_name}' already exists in flow '{flow_name}' and has ended "
                    f"({existing.status}); choose another name",
                )
            context = link_parent(tx, row_id, parent)  # the child's history names its parent
            stored = tx.lock_execution(row_id)
            assert stored is not None
            self._runtime.applier.apply(tx, ctx, stored, Start(data, context))
            final = tx.lock_execution(row_id)
            assert final is not None
            same = target.revision == flow.version
            definition = flow.definition if same else tx.flow_definition(flow_name, target.revision)
            return ExecutionInfo.of(final, definition or "", target.environment)

        # Keyed: batches lock executions in one order on every replica (no deadlocks).
        return await self._runtime.committer.submit(start, key=(flow_name, exec_name))

    async def _execution(
        self, flow_name: str, name: str, include_waiting: bool = False
    ) -> ExecutionInfo:
        def find(tx: Transaction) -> ExecutionInfo | None:
            row = tx.get_execution(flow_name, name)
            if row is None:
                return None
            info = with_family(tx, row, execution_info(tx, row))
            if include_waiting:
                info = dataclasses.replace(info, waiting=waiting_of(tx, row))
            return info

        info = await self._runtime.committer.read(find)
        if info is None:
            raise not_exists("ExecutionNotExists", "Execution", name, flow_name)
        return info

    async def describe_execution(
        self, flow_name: str, name: str, wait_seconds: float = 0, *, include_waiting: bool = False
    ) -> ExecutionInfo:
        """An execution (DescribeExecution); with ``wait_seconds`` (0-60), waits for its end.

        With ``include_waiting``, `ExecutionInfo.waiting` says what it waits on now
        (`relayflow.engine.waiting`).
        """
        if not 0 <= wait_seconds <= 60:
            raise EngineError.of(
                "InvalidArgument", f"WaitTimeSeconds must be from 0 to 60, got {wait_seconds}"
            )
        if wait_seconds == 0:
            return await self._execution(flow_name, name, include_waiting)
        latest: ExecutionInfo | None = None

        async def ended() -> bool:
            nonlocal latest
            latest = await self._execution(flow_name, name, include_waiting)
            return latest.done

        # The wait's first check is the first read: one read for an execution that has ended,
        # two for one that ends while waited on. After `begin_shutdown` the wait ends after
        # that check: `latest` is the state as it stands.
        await self._runtime.end_waiters.wait((flow_name, name), ended, wait_seconds)
        assert latest is not None
        return latest

    async def wait_for_execution(
        self, flow_name: str, name: str, timeout: float | None = None
    ) -> ExecutionInfo:
        """Wait until the execution ends, or ``timeout`` seconds pass (as `AsyncClient`'s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            info = await self.describe_execution(flow_name, name, wait)
            if info.done or wait == 0 or self.closing:  # a stopping engine waits no more
                return info

    async def list_executions(
        self,
        flow_name: str,
        *,
        status: str | None = None,
        name_prefix: str | None = None,
        started_from: float | None = None,
        started_to: float | None = None,
        limit: int | None = None,
        next_token: str = "",
        qualifier: str = "",
    ) -> Page[ExecutionInfo]:
        """A page of a flow's executions by name (ListExecutions).

        With ``qualifier``, only those that ran that published version, or one of the versions
        the alias of that name routes to now (`relayflow.engine.versions.list_qualified`).
        """
        size = page_size(limit, DEFAULT_PAGE, MAX_EXECUTIONS_PAGE, "Limit")
        filters: dict[str, Any] = {
            "status": status,
            "name_prefix": name_prefix,
            "started_from": started_from,
            "started_to": started_to,
        }

        def page(tx: Transaction) -> Page[ExecutionInfo] | None:
            if tx.get_flow(flow_name) is None:
                return None
            if qualifier:
                rows, token = list_qualified(tx, flow_name, qualifier, next_token, size, filters)
            else:
                rows = tx.list_executions(flow_name, after=next_token, limit=size + 1, **filters)
                rows, token = rows[:size], rows[size - 1].name if len(rows) > size else ""
            seen: dict[int, str] = {}
            return Page([execution_info(tx, r, "", seen) for r in rows], token)

        found = await self._runtime.committer.read(page)
        if found is None:
            raise flow_not_exists(flow_name)
        return found

    async def stop_execution(
        self, flow_name: str, name: str, error: str = "", cause: str = ""
    ) -> ExecutionInfo:
        """Stop a running execution (StopExecution)."""
        check_text(error, "Error", MAX_ERROR_CHARS)
        check_text(cause, "Cause", MAX_CAUSE_CHARS)

        def stop(tx: Transaction, ctx: TxContext) -> ExecutionInfo:
            row = tx.get_execution(flow_name, name, lock=True)
            if row is None:
                raise not_exists("ExecutionNotExists", "Execution", name, flow_name)
            if row.status != "Running":
                raise EngineError.of(
                    "ExecutionNotRunning",
                    f"Execution '{name}' is {row.status}; only a running execution can be stopped",
                )
            self._runtime.applier.apply(tx, ctx, row, Stop(error, cause))
            final = tx.lock_execution(row.id)
            assert final is not None
            return execution_info(tx, final)

        return await self._runtime.committer.submit(stop, key=(flow_name, name))
