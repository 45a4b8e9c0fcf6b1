"""The runtime around the interpreter: its parts, wired together, started and stopped.

- `committer.Committer`: the one writer; jobs run batched in store transactions and callers
  are answered after the commit;
- `applier.Applier`: applies commands to executions inside those transactions;
- `dispatch.Dispatcher`: hands committed outbox rows (task attempts) to integrations;
- `timers.Loops`: fires due timers and recovers outbox rows nobody holds;
- `waiters.EndWaiters`: long polls waiting for an execution to end.

After each commit the runtime carries out what the transaction noted: lifecycle events go to
the plugins, outbox rows to the dispatcher, new timers wake the timer loop, ended executions
wake their long polls. Effects are recorded in the same transaction as the events that caused
them, so a crash loses none: at start the runtime takes over every lease of its store and
re-dispatches what was in flight.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable

from relayflow.engine.applier import Applier
from relayflow.engine.batches import TxContext
from relayflow.engine.committer import Committer
from relayflow.engine.dispatch import Dispatcher
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.integration import Integration
from relayflow.engine.timers import Loops
from relayflow.engine.waiters import EndWaiters
from relayflow.limits import DEFAULT_LIMITS, DefinitionLimits, Limits
from relayflow.store import Store

__all__ = ["Runtime"]

log = logging.getLogger("relayflow.engine")


class Runtime:
    """Runs executions stored in ``store``. `Engine` holds one and adds the public operations.

    Args:
        store: where everything is kept.
        integrations: the integrations task steps can use, asked in order.
        limits: engine limits.
        token_secret: the HMAC secret for task tokens; by default the store makes and keeps one.
        lease_seconds: how long a claimed outbox row stays with this engine without renewal.
        poll_seconds: how often the loops look for work they were not told about.
        clock: the time source (seconds since the epoch); tests may pass their own.
        plugins: the plugins whose hooks see task requests and lifecycle events.
        definition_limits: the budgets a flow definition is read within.
    """

    def __init__(
        self,
        store: Store,
        *,
        integrations: Iterable[Integration] = (),
        limits: Limits | None = None,
        token_secret: bytes | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        plugins: EngineHooks | None = None,
        definition_limits: DefinitionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.hooks = plugins
        self.limits = limits or Limits()
        self.definition_limits = definition_limits
        self.clock = clock
        self._secret = token_secret
        self.applier = Applier(
            limits=self.limits,
            definition_limits=definition_limits,
            clock=clock,
            owner=uuid.uuid4().hex,
            lease_seconds=lease_seconds,
            observed=plugins is not None and plugins.observes_lifecycle,
        )
        self.committer = Committer(store, self._after_commit)
        self.dispatcher = Dispatcher(list(integrations), plugins, self.committer, self.applier)
        self.loops = Loops(self.committer, self.applier, self.dispatcher, poll_seconds)
        self.end_waiters = EndWaiters(clock)
        self._running = False
        self._stopping = False

    @property
    def integrations(self) -> list[Integration]:
        """The integrations task steps can use, in the order they are asked."""
        return self.dispatcher.integrations

    @property
    def secret(self) -> bytes:
        """The HMAC secret for task tokens (empty until the runtime has started)."""
        return self.applier.secret

    @property
    def accepting(self) -> bool:
        """Whether the runtime runs and takes new work."""
        return self._running and not self._stopping

    async def start(self) -> None:
        """Take over the store and start the writer and the loops."""
        self.store.acquire_engine_lock()
        self.applier.secret = await self.committer.on_writer(self._load_secret)
        self._running = True
        self.dispatcher.open = True
        self.committer.start()
        self.loops.start()

    def _load_secret(self) -> bytes:
        with self.store.transaction() as tx:
            if self.store.single_engine:
                tx.release_leases()
            if self._secret is not None:
                return self._secret
            value = tx.get_meta("token_secret")
            if value is None:
                value = secrets.token_hex(32)
                tx.set_meta("token_secret", value)
            return bytes.fromhex(value)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop taking new work; integrations still running get ``grace_seconds`` to finish.

        Outcomes that arrive within the grace period are committed. Task attempts still
        running after it are abandoned here and dispatched again by the next engine.
        """
        if not self._running or self._stopping:
            return
        self._stopping = True
        self.dispatcher.open = False
        await self.loops.stop()
        await self.dispatcher.drain(grace_seconds)
        await self.committer.stop()
        self._running = False
        for integration in self.integrations:
            try:
                await integration.aclose()
            except Exception:  # closing goes on: the store must still be released
                log.exception("integration %s failed to close", integration.name)
        self.store.close()

    async def _after_commit(self, ctx: TxContext) -> None:
        if self.hooks is not None:
            for flow_name, execution_name, events in ctx.committed:
                self.hooks.notify(flow_name, execution_name, events)
        for row in ctx.outbox:
            self.dispatcher.start(row)
        if ctx.earliest_timer is not None:
            self.loops.wake()
        self.end_waiters.wake(ctx.ended)
