"""Stopping executions on the engine."""

from __future__ import annotations

import asyncio

from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import (
    CALLBACK,
    PASS,
    QUEUE,
    Worker,
    history,
    refused,
)


@bounded
async def test_stop_execution():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        info = await eng.stop_execution("f", "run1", error="Manual", cause="by the test")
        assert info.status == "Stopped" and info.done
        assert (info.error, info.cause) == ("Manual", "by the test")
        assert info.stopped is not None
        described = await eng.describe_execution("f", "run1")
        assert described.status == "Stopped" and described.error == "Manual"
        assert described.to_api()["Cause"] == "by the test"
        events = await history(eng, "f", "run1")
        assert events[-1].type == "ExecutionStopped"
        assert events[-1].detail == {"error": "Manual", "cause": "by the test"}
        err = await refused("ExecutionNotRunning", eng.stop_execution("f", "run1"))
        assert err.status == 409
        await refused("ExecutionNotRunning", eng.report_task_succeeded(request.token, {}))
        await refused("ExecutionNotRunning", eng.report_task_failed(request.token, "Late"))
        assert await history(eng, "f", "run1") == events


@bounded
async def test_stop_a_finished_or_missing_execution():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        await refused("ExecutionNotRunning", eng.stop_execution("p", "r", "E", "c"))
        await refused("ExecutionNotExists", eng.stop_execution("p", "ghost"))
        assert (await eng.describe_execution("p", "r")).status == "Succeeded"


@bounded
async def test_a_stopped_wait_does_not_fire():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.3
    - type: pass
      name: after
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        await eng.start_execution("w", {}, name="r")
        await eng.stop_execution("w", "r")
        before = await history(eng, "w", "r")
        await asyncio.sleep(0.6)
        assert await history(eng, "w", "r") == before
        assert (await eng.describe_execution("w", "r")).status == "Stopped"
