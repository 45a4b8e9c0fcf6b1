"""Bulk stop and redrive of the executions a filter matches, on SQLite and on PostgreSQL.

Each test runs on both stores (`store_url`); on PostgreSQL the tests of this module share one
database and keep apart by giving their flows names of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from relayflow.engine import Engine
from relayflow.engine.bulk import ExecutionFilter, Failure, Skip
from relayflow.errors import EngineError
from relayflow.store import open_store
from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import sqlite_or_postgres

# Runs until stopped: no integration serves the queue, and the wait is long.
PARKED = fdl("""
- type: wait
  name: nap
  duration: 3600
""")
FAILING = fdl("""
- type: fail
  name: boom
  error: Boom
""")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the test's engines keep things: a fresh SQLite store each, or one PG database."""
    yield from sqlite_or_postgres(request, "bulk_")


@pytest.fixture
def flow() -> str:
    """A flow name no other test of the module uses (they may share a PostgreSQL database)."""
    return "f_" + uuid.uuid4().hex[:10]


async def refused(code: str, awaitable: Awaitable[Any]) -> str:
    with pytest.raises(EngineError) as info:
        await awaitable
    assert info.value.code == code, info.value
    return info.value.message


async def started(engine: Engine, flow: str, names: list[str]) -> None:
    await asyncio.gather(*(engine.start_execution(flow, {}, name=n) for n in names))


async def stopped_events(engine: Engine, flow: str, name: str) -> int:
    page = await engine.get_execution_history(flow, name, 1000)
    return sum(e.type == "ExecutionStopped" for e in page.items)


@bounded(seconds=30)
async def test_bulk_stop_pages_through_and_a_run_again_acts_only_on_what_is_left(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, PARKED)
        ours = [f"a-{i}" for i in range(7)]
        await started(engine, flow, [*ours, "b-0", "b-1"])
        only_a = ExecutionFilter(name_prefix="a-")

        first = await engine.stop_executions(
            flow, filters=only_a, error="Cancelled", cause="bulk", limit=3
        )
        assert (first.matched, first.done, first.next_token) == (7, ("a-0", "a-1", "a-2"), "a-2")
        assert not first.skipped and not first.failed
        # Interrupted after the first page: running it again from the start is safe.
        again = await engine.stop_executions(flow, filters=only_a, limit=3)
        assert (again.matched, again.done) == (4, ("a-3", "a-4", "a-5"))
        last = await engine.stop_executions(flow, filters=only_a, limit=3)
        assert (last.matched, last.done, last.next_token) == (1, ("a-6",), "")
        assert (await engine.stop_executions(flow, filters=only_a)).matched == 0

        for name in ours:
            info = await engine.describe_execution(flow, name)
            assert info.status == "Stopped"
            assert await stopped_events(engine, flow, name) == 1
        assert (await engine.describe_execution(flow, "a-0")).error == "Cancelled"
        assert (await engine.describe_execution(flow, "b-1")).status == "Running"
        assert await engine.count_executions_matching(flow, ExecutionFilter("Running")) == 2


@bounded(seconds=30)
async def test_a_dry_run_acts_on_nothing_and_a_filter_matching_nothing_is_an_answer(
    store_url, flow
):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, PARKED)
        await started(engine, flow, ["x-1", "x-2", "y-1"])
        await engine.stop_executions(flow, filters=ExecutionFilter(name_prefix="x"))
        dry = await engine.stop_executions(
            flow, filters=ExecutionFilter(name_prefix="x"), dry_run=True
        )
        assert dry.matched == 0 and dry.selected == ()  # the first call stopped them
        dry = await engine.stop_executions(flow, dry_run=True, limit=1)
        assert (dry.matched, dry.selected, dry.done, dry.next_token) == (1, ("y-1",), (), "")
        assert (await engine.describe_execution(flow, "y-1")).status == "Running"
        assert dry.to_api()["Selected"] == ["y-1"]

        future = time.time() + 3600
        none = await engine.stop_executions(flow, filters=ExecutionFilter(started_from=future))
        assert (none.matched, none.selected, none.next_token) == (0, (), "")
        assert none.to_api() == {
            "Matched": 0,
            "Done": [],
            "Skipped": [],
            "Failed": [],
            "NextToken": "",
            "DryRun": False,
        }
        window = ExecutionFilter("Stopped", "x", time.time() - 600, time.time() + 1)
        assert await engine.count_executions_matching(flow, window) == 2


@bounded(seconds=30)
async def test_bad_arguments_are_refused_with_one_sentence(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, PARKED)
        stop, redrive = engine.stop_executions, engine.redrive_executions
        assert "Status must be one of" in await refused(
            "InvalidArgument", stop(flow, filters=ExecutionFilter("Paused"))
        )
        assert "Running executions only" in await refused(
            "InvalidArgument", stop(flow, filters=ExecutionFilter("Failed"))
        )
        assert "needs a Status" in await refused(
            "MissingParameter", redrive(flow, filters=ExecutionFilter())
        )
        await refused("InvalidArgument", redrive(flow, filters=ExecutionFilter("Running")))
        assert "after StartedTimeEnd" in await refused(
            "InvalidArgument", stop(flow, filters=ExecutionFilter(started_from=2, started_to=1))
        )
        for prefix in ("a" * 129, "bad prefix", "nul\x00"):
            await refused(
                "InvalidArgument", stop(flow, filters=ExecutionFilter(name_prefix=prefix))
            )
        for limit in (0, 1001):
            assert "Limit must be from 1 to 1000" in await refused(
                "InvalidArgument", stop(flow, limit=limit)
            )
        await refused("InvalidArgument", stop(flow, next_token="x\x00y"))
        await refused("InvalidArgument", stop(flow, error="E" * 129))
        await refused("FlowNotExists", stop("no_such_flow"))
        await refused("FlowNotExists", engine.count_executions_matching("nope", ExecutionFilter()))


class _Meddling(Engine):
    """An engine whose single stops meet what a bulk stop must survive: another caller that
    stops an execution first (`late-*`), a refusal for an execution still running (`stuck-*`)
    and a bug (`crash-*`)."""

    async def stop_execution(self, flow_name: str, name: str, error: str = "", cause: str = ""):
        if name.startswith("late"):
            await super().stop_execution(flow_name, name, "Other", "another caller")
        if name.startswith("stuck"):
            raise EngineError("ServiceBusy", "the store is busy; try again", 503)
        if name.startswith("crash"):
            raise RuntimeError("a bug, with details for the log only")
        return await super().stop_execution(flow_name, name, error, cause)


@bounded(seconds=30)
async def test_one_execution_failing_or_gone_does_not_stop_the_others(store_url, flow):
    async with _Meddling(open_store(store_url), poll_seconds=0.1) as engine:
        await engine.create_flow(flow, PARKED)
        await started(engine, flow, ["crash-1", "late-1", "ok-1", "ok-2", "stuck-1"])
        result = await engine.stop_executions(flow)
        assert result.done == ("ok-1", "ok-2")
        assert result.skipped == (Skip("late-1", "it is Stopped now"),)
        assert result.failed == (
            Failure("crash-1", "InternalError", "the engine failed on this execution; see its log"),
            Failure("stuck-1", "ServiceBusy", "the store is busy; try again"),
        )
        assert (await engine.describe_execution(flow, "late-1")).error == "Other"
        assert (await engine.describe_execution(flow, "stuck-1")).status == "Running"
        assert result.to_api()["Failed"][1] == {
            "Name": "stuck-1",
            "Code": "ServiceBusy",
            "Message": "the store is busy; try again",
        }


@bounded(seconds=30)
async def test_bulk_stop_of_many_goes_through_the_writer_in_batches(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, PARKED)
        names = [f"r{i:04}" for i in range(300)]
        await started(engine, flow, names)
        result = await engine.stop_executions(flow, limit=1000)
        assert (result.matched, len(result.done), result.next_token) == (300, 300, "")
        assert await engine.count_executions_matching(flow, ExecutionFilter("Stopped")) == 300


# Two places to park: the input's `where` picks one.
TWO_NAPS = fdl("""
- type: choice
  name: route
  choices:
    - condition: $.where == "second"
      goto: second
  default:
    goto: first
- type: wait
  name: first
  duration: 3600
  end: true
- type: wait
  name: second
  duration: 3600
""")
# The same flow without the second nap.
ONE_NAP = fdl("""
- type: wait
  name: first
  duration: 3600
""")


@bounded(seconds=30)
async def test_bulk_redrive_goes_on_and_reports_what_it_could_not_move(store_url, flow):
    async with make_engine(store=store_url) as engine:
        await engine.create_flow(flow, TWO_NAPS)
        await asyncio.gather(
            engine.start_execution(flow, {"where": "first"}, name="one-1"),
            engine.start_execution(flow, {"where": "first"}, name="one-2"),
            engine.start_execution(flow, {"where": "second"}, name="two-1"),
        )
        assert len((await engine.stop_executions(flow)).done) == 3
        stopped = ExecutionFilter("Stopped")
        dry = await engine.redrive_executions(flow, filters=stopped, dry_run=True)
        assert (dry.matched, dry.selected, dry.done) == (3, ("one-1", "one-2", "two-1"), ())

        await engine.update_flow(flow, ONE_NAP)
        result = await engine.redrive_executions(flow, filters=stopped, use_current_definition=True)
        assert result.done == ("one-1", "one-2")
        [failure] = result.failed
        assert (failure.name, failure.code) == ("two-1", "ExecutionNotRedrivable")
        assert "second" in failure.message
        one = await engine.describe_execution(flow, "one-1")
        assert (one.status, one.redrive_count) == ("Running", 1)
        assert (await engine.describe_execution(flow, "two-1")).status == "Stopped"

        # Run again: the redriven ones no longer match; the one that cannot move fails again.
        again = await engine.redrive_executions(flow, filters=stopped, use_current_definition=True)
        assert (again.matched, again.done, [f.name for f in again.failed]) == (1, (), ["two-1"])
        kept = await engine.redrive_executions(flow, filters=stopped)
        assert kept.done == ("two-1",)
        assert await engine.count_executions_matching(flow, ExecutionFilter("Running")) == 3
