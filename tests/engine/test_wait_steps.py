"""Wait steps on the engine, with real timers."""

from __future__ import annotations

import time

from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import finished, history


@bounded
async def test_short_waits_finish():
    flow = fdl("""
    - type: wait
      name: nap
      duration: 0.2
    - type: wait
      name: nap2
      duration: $.sleep
    - type: wait
      name: past
      timestamp: "2001-01-01T00:00:00Z"
    - type: pass
      name: after
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        t0 = time.monotonic()
        started = await eng.start_execution("w", {"sleep": 0.2}, name="r")
        assert started.status == "Running"
        info = await finished(eng, "w", "r", seconds=3)
        elapsed = time.monotonic() - t0
        assert info.status == "Succeeded" and info.output == {}
        assert 0.4 <= elapsed < 1.5
        entered = [e.step_name for e in await history(eng, "w", "r") if e.type == "StepEntered"]
        assert entered == ["nap", "nap2", "past", "after"]


@bounded
async def test_a_wait_with_a_bad_duration_fails_with_runtime_error():
    flow = fdl("""
    - type: wait
      name: nap
      duration: $.sleep
    """)
    async with make_engine() as eng:
        await eng.create_flow("w", flow)
        info = await eng.start_execution("w", {"sleep": "soon"}, name="r")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
