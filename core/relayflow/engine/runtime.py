"""The runtime around the interpreter: its parts, wired together, started and stopped.

- `committer.Committer`: the one writer; jobs run batched in store transactions and callers
  are answered after the commit;
- `applier.Applier`: applies commands to executions inside those transactions;
- `dispatch.Dispatcher`: hands committed outbox rows (task attempts) to integrations;
- `timers.Loops`: fires due timers and recovers outbox rows nobody holds;
- `ticker.Ticker`: starts the executions of schedules whose tick has come;
- `waiters.EndWaiters`: long polls waiting for an execution to end.

After each commit the runtime carries out what the transaction noted: lifecycle events go to
the plugins, outbox rows to the dispatcher, new timers wake the timer loop, ended executions
wake their long polls. Effects are recorded in the same transaction as the events that caused
them, so a crash loses none: at start the runtime of a single-engine store takes over every
lease and re-dispatches what was in flight.

Several runtimes (replicas) may share one store that is not single-engine (PostgreSQL). Nobody
owns an execution: each command locks its execution, outbox rows and timers are leased, and a
replica that dies leaves leases that the others take over once they run out. Executions that
end on one replica wake the long polls of the others through the store's notifications
(`Store.listen`), with polling as the fallback. Stopping is in two steps: `begin_shutdown`
(no more new work, long polls answered), then `close`, which hands this replica's leases back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable

from relayflow.engine.applier import Applier
from relayflow.engine.batches import END_CHANNEL, TxContext, ended_keys
from relayflow.engine.committer import Committer
from relayflow.engine.dispatch import Dispatcher
from relayflow.engine.hooks import EngineHooks, WriterCommit, store_kind
from relayflow.engine.integration import Integration
from relayflow.engine.ticker import Ticker
from relayflow.engine.timers import Loops
from relayflow.engine.waiters import EndWaiters
from relayflow.limits import DEFAULT_LIMITS, DefinitionLimits, Limits
from relayflow.store import Listener, Store, StoreError, Transaction
from relayflow.store.base import TOKEN_SECRET

__all__ = ["Runtime"]

log = logging.getLogger("relayflow.engine")


class Runtime:
    """Runs executions stored in ``store``. `Engine` holds one and adds the public operations.

    Args:
        store: where everything is kept.
        integrations: the integrations task steps can use, asked in order.
        limits: engine limits.
        token_secret: the HMAC secret for task tokens; by default the store makes and keeps one.
        lease_seconds: how long a claimed outbox row stays with this engine without renewal;
            None: the store's default (`Store.default_lease_seconds`).
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
        lease_seconds: float | None = None,
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
            lease_seconds=store.default_lease_seconds if lease_seconds is None else lease_seconds,
            observed=plugins is not None and plugins.observes_lifecycle,
        )
        # The work hooks (commit times, outbox and timer lag) only if a plugin has one: else
        # nothing is timed at all.
        self._work = plugins if plugins is not None and plugins.observes_work else None
        self._store_kind = store_kind(store)
        self.committer = Committer(store, self._after_commit, self.applier.rolled_back)
        self.committer.timed = self._work is not None
        self.dispatcher = Dispatcher(list(integrations), plugins, self.committer, self.applier)
        self.dispatcher.timed = self._work is not None
        self.loops = Loops(
            self.committer,
            self.applier,
            self.dispatcher,
            poll_seconds,
            jitter=not store.single_engine,
            hooks=self._work,
        )
        self.ticker = Ticker(
            self.committer, self.applier, poll_seconds, jitter=not store.single_engine
        )
        self.poll_seconds = poll_seconds
        self.end_waiters = EndWaiters(clock)
        self._listener: Listener | None = None
        self._running = False
        self._stopping = False  # close() has begun
        self._shutting_down = False  # begin_shutdown() was called

    @property
    def integrations(self) -> list[Integration]:
        """The integrations task steps can use, in the order they are asked."""
        return self.dispatcher.integrations

    @property
    def secret(self) -> bytes:
        """The HMAC secret for task tokens (empty until the runtime has started)."""
        return self.applier.secret

    @property
    def lease_seconds(self) -> float:
        """How long a claimed outbox row or timer stays with this engine without renewal."""
        return self.applier.lease_seconds

    @property
    def shutting_down(self) -> bool:
        """Whether `begin_shutdown` (or `close`) was called."""
        return self._shutting_down

    @property
    def accepting(self) -> bool:
        """Whether the runtime runs and takes new work (False from `begin_shutdown` on)."""
        return self._running and not self._stopping and not self._shutting_down

    async def start(self) -> None:
        """Take over the store and start the writer and the loops."""
        if self.store.single_engine:
            self.store.acquire_engine_lock()
        self.applier.secret = await self.committer.on_writer(self._load_secret)
        if self.store.notifies:
            self._listener = await self.store.listen(END_CHANNEL, self._ended_elsewhere)
        if not self.store.single_engine and self._listener is None:
            # Ends committed by other replicas reach this one's long polls by notification;
            # without one, waiters look again as often as the loops look for work.
            self.end_waiters.recheck_seconds = self.poll_seconds
        self._running = True
        self.dispatcher.open = True
        self.committer.start()
        self.loops.start()
        self.ticker.start()

    def _load_secret(self) -> bytes:
        with self.store.transaction() as tx:
            if self.store.single_engine:
                # Nobody else can hold a lease: whatever is leased was left by a crash.
                tx.release_leases()
            if self._secret is not None:
                return self._secret
            # Replicas starting together on a new store agree on the first secret written.
            value = tx.set_meta_if_absent(TOKEN_SECRET, secrets.token_hex(32))
            return bytes.fromhex(value)

    def _ended_elsewhere(self, payload: str | None) -> None:
        """A store notification: executions ended (None or "*": any may have)."""
        keys = ended_keys(payload)
        if keys is None:
            self.end_waiters.wake_all()
        else:
            self.end_waiters.wake(keys)

    def begin_shutdown(self) -> None:
        """Start stopping: take no new work and answer every long poll now.

        From now on `accepting` is False (a load balancer's readiness check sees it), pending
        and later long polls return promptly with the execution's current state, no new
        outbox rows are dispatched and the loops stop claiming. Requests still served write
        their task attempts unleased, for other engines to take at once. What is being
        dispatched goes on; `close` then waits for it and hands the remaining leases back.
        Safe to call more than once, and from a signal handler on the event loop (it does not
        block).
        """
        self._shutting_down = True
        self.dispatcher.open = False
        self.applier.keeps_new_work = False  # requests still served: their tasks go to peers
        self.loops.stop_claiming()
        self.ticker.stop_claiming()
        self.end_waiters.close()

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop taking new work; integrations still running get ``grace_seconds`` to finish.

        Outcomes that arrive within the grace period are committed. Task attempts still
        running after it are abandoned, and every lease this engine holds is handed back, so
        that another engine on the store (or the next one to start) dispatches them at once.
        """
        if not self._running or self._stopping:
            return
        self.begin_shutdown()
        self._stopping = True
        await self.dispatcher.drain(grace_seconds)  # the recovery loop renews meanwhile
        await self.loops.stop()
        await self.ticker.stop()
        if self._listener is not None:
            try:
                await self._listener.close()
            except Exception:  # closing goes on: the store must still be released
                log.exception("the store's listener failed to close")
            self._listener = None
        owner = self.applier.owner

        def release(tx: Transaction) -> None:
            tx.release_leases(owner)

        try:
            await self.committer.flush()  # outcomes of the grace period first
            await self.committer.alone(release)
        except StoreError as exc:  # the store is failing: the leases run out by themselves
            log.warning("could not hand back this engine's leases: %s", exc)
        except Exception:
            log.exception("could not hand back this engine's leases")
        await self.committer.stop()
        self._running = False
        for integration in self.integrations:
            try:
                await integration.aclose()
            except Exception:  # closing goes on: the store must still be released
                log.exception("integration %s failed to close", integration.name)
        self.store.close()

    def _tell_plugins(self, ctx: TxContext) -> None:
        """The lifecycle and work hooks for one committed batch."""
        if self.hooks is not None and ctx.committed:
            self.hooks.notify(ctx.committed)
        if self._work is not None and ctx.seconds is not None:
            self._work.batch_committed(WriterCommit(ctx.jobs, ctx.seconds, self._store_kind))

    async def _after_commit(self, ctx: TxContext) -> None:
        if (self.hooks is not None and ctx.committed) or (
            self._work is not None and ctx.seconds is not None
        ):
            # Off the commit's path: the writer starts the next batch meanwhile. Callbacks run
            # in the order they were scheduled, so before the tasks started below, and in
            # commit order.
            asyncio.get_running_loop().call_soon(self._tell_plugins, ctx)
        self.applier.committed()
        for row in ctx.outbox:
            self.dispatcher.start(row, ctx.committed_at)
        if ctx.earliest_timer is not None:
            self.loops.wake(ctx.earliest_timer)
        self.end_waiters.wake(ctx.ended)
