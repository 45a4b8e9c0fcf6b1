"""Describing and listing executions on the engine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from relayflow.testing import bounded, make_engine
from tests.engine.helpers import (
    CALLBACK,
    PASS,
    QUEUE,
    ROUTED,
    Worker,
    refused,
)


@bounded
async def test_describe_execution_wait_returns_when_the_execution_ends():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)

        async def report_soon() -> None:
            await asyncio.sleep(0.3)
            await eng.report_task_succeeded(request.token, {"done": 1})

        reporter = asyncio.create_task(report_soon())
        t0 = time.monotonic()
        info = await eng.describe_execution("f", "run1", wait_seconds=2)
        elapsed = time.monotonic() - t0
        await reporter
        assert info.status == "Succeeded" and info.output == {"done": 1}
        assert 0.25 <= elapsed < 1.0


@bounded
async def test_describe_execution_wait_times_out_with_a_running_execution():
    async with make_engine({QUEUE: Worker().queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        t0 = time.monotonic()
        info = await eng.describe_execution("f", "run1", wait_seconds=1)
        elapsed = time.monotonic() - t0
        assert info.status == "Running" and not info.done
        assert 0.9 <= elapsed < 1.8


@bounded
async def test_describe_execution_wait_on_a_finished_execution_returns_at_once():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        t0 = time.monotonic()
        info = await eng.describe_execution("p", "r", wait_seconds=60)
        assert info.status == "Succeeded"
        assert time.monotonic() - t0 < 30  # at once, not after the minute asked for


@bounded
async def test_describe_execution_refusals():
    async with make_engine() as eng:
        await eng.create_flow("p", PASS)
        await eng.start_execution("p", {}, name="r")
        for bad in (-1, 61):
            await refused("InvalidArgument", eng.describe_execution("p", "r", wait_seconds=bad))
        await refused("ExecutionNotExists", eng.describe_execution("p", "ghost"))
        await refused("ExecutionNotExists", eng.describe_execution("ghost", "r"))


@bounded
async def test_list_executions_filters_and_pages():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", ROUTED)
        await eng.create_flow("other", ROUTED)
        running = ["a1", "a3", "b2"]
        for name in ["b1", "a2", "a1", "b2", "a3", "a4", "c"]:
            await eng.start_execution("f", {"hold": name in running}, name=name)
        await eng.start_execution("other", {}, name="a0")

        async def names(**kwargs: Any) -> list[str]:
            return [e.name for e in (await eng.list_executions("f", **kwargs)).items]

        assert await names() == ["a1", "a2", "a3", "a4", "b1", "b2", "c"]
        assert await names(status="Running") == ["a1", "a3", "b2"]
        assert await names(status="Succeeded") == ["a2", "a4", "b1", "c"]
        assert await names(name_prefix="a") == ["a1", "a2", "a3", "a4"]
        assert await names(name_prefix="a", status="Running") == ["a1", "a3"]
        assert await names(name_prefix="zz") == []
        assert await names(status="Failed") == []

        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await eng.list_executions("f", limit=3, next_token=token)
            seen += [e.name for e in page.items]
            pages += 1
            if not page.next_token:
                break
            token = page.next_token
        assert seen == ["a1", "a2", "a3", "a4", "b1", "b2", "c"] and pages == 3

        first = await eng.list_executions("f", name_prefix="a", limit=2)
        assert [e.name for e in first.items] == ["a1", "a2"] and first.next_token
        rest = await eng.list_executions("f", name_prefix="a", limit=2, next_token=first.next_token)
        assert [e.name for e in rest.items] == ["a3", "a4"] and rest.next_token == ""

        await refused("FlowNotExists", eng.list_executions("ghost"))
        await refused("InvalidArgument", eng.list_executions("f", limit=0))


@bounded
async def test_list_executions_by_start_time():
    clock_now = [1_000_000.0]
    async with make_engine(clock=lambda: clock_now[0]) as eng:
        await eng.create_flow("p", PASS)
        for i, name in enumerate(["x1", "x2", "x3"]):
            clock_now[0] = 1_000_000.0 + 10 * i
            await eng.start_execution("p", {}, name=name)
        page = await eng.list_executions("p", started_from=1_000_005.0)
        assert [e.name for e in page.items] == ["x2", "x3"]
        page = await eng.list_executions("p", started_to=1_000_010.0)
        assert [e.name for e in page.items] == ["x1", "x2"]


class _Reads:
    """Counts the executions the engine's store reads look up, and their children lookups."""

    def __init__(self, eng: Any) -> None:
        self.reads = 0
        self.children = 0
        store = eng._runtime.committer._store
        plain = store.reader
        counter = self

        class Spy:
            def __init__(self, tx: Any) -> None:
                self._tx = tx

            def __getattr__(self, name: str) -> Any:
                if name == "children_of":
                    counter.children += 1
                elif name == "get_execution":
                    counter.reads += 1
                return getattr(self._tx, name)

        @contextlib.contextmanager
        def reader() -> Iterator[Spy]:
            with plain() as tx:
                yield Spy(tx)

        store.reader = reader


@bounded
async def test_a_long_poll_reads_once_when_ended_and_twice_when_it_ends_meanwhile():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        reads = _Reads(eng)
        waiting = asyncio.create_task(eng.describe_execution("f", "run1", wait_seconds=10))
        await asyncio.sleep(0.2)
        assert reads.reads == 1  # the first look, then it waits for the end's commit
        await eng.report_task_succeeded(request.token, {"done": 1})
        assert (await waiting).status == "Succeeded"
        assert reads.reads == 2
        await eng.describe_execution("f", "run1", wait_seconds=10)
        await eng.describe_execution("f", "run1")
        assert reads.reads == 4


@bounded
async def test_children_are_looked_for_only_where_a_child_flow_may_start():
    queue_named_fnf = "acs:mns:::/queues/fnf-demo/messages"
    async with make_engine({queue_named_fnf: Worker().queue}) as eng:
        await eng.create_flow("p", PASS)
        await eng.create_flow("q", CALLBACK.replace(QUEUE, queue_named_fnf))
        await eng.create_flow("c", CALLBACK.replace(QUEUE, "acs:fnf:::flow/p"))
        await eng.start_execution("q", {}, name="r")
        await eng.start_execution("c", {}, name="r")
        reads = _Reads(eng)
        await eng.describe_execution("q", "r")
        assert reads.children == 0
        await eng.describe_execution("c", "r")
        assert reads.children == 1
