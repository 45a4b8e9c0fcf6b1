"""relayflow.testing: the helpers plugin tests use."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.fdl import load_flow
from relayflow.testing import bounded, fdl


def test_fdl_makes_a_flow_document_the_loader_takes() -> None:
    text = fdl(
        """
        - type: pass
          name: only
        """,
        head="timeoutSeconds: 60\n",
    )
    flow = load_flow(text)
    assert flow.timeout_seconds == 60 and flow.step_count() == 1


def test_bounded_runs_the_test_and_fails_it_past_its_limit() -> None:
    ran: list[str] = []

    @bounded
    async def quick() -> None:
        await asyncio.sleep(0)
        ran.append("quick")

    @bounded(seconds=0.05)
    async def stuck() -> None:
        await asyncio.sleep(10)

    quick()
    assert ran == ["quick"] and quick.__name__ == "quick"
    with pytest.raises(TimeoutError):
        stuck()
