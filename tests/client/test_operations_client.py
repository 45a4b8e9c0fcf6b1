"""The clients' methods for issue 15's operations, against the session's real server.

`run_operations` is one walk through every operation (redrive, the bulk actions, waiting work,
purges, DescribeExecution with its waiting work, DeleteFlow with Force), written once for any
face with the client's methods: `Client`, `AsyncClient` (through `Blocking`, which runs each
coroutine to its end) and, in tests/engine/test_sync_operations.py, `SyncEngine`. It checks
the results' types and fields, and that bad input is refused with the operation's code.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relayflow.client import AsyncClient, BulkPage, Client, ClientError, PurgeResult
from relayflow.engine import SyncEngine
from relayflow.results import BulkFailure, BulkSkip, ExecutionInfo, Page, WaitingWork
from tests.api_server import KEYS, ApiServer

WAITS = """version: v1
type: flow
steps:
  - type: wait
    name: nap
    duration: 3600
"""
PASSES = """version: v1
type: flow
steps:
  - type: pass
    name: only
"""

#: The methods this module is about, which the three faces must take the same arguments of.
OPERATIONS = (
    "redrive_execution",
    "count_executions",
    "stop_executions",
    "redrive_executions",
    "list_waiting",
    "iter_waiting",
    "purge_executions",
    "describe_execution",
    "delete_flow",
)


def refused(error: type[Exception], code: str, call: Callable[[], Any]) -> None:
    """``call`` raises ``error`` with ``code`` and a one-sentence message."""
    with pytest.raises(error) as info:
        call()
    assert getattr(info.value, "code", None) == code, info.value
    assert "\n" not in str(info.value)


def run_operations(face: Any, error: type[Exception]) -> None:
    """Every operation once on ``face`` (a client or a `SyncEngine`); refusals are ``error``."""
    flow = "ops_" + uuid.uuid4().hex[:10]
    face.create_flow(flow, WAITS)
    for name in ("imp-1", "imp-2", "keep"):
        face.start_execution(flow, {}, name)

    # Counting, with ListExecutions' filters.
    assert face.count_executions(flow, "Running") == 3
    assert face.count_executions(flow, name_prefix="imp-") == 2
    later = datetime.now(UTC) + timedelta(hours=1)
    assert face.count_executions(flow, started_after=later) == 0

    # Bulk stop: a dry run selects, then one page at a time.
    dry = face.stop_executions(flow, name_prefix="imp-", dry_run=True)
    assert isinstance(dry, BulkPage)
    assert (dry.matched, dry.selected, dry.done, dry.dry_run) == (2, ("imp-1", "imp-2"), (), True)
    first = face.stop_executions(flow, name_prefix="imp-", error="Ops.Abandoned", limit=1)
    assert (first.matched, first.done, first.skipped, first.failed) == (2, ("imp-1",), (), ())
    assert first.selected == ("imp-1",) and not first.last
    rest = face.stop_executions(
        flow, name_prefix="imp-", error="Ops.Abandoned", next_token=first.next_token
    )
    assert (rest.matched, rest.done, rest.next_token) == (1, ("imp-2",), "")
    stopped = face.describe_execution(flow, "imp-1")
    assert (stopped.status, stopped.error, stopped.waiting) == ("Stopped", "Ops.Abandoned", None)

    # Waiting work: a page, every page, and what one execution waits on.
    page = face.list_waiting(flow)
    assert isinstance(page, Page) and all(isinstance(w, WaitingWork) for w in page.items)
    assert [(w.execution_name, w.step_name, w.kind) for w in page.items] == [
        ("keep", "nap", "wait")
    ]
    assert page.items[0].since is not None and page.items[0].due is not None
    assert [w.execution_name for w in face.iter_waiting(flow, page_size=1)] == ["keep"]
    assert list(face.iter_waiting(flow, older_than=3600)) == []
    described = face.describe_execution(flow, "keep", include_waiting=True)
    assert described.waiting is not None
    assert [w.step_name for w in described.waiting] == ["nap"]

    # Redrive, one and in bulk.
    again = face.redrive_execution(flow, "imp-1")
    assert isinstance(again, ExecutionInfo)
    assert (again.status, again.redrive_count, again.error) == ("Running", 1, "")
    chosen = face.redrive_executions(flow, "Stopped", dry_run=True)
    assert (chosen.matched, chosen.selected, chosen.done) == (1, ("imp-2",), ())
    done = face.redrive_executions(flow, "Stopped", name_prefix="imp-", use_current_definition=True)
    assert (done.done, done.failed, done.dry_run) == (("imp-2",), (), False)
    assert face.describe_execution(flow, "imp-2").redrive_count == 1

    # Bad input: the operation's code, one sentence.
    refused(error, "ExecutionNotRedrivable", lambda: face.redrive_execution(flow, "keep"))
    refused(error, "ExecutionNotExists", lambda: face.redrive_execution(flow, "ghost"))
    refused(error, "InvalidArgument", lambda: face.redrive_executions(flow, "Running"))
    refused(error, "InvalidArgument", lambda: face.stop_executions(flow, limit=0))
    refused(error, "InvalidArgument", lambda: face.stop_executions(flow, status="Bogus"))
    refused(error, "FlowNotExists", lambda: face.count_executions(flow + "_none"))
    refused(error, "InvalidArgument", lambda: face.list_waiting(flow, limit=5000))
    refused(error, "InvalidArgument", lambda: face.purge_executions(later, limit=0))

    # DeleteFlow: refused while executions run, unless forced.
    refused(error, "FlowHasRunningExecutions", lambda: face.delete_flow(flow))
    face.delete_flow(flow, force=True)
    refused(error, "FlowNotExists", lambda: face.describe_flow(flow))

    # Purge: what ended before a time, one limited call at a time.
    ended = "ops_" + uuid.uuid4().hex[:10]
    face.create_flow(ended, PASSES)
    for name in ("a", "b", "c"):
        face.start_execution(ended, {}, name)
    for name in ("a", "b", "c"):
        assert face.wait_for_execution(ended, name, timeout=30).succeeded
    cutoff = datetime.now(UTC) + timedelta(minutes=1)
    counted = face.purge_executions(cutoff, flow_name=ended, dry_run=True)
    assert isinstance(counted, PurgeResult)
    assert (counted.count, counted.remaining, counted.dry_run, counted.more) == (3, 0, True, False)
    part = face.purge_executions(cutoff, flow_name=ended, limit=2)
    assert (part.count, part.remaining, part.more) == (2, 1, True)
    last = face.purge_executions(cutoff.isoformat(), flow_name=ended)
    assert (last.count, last.remaining, last.more) == (1, 0, False)
    assert face.list_executions(ended).items == []
    refused(error, "FlowNotExists", lambda: face.purge_executions(cutoff, flow_name=ended + "x"))
    face.delete_flow(ended)


class Blocking:
    """An `AsyncClient` with blocking methods: each call runs its coroutine on ``loop``.

    Async iterators are gathered into lists, so the one walk serves both clients.
    """

    def __init__(self, client: AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isasyncgen(result):
                return self._loop.run_until_complete(_gather(result))
            return self._loop.run_until_complete(result)

        return call


async def _gather(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def test_the_client_runs_every_operation(api_server: ApiServer) -> None:
    with Client(api_server.url, *KEYS["admin"], timeout=30) as client:
        run_operations(client, ClientError)
        # What the client checks before sending anything.
        for older_than in (1.5, float("inf"), float("nan")):
            with pytest.raises(ValueError, match="whole number of seconds"):
                client.list_waiting(older_than=older_than)
        with pytest.raises(ValueError, match="timezone-aware"):
            client.purge_executions(datetime(2020, 1, 1))
        with pytest.raises(ValueError, match="not a time"):
            client.purge_executions(float("inf"))


def test_the_async_client_runs_every_operation(api_server: ApiServer) -> None:
    loop = asyncio.new_event_loop()
    try:
        client = AsyncClient(api_server.url, *KEYS["admin"], timeout=30)
        try:
            run_operations(Blocking(client, loop), ClientError)
        finally:
            loop.run_until_complete(client.aclose())
    finally:
        loop.close()


def test_a_reader_may_count_and_list_but_not_act(api_server: ApiServer) -> None:
    with Client(api_server.url, *KEYS["reader"], timeout=30) as reader:
        assert isinstance(reader.list_waiting(limit=1), Page)
        with pytest.raises(ClientError) as info:  # past the role check: the flow is looked up
            reader.count_executions("no_such_flow")
        assert info.value.code == "FlowNotExists"
        with pytest.raises(ClientError) as info:
            reader.stop_executions("any_flow", dry_run=True)
        assert info.value.status == 403


def test_bulk_and_purge_answers_read_back_as_the_engine_wrote_them() -> None:
    written = BulkPage(
        3,
        ("a", "b", "c"),
        done=("a",),
        skipped=(BulkSkip("b", "it is Stopped now"),),
        failed=(BulkFailure("c", "ServiceBusy", "the store is busy; try again"),),
        next_token="c",
    )
    assert BulkPage.from_api(written.to_api()) == written
    dry = BulkPage(5, ("x", "y"), next_token="y", dry_run=True)
    assert BulkPage.from_api(dry.to_api()) == dry
    for result in (PurgeResult(10, 0), PurgeResult(3, 7, dry_run=True)):
        assert PurgeResult.from_api(result.to_api()) == result
    with pytest.raises(ClientError) as info:
        BulkPage.from_api({"Matched": 1, "Done": "a"})
    assert info.value.code == "InvalidResponse"


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_three_faces_take_the_same_arguments(name: str) -> None:
    def arguments(face: type[Any]) -> list[tuple[str, Any, Any]]:
        parameters = inspect.signature(getattr(face, name)).parameters.values()
        return [(p.name, p.kind, p.default) for p in parameters]

    expected = arguments(Client)
    assert arguments(AsyncClient) == expected
    engine = arguments(SyncEngine)
    # The embedded engine may take a wider type but the same names, order and kinds.
    assert [(n, k) for n, k, _ in engine] == [(n, k) for n, k, _ in expected]
