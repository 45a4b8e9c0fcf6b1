"""Execution history as the engine records and pages it."""

from __future__ import annotations

from relayflow.engine.model import HistoryEvent
from relayflow.testing import bounded, eventually, make_engine
from tests.engine.helpers import (
    CALLBACK,
    PASS,
    QUEUE,
    SEED,
    Worker,
    finished,
    has_event,
    history,
    refused,
)


@bounded
async def test_history_pages_are_gap_free_and_ordered():
    worker = Worker()
    async with make_engine({"acs:mns:::/queues/fnf-demo/messages": worker.queue}) as eng:
        await eng.create_flow("seed", SEED)
        await eng.start_execution("seed", {"source": "s3://x"}, name="run1")
        for n in (1, 2, 3):
            request = await worker.take(n)
            await eng.report_task_succeeded(request.token, {"rows": [1], "count": 1})
        await finished(eng, "seed", "run1")
        full = await eng.get_execution_history("seed", "run1", limit=999)
        assert full.next_token == ""
        ids = [e.event_id for e in full.events]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) > 20

        paged: list[HistoryEvent] = []
        token = ""
        while True:
            page = await eng.get_execution_history("seed", "run1", limit=4, next_token=token)
            assert 1 <= len(page.events) <= 4
            paged += page.events
            if not page.next_token:
                break
            assert page.next_token == str(page.events[-1].event_id)
            token = page.next_token
        assert paged == full.events

        default = await eng.get_execution_history("seed", "run1")
        assert default.events == full.events[: len(default.events)]
        api = full.to_api()
        assert api["Events"][0]["EventId"] == 1 and api["NextToken"] == ""


@bounded
async def test_history_of_a_callback_task_follows_the_documented_order():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        await eventually(
            lambda: has_event(eng, "f", "run1", "TaskSubmitted"),
            what="TaskSubmitted in the history",
        )
        await eng.report_task_succeeded(request.token, {"x": 1})
        await finished(eng, "f", "run1")
        events = await history(eng, "f", "run1")
        assert [e.type for e in events] == [
            "ExecutionStarted",
            "StepEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "StepSucceeded",
            "StepExited",
            "ExecutionSucceeded",
        ]
        scheduled = events[2]
        assert scheduled.event_id == request.task_id
        assert all(e.schedule_event_id == request.task_id for e in events[3:6])
        assert events[4].detail == {"MessageId": str(request.task_id)}


@bounded
async def test_history_refusals():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        await refused("InvalidArgument", eng.get_execution_history("p", "r", next_token="abc"))
        await refused("InvalidArgument", eng.get_execution_history("p", "r", limit=0))
        await refused("ExecutionNotExists", eng.get_execution_history("p", "ghost"))
