"""The schedule loop: when a schedule's tick comes, start its flow, exactly once per tick.

The loop claims due schedules (`Transaction.claim_due_objects`, with a lease, in a small
transaction of its own) and fires them in one job of the writer that, in one transaction:

1. moves each schedule on to its next tick, only while this engine still holds its claim
   (`put_object(owner=...)`, all of them at once where the store can); one that it no longer
   holds (the lease ran out and another engine took it, or UpdateSchedule or DeleteSchedule
   changed it since) is left alone;
2. for each schedule it moved on, starts the execution named after the schedule and the tick,
   `schedule-<ScheduleName>-<tick as UTC yyyymmddThhmmssZ>`, with the Payload as its input.
   If the flow already has an execution of that name, the tick has started: nothing more.

Both happen or neither does, so a crash, a restart or a replica taking over cannot start a tick
twice or lose one: an unfired tick stays due in the store and is claimed again once the claim's
lease runs out (at once on the embedded store, whose engine takes every lease over at start).

Ticks missed while no engine ran (or while the engines were too busy to fire them) start one
execution, for the latest missed tick; the schedule then waits for its next tick after now.

The loop sleeps until the earliest `due_at` in the store, at most ``poll_seconds``; a schedule
created or changed on this engine wakes it sooner (`wake`), and those changed on other engines
are found by the poll. Times come from the engine's clock, so tests can pass their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from relayflow.engine.applier import Applier
from relayflow.engine.batches import TxContext
from relayflow.engine.committer import Committer
from relayflow.engine.cron import CronError, CronExpression, parse_cron
from relayflow.engine.model import ExecutionState, Start
from relayflow.engine.schedule_info import KIND, ScheduleData
from relayflow.engine.snapshot import dump_state
from relayflow.engine.versions import Target
from relayflow.errors import first_line
from relayflow.store import ExecutionRow, FlowObjectRow, FlowRow, StoreError, Transaction

__all__ = ["SCHEDULE_BATCH", "Ticker", "execution_name"]

log = logging.getLogger("relayflow.engine")

#: How many due schedules one claim takes.
SCHEDULE_BATCH = 512
_MAX_NAME = 128


def execution_name(schedule_name: str, tick: float) -> str:
    """The name of the execution a schedule starts for ``tick``.

    `schedule-<ScheduleName>-<yyyymmddThhmmssZ>`; a schedule name too long for the 128
    characters an execution name may have is cut, and a hash of the whole name keeps it apart
    from others cut the same way.
    """
    stamp = datetime.fromtimestamp(tick, UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"schedule-{schedule_name}-{stamp}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(schedule_name.encode()).hexdigest()[:8]
    room = _MAX_NAME - len(f"schedule--{digest}-{stamp}")
    return f"schedule-{schedule_name[:room]}-{digest}-{stamp}"


@lru_cache(maxsize=4096)
def _expression(text: str) -> CronExpression:
    return parse_cron(text)


class Ticker:
    """The schedule loop, as one asyncio task.

    Args:
        committer: runs its claims and firings.
        applier: starts the executions; its clock, owner and lease are the loop's.
        poll_seconds: how often the loop looks for schedules it was not told about.
        jitter: spread each poll at random by a tenth (for engines sharing a store).
    """

    def __init__(
        self, committer: Committer, applier: Applier, poll_seconds: float, *, jitter: bool = False
    ) -> None:
        self._committer = committer
        self._applier = applier
        self._poll_seconds = poll_seconds
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        # When the loop looks next (None: it is looking now) and the earliest tick it was
        # told about while it looked.
        self._looking_at: float | None = None
        self._pending: float | None = None

    def start(self) -> None:
        """Start the loop."""
        self._wake = asyncio.Event()  # bound to the running loop
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="relayflow-schedules")

    def stop_claiming(self) -> None:
        """Fire no more ticks (the engine is shutting down); firings under way still commit."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def wake(self, due: float | None) -> None:
        """A schedule was created or changed on this engine to fire at ``due``: be in time."""
        if due is None:
            return
        if self._looking_at is None:
            self._pending = due if self._pending is None else min(self._pending, due)
        elif due < self._looking_at:
            self._looking_at = due
            self._wake.set()

    def _poll(self) -> float:
        if self._jitter:
            return self._poll_seconds * random.uniform(0.9, 1.1)
        return self._poll_seconds

    async def _loop(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except NotImplementedError:
                log.warning("the store keeps no flow objects: schedules do not fire")
                return
            except StoreError as exc:
                if self._stopping:
                    return
                if not self._failing:  # one line when an outage begins, one when it ends
                    self._failing = True
                    log.warning(
                        "schedule loop: the store cannot be used (%s); trying again every %g s",
                        first_line(exc),
                        self._poll_seconds,
                    )
                await asyncio.sleep(self._poll_seconds)
            except Exception:
                if self._stopping:
                    return
                log.exception("schedule loop: will try again")
                await asyncio.sleep(self._poll_seconds)

    async def _round(self) -> None:
        clock = self._applier.clock
        claimed_at = float("-inf")  # when this engine last claimed
        while True:
            self._looking_at, self._pending = None, None
            self._wake.clear()
            # A read first: an engine whose schedules are not due writes nothing to look.
            next_due = await self._committer.read(lambda tx: tx.next_object_due(KIND))
            if self._failing:
                self._failing = False
                log.warning("schedule loop: the store works again")
            now = clock()
            if next_due is not None and claimed_at < next_due <= now:
                claimed_at, due = await self._committer.alone(self._claim)
                if due:
                    await self._fire_all(due)
                if len(due) >= SCHEDULE_BATCH:
                    claimed_at = float("-inf")  # a full batch: more may be due already
                continue  # look again: more may have come due while these fired
            # A due_at that had passed at this engine's last claim is another engine's (it
            # holds the claim): it is looked at again at the next poll, by when that claim may
            # have run out.
            times = [now + self._poll(), self._pending]
            if next_due is not None and next_due > now:
                times.append(next_due)
            at = min(t for t in times if t is not None)
            self._looking_at = at
            if at > now:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(at - now):
                        await self._wake.wait()
            claimed_at = float("-inf")  # after a poll, claim what is due even if seen before

    def _claim(self, tx: Transaction) -> tuple[float, list[FlowObjectRow]]:
        applier = self._applier
        now = applier.clock()
        rows = tx.claim_due_objects(
            KIND, now, applier.owner, now + applier.lease_seconds, SCHEDULE_BATCH
        )
        return now, rows

    async def _fire_all(self, rows: list[FlowObjectRow]) -> None:
        now = self._applier.clock()
        ticks: list[_Tick] = []
        for row in rows:
            try:
                tick = self._plan(row, now)
            except Exception:  # a row this engine cannot read must not hold up the others
                log.exception("schedule %s of flow %s is switched off", row.name, row.flow_name)
                self._committer.enqueue(_put(_moved(row, None), self._applier.owner))
                continue
            if tick is not None:
                ticks.append(tick)
        if not ticks:
            return
        try:
            await self._committer.submit(self._firing(ticks, now))
        except Exception as exc:  # the claims stay: these ticks fire when they run out
            log.warning("schedule ticks did not fire; they are tried again: %s", exc)

    def _plan(self, row: FlowObjectRow, now: float) -> _Tick | None:
        """What firing ``row`` does: its next tick, and the execution it starts now."""
        data = ScheduleData.loads(row.data)
        try:
            expr = _expression(data.cron_expression)
        except CronError as exc:  # say, a CRON_TZ zone this system's tz database lacks
            log.warning(
                "schedule %s of flow %s is off: %s", row.name, row.flow_name, first_line(exc)
            )
            self._committer.enqueue(_put(_moved(row, None), self._applier.owner))
            return None
        due = row.due_at if row.due_at is not None else now
        following = expr.next_tick(due)
        tick = due  # on time: the tick it waited for
        next_due: float | None = following
        if following is not None and following <= now:  # missed ticks: only the latest starts
            tick, next_due = expr.latest_tick(now) or due, expr.next_tick(now)
        payload = json.loads(data.payload) if data.payload else {}
        return _Tick(_moved(row, next_due), execution_name(row.name, tick), payload)

    def _firing(self, ticks: list[_Tick], now: float) -> Callable[[Transaction, TxContext], int]:
        """The job that fires ``ticks``: how many executions it started."""
        owner = self._applier.owner

        def fire(tx: Transaction, ctx: TxContext) -> int:
            # Every schedule moved on first, in one round trip where the store can: only those
            # still this engine's (the others were changed, deleted or taken over since).
            moved = tx.put_objects([tick.moved for tick in ticks], owner=owner)
            mine = sorted(
                (tick for tick, ok in zip(ticks, moved, strict=True) if ok),
                key=lambda tick: (tick.moved.flow_name, tick.name),
            )
            # The executions to start, locked in the engines' one order: a driver that finds
            # them absent then holds their inserts back with the batch's other writes.
            tx.lock_executions([(tick.moved.flow_name, tick.name) for tick in mine])
            flows: dict[str, FlowRow | None] = {}
            started = 0
            for tick in mine:
                flow_name = tick.moved.flow_name
                if flow_name not in flows:
                    flows[flow_name] = tx.get_flow(flow_name)
                flow = flows[flow_name]
                if flow is None or flow.execution_mode != "Standard":
                    continue
                mark = ctx.mark()
                try:
                    with tx.savepoint():
                        started += self._start(tx, ctx, flow, tick, now)
                except StoreError:
                    raise  # the database's: the whole transaction goes (and is run again)
                except Exception:  # a bug: this tick is lost, the others start
                    ctx.undo(mark)
                    log.exception(
                        "the execution %s of flow %s did not start",
                        tick.name,
                        flow_name,
                        extra={"flow": flow_name, "execution": tick.name},
                    )
            return started

        return fire

    def _start(
        self, tx: Transaction, ctx: TxContext, flow: FlowRow, tick: _Tick, now: float
    ) -> bool:
        """Start the tick's execution; False if the flow has one of that name already."""
        row = ExecutionRow(
            0,
            uuid.uuid4().hex,
            flow.name,
            tick.name,
            flow.id,
            flow.version,
            "Running",
            json.dumps(tick.payload),
            None,
            "",
            "",
            now,
            None,
            # The flow's current definition and Environment, as StartExecution without a
            # Qualifier runs ($context.flow.environment).
            dump_state(
                ExecutionState(environment=Target(0, flow.version, flow.environment).variables())
            ),
            "",
        )
        row_id = tx.insert_execution(row)
        if row_id is None:
            return False  # this tick has started already
        stored = tx.lock_execution(row_id)
        assert stored is not None
        self._applier.apply(tx, ctx, stored, Start(tick.payload))
        return True


@dataclass(frozen=True)
class _Tick:
    """One schedule's tick to fire: the schedule moved on, and the execution to start."""

    moved: FlowObjectRow
    name: str
    payload: dict[str, Any]


def _moved(row: FlowObjectRow, due_at: float | None) -> FlowObjectRow:
    return FlowObjectRow(
        row.flow_name, row.kind, row.name, row.data, row.created, row.modified, due_at
    )


def _put(row: FlowObjectRow, owner: str) -> Callable[[Transaction, TxContext], None]:
    def put(tx: Transaction, ctx: TxContext) -> None:
        tx.put_object(row, owner=owner)

    return put
