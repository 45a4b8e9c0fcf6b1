"""Schedules (CreateSchedule ... DeleteSchedule): a flow started at every tick of a cron expression.

    await engine.create_schedule("report", "nightly", "0 0 2 * * *", payload={"full": True})
    await engine.update_schedule("report", "nightly", enable=False)

A schedule is a flow object of kind `schedule` (`relayflow.engine.schedule_info`); its row's
`due_at` is its next tick, None while it is disabled. The loop that starts the executions when
ticks come is `relayflow.engine.ticker`, run by the runtime: see there for exactly once, the
names of the executions and what happens to ticks missed while no engine ran.

The operations are a part of `Engine` (it inherits `ScheduleOperations`).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from relayflow.engine.arguments import (
    DEFAULT_PAGE,
    MAX_OBJECTS_PAGE,
    check_name,
    page_size,
    parse_object,
)
from relayflow.engine.cron import CronError, CronExpression, parse_cron
from relayflow.engine.records import Page
from relayflow.engine.schedule_info import KIND, ScheduleData, ScheduleInfo
from relayflow.errors import EngineError, already_exists, not_exists
from relayflow.store import FlowObjectRow

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.runtime import Runtime
    from relayflow.store import Transaction

__all__ = ["MAX_DESCRIPTION_CHARS", "ScheduleInfo", "ScheduleOperations"]

#: The longest Description a schedule takes.
MAX_DESCRIPTION_CHARS = 1024


def flow_missing(flow_name: str) -> EngineError:
    """`FlowNotExists`, spelled as the service spells it."""
    return not_exists("FlowNotExists", "Flow", flow_name)


def _schedule_missing(flow_name: str, name: str) -> EngineError:
    return not_exists("ScheduleNotExists", "Schedule", name, flow_name)


def _cron(text: str) -> CronExpression:
    try:
        return parse_cron(text)
    except CronError as exc:
        raise EngineError.of("InvalidArgument", str(exc)) from None


def _description(text: str) -> str:
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_CHARS:
        raise EngineError.of(
            "InvalidArgument", f"Description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )
    return text


class ScheduleOperations:
    """The schedule actions of the API, as `Engine` methods."""

    _runtime: Runtime

    def _payload(self, payload: Any) -> str:
        """The Payload as stored: JSON object text ("" for none), held to the step data limit."""
        if payload is None or payload == "":
            return ""
        limits = self._runtime.limits
        data = parse_object(payload, "Payload", limits.max_json_depth)
        text = payload if isinstance(payload, str) else json.dumps(data, ensure_ascii=False)
        size = len(text.encode())
        if size > limits.max_step_data_bytes:
            raise EngineError.of(
                "InvalidArgument",
                f"Payload is {size} bytes; the most a schedule's Payload may be is "
                f"{limits.max_step_data_bytes} (engine.max_step_data_bytes)",
            )
        return text

    async def create_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str,
        payload: Any = None,
        enable: bool = True,
        description: str = "",
    ) -> ScheduleInfo:
        """Create a schedule that starts the flow at every tick (CreateSchedule).

        Args:
            flow_name: the flow to start; a Standard flow.
            schedule_name: unique within the flow: 1-128 letters, digits, `_` and `-`.
            cron_expression: six fields, seconds first (`relayflow.engine.cron`).
            payload: each execution's input: a dict or JSON object text.
            enable: whether it fires (True unless said otherwise).
            description: free text, up to 1,024 characters.

        Raises:
            EngineError: `FlowNotExists`, `ScheduleAlreadyExists`, or `InvalidArgument` for a
                bad name, expression, payload or description, or an Express flow.
        """
        check_name(schedule_name, "ScheduleName")
        expr = _cron(cron_expression)
        data = ScheduleData(
            str(uuid.uuid4()),
            cron_expression,
            self._payload(payload),
            bool(enable),
            _description(description),
        )
        now = self._runtime.clock()
        due = expr.next_tick(now) if enable else None

        def create(tx: Transaction, ctx: TxContext) -> ScheduleInfo:
            flow = tx.get_flow(flow_name)
            if flow is None:
                raise flow_missing(flow_name)
            if flow.execution_mode == "Express":
                raise EngineError.of(
                    "InvalidArgument",
                    f"flow '{flow_name}' is Express; a schedule starts Standard flows only, "
                    "whose executions are stored by name so that each tick starts once",
                )
            row = FlowObjectRow(flow_name, KIND, schedule_name, data.dumps(), now, now, due)
            if not tx.create_object(row):
                raise already_exists("ScheduleAlreadyExists", "Schedule", schedule_name, flow_name)
            return ScheduleInfo.of(row)

        info = await self._runtime.committer.submit(create)
        self._runtime.ticker.wake(due)
        return info

    async def describe_schedule(self, flow_name: str, schedule_name: str) -> ScheduleInfo:
        """A schedule (DescribeSchedule).

        Raises:
            EngineError: `FlowNotExists` or `ScheduleNotExists`.
        """

        def find(tx: Transaction) -> FlowObjectRow | EngineError:
            row = tx.get_object(flow_name, KIND, schedule_name)
            if row is not None:
                return row
            if tx.get_flow(flow_name) is None:
                return flow_missing(flow_name)
            return _schedule_missing(flow_name, schedule_name)

        found = await self._runtime.committer.read(find)
        if isinstance(found, EngineError):
            raise found
        return ScheduleInfo.of(found)

    async def list_schedules(
        self, flow_name: str, limit: int | None = None, next_token: str = ""
    ) -> Page[ScheduleInfo]:
        """A page of a flow's schedules by name (ListSchedules); Limit is 1-1,000, 60 by default.

        Pass the page's `next_token` for the next page ("" on the last).

        Raises:
            EngineError: `FlowNotExists`, or `InvalidArgument` for a bad Limit or NextToken.
        """
        size = page_size(limit, DEFAULT_PAGE, MAX_OBJECTS_PAGE, "Limit")
        if next_token:
            check_name(next_token, "NextToken")

        def page(tx: Transaction) -> list[FlowObjectRow] | None:
            if tx.get_flow(flow_name) is None:
                return None
            return tx.list_objects(flow_name, KIND, after=next_token, limit=size + 1)

        rows = await self._runtime.committer.read(page)
        if rows is None:
            raise flow_missing(flow_name)
        more = len(rows) > size
        rows = rows[:size]
        return Page([ScheduleInfo.of(r) for r in rows], rows[-1].name if more else "")

    async def update_schedule(
        self,
        flow_name: str,
        schedule_name: str,
        cron_expression: str | None = None,
        payload: Any = None,
        enable: bool | None = None,
        description: str | None = None,
    ) -> ScheduleInfo:
        """Change a schedule (UpdateSchedule); what is None stays as it is.

        A new expression, or enabling a disabled schedule, counts its ticks from now; other
        changes keep the tick it waits for.

        Raises:
            EngineError: `FlowNotExists`, `ScheduleNotExists`, or `InvalidArgument`.
        """
        expr = _cron(cron_expression) if cron_expression is not None else None
        payload_text = self._payload(payload) if payload is not None else None
        if description is not None:
            _description(description)
        now = self._runtime.clock()

        def update(tx: Transaction, ctx: TxContext) -> ScheduleInfo:
            old = tx.get_object(flow_name, KIND, schedule_name, lock=True)
            if old is None:
                if tx.get_flow(flow_name) is None:
                    raise flow_missing(flow_name)
                raise _schedule_missing(flow_name, schedule_name)
            was = ScheduleData.loads(old.data)
            data = ScheduleData(
                was.schedule_id,
                cron_expression if cron_expression is not None else was.cron_expression,
                payload_text if payload_text is not None else was.payload,
                was.enable if enable is None else bool(enable),
                description if description is not None else was.description,
            )
            due = old.due_at
            if not data.enable:
                due = None
            elif due is None or data.cron_expression != was.cron_expression:
                due = (expr or _cron(data.cron_expression)).next_tick(now)
            row = FlowObjectRow(flow_name, KIND, schedule_name, data.dumps(), old.created, now, due)
            # Without an owner: a firing that claimed the old row finds its claim gone and
            # gives the tick up; the row as changed here is claimed afresh.
            tx.put_object(row)
            return ScheduleInfo.of(row)

        info = await self._runtime.committer.submit(update)
        self._runtime.ticker.wake(info.next_tick)
        return info

    async def delete_schedule(self, flow_name: str, schedule_name: str) -> None:
        """Delete a schedule (DeleteSchedule); executions it started stay.

        Raises:
            EngineError: `FlowNotExists` or `ScheduleNotExists`.
        """

        def delete(tx: Transaction, ctx: TxContext) -> None:
            if not tx.delete_object(flow_name, KIND, schedule_name):
                if tx.get_flow(flow_name) is None:
                    raise flow_missing(flow_name)
                raise _schedule_missing(flow_name, schedule_name)

        await self._runtime.committer.submit(delete)
