"""The runtime around the interpreter: one writer, the outbox dispatcher, the timer loop.

Every change goes through one queue to one writer task (the *committer*). It takes whatever
jobs are waiting, runs them in a single store transaction (each job in its own savepoint, so
one refused request does not undo the others) and resolves their futures only after the
commit: a caller is answered when its change is durable. Batching many jobs per commit is what
lets a 2-core machine go well past the store's raw commit rate.

After a commit the runtime carries out the effects the transaction recorded: outbox rows go to
the dispatcher, which invokes integrations; new timers wake the timer loop. Effects are
recorded in the same transaction as the events that caused them, so a crash loses none: at
start the runtime takes over every lease of its store and re-dispatches what was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from relayflow import jsontext
from relayflow.engine.batches import (
    Isolate,
    Job,
    RefusedAfterChange,
    TxContext,
    nothing,
    run_batch,
)
from relayflow.engine.integration import (
    Failed,
    Integration,
    TaskOutcome,
    TaskRequest,
)
from relayflow.engine.interpreter import Interpreter
from relayflow.engine.model import (
    ERROR_RUNTIME,
    CancelTimer,
    Command,
    ExecutionEnded,
    ExecutionState,
    InvokeTask,
    Limits,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    Transition,
)
from relayflow.engine.outcomes import outcome_command
from relayflow.engine.snapshot import dump_state, load_state
from relayflow.engine.tokens import mint_token, parse_token, verify_token
from relayflow.engine.waiters import EndWaiters
from relayflow.errors import EngineError, first_line
from relayflow.fdl import DEFAULT_LIMITS, DefinitionError, DefinitionLimits, Flow, load_flow
from relayflow.store import ExecutionRow, OutboxRow, Store, TimerRow, Transaction

if TYPE_CHECKING:
    from relayflow.plugins import PluginManager

__all__ = ["Runtime", "TxContext"]

log = logging.getLogger("relayflow.engine")

T = TypeVar("T")


def failed_as_unreadable(row: ExecutionRow) -> RefusedAfterChange:
    """The answer to a request on an execution that was just failed because it cannot be read."""
    return RefusedAfterChange(
        "ExecutionNotRunning",
        f"execution '{row.name}' could not be read and has been failed; it takes no more "
        "reports or commands",
        409,
    )


BATCH_LIMIT = 1024
FLOW_CACHE_ENTRIES = 256
FLOW_CACHE_TEXT_BYTES = 8 << 20  # some 120 MB of loaded flows
# What ends an execution whose own flow or state cannot be loaded: ending needs no steps.
_BARE_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: end\n"
TIMER_BATCH = 512


class Runtime:
    """Runs executions stored in ``store``. Use `Engine`, which adds the public operations.

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
        plugins: PluginManager | None = None,
        definition_limits: DefinitionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self._observed = plugins is not None and plugins.observes_lifecycle
        self.integrations = list(integrations)
        self.limits = limits or Limits()
        self.definition_limits = definition_limits
        # A stored definition passed the size budget when it was made: lowering it later must
        # not stop its executions.
        self._stored_limits = replace(definition_limits, max_bytes=1 << 30)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._secret = token_secret
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="relayflow-store")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="relayflow-read")
        self._queue: asyncio.Queue[Job[Any]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._timer_wake: asyncio.Event | None = None
        self.end_waiters = EndWaiters(clock)
        # Loaded flows by (flow id, version), least recently used first, with their text's size:
        # a loaded flow takes about 15 times its text, so the cache is bounded by both.
        self._flows: OrderedDict[tuple[str, int], tuple[Flow, Interpreter, int]] = OrderedDict()
        self._flow_bytes = 0
        self._running = False
        self._stopping = False

    @property
    def accepting(self) -> bool:
        """Whether the engine runs and takes new work."""
        return self._running and not self._stopping

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over the store and start the loops."""
        self.store.acquire_engine_lock()
        self._queue = asyncio.Queue()
        self._timer_wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._secret = await loop.run_in_executor(self._writer, self._load_secret)
        self._running = True
        self._tasks = [
            asyncio.create_task(self._commit_loop(), name="relayflow-committer"),
            asyncio.create_task(self._timer_loop(), name="relayflow-timers"),
            asyncio.create_task(self._recovery_loop(), name="relayflow-recovery"),
        ]

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
        committer, *loops = self._tasks
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=grace_seconds)
        late = list(self._inflight.values())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self.submit(nothing, atomic=False)  # every job queued before it has committed
        self._running = False
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        self._tasks.clear()
        self._inflight.clear()
        for integration in self.integrations:
            try:
                await integration.aclose()
            except Exception:  # closing goes on: the store must still be released
                log.exception("integration %s failed to close", integration.name)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.store.close()

    # -- the writer ---------------------------------------------------------------------------

    async def submit(self, fn: Callable[[Transaction, TxContext], T], *, atomic: bool = True) -> T:
        """Run ``fn`` in a write transaction; return its result once it has committed.

        With ``atomic`` (the default) an `EngineError` raised by ``fn`` undoes what ``fn`` wrote
        and reaches the caller, while the other jobs of the same transaction go on. Pass
        ``atomic=False`` for internal jobs that never refuse, to spare the savepoint.
        """
        if self._queue is None or not self._running:
            raise RuntimeError("the engine is not running; call start() first")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(fn, future, atomic=atomic))
        return await future

    def enqueue(self, fn: Callable[[Transaction, TxContext], None]) -> None:
        """Queue an internal job that nobody waits for (its failure is only logged).

        Used for task outcomes: if the transaction fails, the outbox row stays and is
        dispatched again when its lease runs out.
        """
        if self._queue is not None and self._running:
            self._queue.put_nowait(Job(fn, None, atomic=False))

    async def read(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` on a read-only view of the store."""

        def run() -> T:
            with self.store.reader() as tx:
                return fn(tx)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def _commit_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH_LIMIT and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            ctx = TxContext()
            try:
                try:
                    await loop.run_in_executor(self._writer, run_batch, self.store, batch, ctx)
                except Isolate:  # one job broke: the others must still commit
                    ctx = TxContext()
                    await loop.run_in_executor(
                        self._writer, run_batch, self.store, batch, ctx, True
                    )
            except Exception as exc:  # the whole transaction failed: tell every caller
                log.exception("store transaction failed")
                for job in batch:
                    if job.future is not None and not job.future.done():
                        job.future.set_exception(exc)
                continue
            # Dispatch first: the task that sends the next message then runs before the
            # callers' answers are written, which is what a worker waits for.
            try:
                await self._after_commit(ctx)
            except Exception:  # committed all the same: the callers must get their answers
                log.exception("after-commit work failed")
            for job in batch:
                if job.future is None or job.future.done():
                    continue
                if job.error is not None:
                    job.future.set_exception(job.error)
                else:
                    job.future.set_result(job.result)

    async def _after_commit(self, ctx: TxContext) -> None:
        if self.plugins is not None:
            for flow_name, execution_name, events in ctx.committed:
                self.plugins.notify(flow_name, execution_name, events)
        for row in ctx.outbox:
            self._start_dispatch(row)
        if ctx.earliest_timer is not None and self._timer_wake is not None:
            self._timer_wake.set()
        self.end_waiters.wake(ctx.ended)

    # -- applying commands --------------------------------------------------------------------

    def flow_for(
        self, tx: Transaction, flow_name: str, flow_id: str, version: int
    ) -> tuple[Flow, Interpreter]:
        """The flow version an execution runs, loaded once and kept.

        Keyed by the flow's id too: a flow deleted and made again starts at version 1 anew.
        """
        key = (flow_id, version)
        cached = self._flows.get(key)
        if cached is not None:
            self._flows.move_to_end(key)
            return cached[0], cached[1]
        text = tx.flow_definition(flow_name, version)
        if text is None:
            raise EngineError("FlowNotExists", f"flow '{flow_name}' version {version} is gone", 404)
        flow = load_flow(text, f"{flow_name} v{version}", limits=self._stored_limits)
        interp = Interpreter(flow, self.limits)
        self._flows[key] = (flow, interp, len(text))
        self._flow_bytes += len(text)
        while len(self._flows) > 1 and (
            len(self._flows) > FLOW_CACHE_ENTRIES or self._flow_bytes > FLOW_CACHE_TEXT_BYTES
        ):
            self._flow_bytes -= self._flows.popitem(last=False)[1][2]
        return flow, interp

    def apply(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        command: Command,
        state: ExecutionState | None = None,
    ) -> Transition:
        """Apply ``command`` to an execution inside ``tx``, recording its events and effects.

        ``state`` is the row's state when the caller has already read it, so it is not parsed
        twice; the interpreter changes it in place.
        """
        now = self.clock()
        try:
            _, interp = self.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)
        except (DefinitionError, EngineError) as exc:
            self.fail_execution(
                tx,
                ctx,
                row,
                f"relayflow could not load the definition this execution runs "
                f"(version {row.flow_version}): {first_line(exc)}",
            )
            raise failed_as_unreadable(row) from None
        if state is None:
            state = self.read_state(tx, ctx, row)
            if state is None:
                raise failed_as_unreadable(row)
        secret = self._secret or b""

        def mint(task_id: int) -> str:
            return mint_token(secret, row.flow_name, row.name, row.uid, task_id)

        try:
            transition = interp.apply(
                state,
                command,
                now,
                flow_name=row.flow_name,
                execution_name=row.name,
                mint_token=mint,
            )
        except Exception as exc:  # a bug must not wedge the execution: fail it, visibly
            log.exception("interpreter failed on %s/%s", row.flow_name, row.name)
            state = load_state(row.state)
            transition = interp.fail(
                state, now, ERROR_RUNTIME, f"relayflow internal error: {type(exc).__name__}: {exc}"
            )
        self._record(tx, ctx, row, state, transition, now)
        return transition

    def read_state(
        self, tx: Transaction, ctx: TxContext, row: ExecutionRow
    ) -> ExecutionState | None:
        """The execution's state; None if it cannot be read, after failing the execution.

        An unreadable state (damaged, or written by a bug) must not wedge the execution nor
        fail every batch that touches it: the text is kept in the store's quarantine for
        inspection and the execution ends as Failed with a cause that says so.
        """
        try:
            return load_state(row.state)
        except (ValueError, RecursionError) as exc:
            reason = f"{type(exc).__name__}: {first_line(exc)}"
        log.error("execution %s/%s: its state cannot be read (%s)", row.flow_name, row.name, reason)
        tx.quarantine("state", row.id, row.state, reason)
        self.fail_execution(
            tx,
            ctx,
            row,
            "relayflow could not read this execution's stored state and set it aside "
            f"for inspection ({reason})",
        )
        return None

    def fail_execution(
        self, tx: Transaction, ctx: TxContext, row: ExecutionRow, cause: str
    ) -> None:
        """End a running execution as Failed with ``cause``, whether or not its state reads."""
        if row.status != "Running":
            return
        now = self.clock()
        try:
            state = load_state(row.state)
            _, interp = self.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)
        except (ValueError, RecursionError, EngineError):  # DefinitionError is a ValueError
            # Nothing of the old state can be trusted: drop its work and record the end.
            tx.drop_work(row.id)
            state = ExecutionState(next_event=tx.last_event_id(row.id) + 1)
            interp = Interpreter(load_flow(_BARE_FLOW, "bare"), self.limits)
        transition = interp.fail(state, now, ERROR_RUNTIME, cause)
        self._record(tx, ctx, row, state, transition, now)

    def apply_alone(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        command: Command,
        *,
        savepoint: bool = True,
    ) -> None:
        """`apply` for internal jobs: whatever goes wrong stays with this execution.

        Refusals are dropped (the execution has ended, or was failed as unreadable, which
        commits); anything else is undone and fails the execution, visibly. Without
        ``savepoint`` (for a job alone in its batch's transaction, which the batch isolates
        by running again) anything else propagates, and no savepoint is paid for.
        """
        if not savepoint:
            with contextlib.suppress(RefusedAfterChange):
                self.apply(tx, ctx, row, command)
            return
        mark = ctx.mark()
        try:
            # What a RefusedAfterChange wrote (failing the execution) stays.
            with tx.savepoint(), contextlib.suppress(RefusedAfterChange):
                self.apply(tx, ctx, row, command)
        except EngineError:
            ctx.undo(mark)
        except Exception as exc:
            ctx.undo(mark)
            log.exception(
                "applying %s to %s/%s failed", type(command).__name__, row.flow_name, row.name
            )
            self.fail_execution(
                tx, ctx, row, f"relayflow internal error: {type(exc).__name__}: {first_line(exc)}"
            )

    def _record(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        state: ExecutionState,
        transition: Transition,
        now: float,
    ) -> None:
        """Write a transition's events, effects and the new state of ``row``."""
        if transition.events:
            tx.append_events(row.id, transition.events)
            if self._observed:
                ctx.committed.append((row.flow_name, row.name, transition.events))
        for effect in transition.effects:
            if isinstance(effect, InvokeTask):
                # The outbox row holds the integration's whole request, so that a restarted
                # engine can dispatch it with nothing but the row.
                payload = {f: getattr(effect, f) for f in InvokeTask.__slots__}
                payload["flow_name"], payload["execution_name"] = row.flow_name, row.name
                outbox_id = tx.add_outbox(row.id, payload, self.owner, now + self.lease_seconds)
                ctx.outbox.append(OutboxRow(outbox_id, row.id, payload))
            elif isinstance(effect, StartTimer):
                tx.add_timer(TimerRow(row.id, effect.timer_id, effect.fire_at, effect.kind))
                ctx.timer_at(effect.fire_at)
            elif isinstance(effect, CancelTimer):
                tx.delete_timer(row.id, effect.timer_id)
            elif isinstance(effect, ExecutionEnded):
                ctx.ended.add((row.flow_name, row.name))
        tx.update_execution(
            row.id,
            status=state.status,
            state=dump_state(state),
            output=jsontext.dumps(state.output) if state.output is not None else None,
            error=state.error,
            cause=state.cause,
            stopped=now if state.done else None,
        )
        if row.callback_token and any(isinstance(e, ExecutionEnded) for e in transition.effects):
            self._report_to_parent(tx, ctx, row, state)

    def _report_to_parent(
        self, tx: Transaction, ctx: TxContext, child: ExecutionRow, state: ExecutionState
    ) -> None:
        """Finish the task waiting for ``child`` (its callback token) in the same transaction.

        The child's end and the parent's report commit together, so neither can be lost
        without the other. A token whose task is no longer open (it timed out, or the parent
        was stopped) is dropped, as a late ReportTask call would be refused.
        """
        try:
            parts = parse_token(child.callback_token)
            parent = tx.get_execution(parts.flow_name, parts.execution_name)
            if parent is None:
                raise EngineError("ExecutionNotExists", "the parent execution does not exist")
            verify_token(self._secret or b"", parts, parent.uid)
        except EngineError as exc:
            log.warning(
                "execution %s/%s ended, but its callback token leads nowhere: %s",
                child.flow_name,
                child.name,
                exc,
            )
            return
        if parent.status != "Running":
            return
        parent_state = self.read_state(tx, ctx, parent)
        if parent_state is None or parts.task_id not in parent_state.tasks:
            return
        command: Command
        if state.status == "Succeeded":
            command = TaskSucceeded(parts.task_id, state.output or {})
        else:
            default = {"Stopped": "fnf.ExecutionStopped", "TimedOut": "fnf.ExecutionTimedOut"}
            error = state.error or default.get(state.status, ERROR_RUNTIME)
            cause = state.cause or f"child execution {child.flow_name}/{child.name} {state.status}"
            command = TaskFailed(parts.task_id, error, cause)
        self.apply(tx, ctx, parent, command, parent_state)

    # -- the dispatcher -----------------------------------------------------------------------

    def integration_for(self, resource: str) -> Integration | None:
        """The first integration that claims ``resource``."""
        for integration in self.integrations:
            if integration.claims(resource):
                return integration
        return None

    def _start_dispatch(self, row: OutboxRow) -> None:
        if row.id in self._inflight or not self._running or self._stopping:
            return
        task = asyncio.create_task(self._dispatch(row), name=f"relayflow-task-{row.id}")
        self._inflight[row.id] = task
        row_id = row.id

        def forget(_: asyncio.Task[None]) -> None:
            self._inflight.pop(row_id, None)

        task.add_done_callback(forget)

    async def _dispatch(self, row: OutboxRow) -> None:
        try:
            request = TaskRequest(**row.payload)
        except TypeError as exc:  # written by a bug or damaged: set aside, never retried forever
            reason = f"TypeError: {exc}"
            self.enqueue(lambda tx, ctx: self._set_aside_outbox(tx, ctx, row, reason))
            return
        if self.plugins is not None:
            request = self.plugins.prepare_request(request)
        integration = self.integration_for(request.resource)
        outcome: TaskOutcome
        if integration is None:
            outcome = Failed(
                ERROR_RUNTIME,
                f"no installed integration serves {request.resource}; "
                "install or configure the plugin that provides it",
            )
        elif request.pattern not in integration.patterns:
            outcome = Failed(
                ERROR_RUNTIME,
                f"integration {integration.name} does not support pattern {request.pattern}",
            )
        else:
            try:
                outcome = await integration.invoke(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "integration %s raised on %s: %r", integration.name, request.step_name, exc
                )
                outcome = Failed(ERROR_RUNTIME, f"{type(exc).__name__}: {exc}")
        if self.plugins is not None:
            self.plugins.task_outcome(request, outcome)
        self.enqueue(lambda tx, ctx: self._complete(tx, ctx, row, outcome))

    def _complete(
        self, tx: Transaction, ctx: TxContext, row: OutboxRow, outcome: TaskOutcome
    ) -> None:
        if not tx.delete_outbox(row.id):
            return  # another dispatch of the same row already finished it
        command = outcome_command(row.payload["task_id"], outcome, self.limits)
        execution = tx.lock_execution(row.execution_id)
        if execution is not None and execution.status == "Running":
            # An attempt no longer open is ignored. The job is internal: if this raises, its
            # batch runs again isolated, and then the savepoint contains it.
            self.apply_alone(tx, ctx, execution, command, savepoint=ctx.isolated)

    def _set_aside_outbox(
        self, tx: Transaction, ctx: TxContext, row: OutboxRow, reason: str
    ) -> None:
        """Move an outbox row nobody can carry out to the quarantine and fail its execution."""
        if not tx.delete_outbox(row.id):
            return
        log.error("outbox row %s cannot be carried out (%s); set aside", row.id, reason)
        tx.quarantine("outbox", row.execution_id, row.raw or jsontext.dumps(row.payload), reason)
        execution = tx.lock_execution(row.execution_id)
        if execution is not None:
            self.fail_execution(
                tx,
                ctx,
                execution,
                "relayflow could not read a task request of this execution and set it aside "
                f"for inspection ({reason})",
            )

    # -- timers and recovery ------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        assert self._timer_wake is not None
        while True:
            try:
                await self._timer_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping or not self._running:
                    return
                log.exception("timer loop: will try again")
                await asyncio.sleep(self.poll_seconds)

    async def _timer_round(self) -> None:
        assert self._timer_wake is not None
        while True:
            self._timer_wake.clear()
            fired = await self.submit(self._fire_due_timers)
            if fired >= TIMER_BATCH:
                continue
            next_at = await self.read(lambda tx: tx.next_timer_at())
            delay = self.poll_seconds
            if next_at is not None:
                delay = min(delay, max(0.0, next_at - self.clock()))
            if delay > 0:
                # asyncio.timeout, unlike wait_for on 3.11, never swallows a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._timer_wake.wait()

    def _fire_due_timers(self, tx: Transaction, ctx: TxContext) -> int:
        now = self.clock()
        due = tx.claim_due_timers(now, self.owner, now + self.lease_seconds, TIMER_BATCH)
        for timer in due:
            if not tx.delete_timer(timer.execution_id, timer.timer_id):
                continue
            execution = tx.lock_execution(timer.execution_id)
            if execution is not None:
                self.apply_alone(tx, ctx, execution, TimerFired(timer.timer_id))
        return len(due)

    async def _recovery_loop(self) -> None:
        """Dispatch outbox rows nobody holds: left over from a crash, or from another engine."""
        while True:
            try:
                await self._recovery_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping or not self._running:
                    return
                log.exception("recovery loop: will try again")
                await asyncio.sleep(self.poll_seconds)

    async def _recovery_round(self) -> None:
        while True:
            rows = await self.submit(self._claim_outbox)
            for row in rows:
                self._start_dispatch(row)
            if self._inflight:
                await self.submit(self._renew_leases(list(self._inflight)))
            await asyncio.sleep(self.poll_seconds if len(rows) < 256 else 0)

    def _claim_outbox(self, tx: Transaction, ctx: TxContext) -> list[OutboxRow]:
        now = self.clock()
        rows = tx.claim_outbox(now, self.owner, now + self.lease_seconds, 256)
        for row in rows:
            if row.unreadable:
                self._set_aside_outbox(tx, ctx, row, row.unreadable)
        return [row for row in rows if not row.unreadable]

    def _renew_leases(self, ids: list[int]) -> Callable[[Transaction, TxContext], None]:
        until = self.clock() + self.lease_seconds

        def renew(tx: Transaction, ctx: TxContext) -> None:
            tx.renew_outbox(ids, self.owner, until)

        return renew
