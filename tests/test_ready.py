"""`GET /ready` for load balancers, and what an engine does once it is told to stop.

In process: an `ApiApp` on an engine with an in-memory store, called through httpx's ASGI
transport. /ready is 200 only while the engine takes work and its store answers a read within a
second; `Engine.begin_shutdown` turns it to 503 at once and answers pending long polls with the
execution as it stands. The process-level shutdown (SIGTERM) is in tests/test_sigterm.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from relayflow import testing
from relayflow.api import ApiApp, Authenticator
from relayflow.engine import Engine, Submitted, TaskRequest
from relayflow.store import StoreError, Transaction
from tests.engine.helpers import CALLBACK, QUEUE

BOUND = 10.0  # every wait of these tests ends well within this, or the test fails


async def submitted(request: TaskRequest) -> Submitted:
    return Submitted({"MessageId": "m-1"})


def make_engine() -> Engine:
    return testing.make_engine({QUEUE: submitted})


def client_for(engine: Engine) -> httpx.AsyncClient:
    app = ApiApp(engine, Authenticator([]), address=("127.0.0.1", 8765))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
    )


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, BOUND))


def test_ready_only_while_the_engine_runs():
    async def scenario() -> list[tuple[int, Any]]:
        engine = make_engine()
        seen = []
        async with client_for(engine) as client:
            answer = await client.get("/ready")
            seen.append((answer.status_code, answer.json()["Status"]))
            await engine.start()
            answer = await client.get("/ready")
            seen.append((answer.status_code, answer.json()))
            engine.begin_shutdown()
            answer = await client.get("/ready")
            seen.append((answer.status_code, answer.json()["Status"]))
            health = await client.get("/health")
            seen.append((health.status_code, health.json()))
            await engine.close()
            answer = await client.get("/ready")
            seen.append((answer.status_code, answer.json()["Status"]))
        return seen

    assert run(scenario()) == [
        (503, "starting"),
        (200, {"Status": "ok"}),
        (503, "stopping"),
        (200, {"Status": "ok"}),
        (503, "stopping"),
    ]


@contextmanager
def hanging_reads(engine: Engine) -> Iterator[threading.Event]:
    """Make the engine's store reads block until the event yielded is set."""
    release = threading.Event()
    store = engine.store
    original = store.reader

    @contextmanager
    def reader() -> Iterator[Transaction]:
        release.wait(BOUND)
        with original() as tx:
            yield tx

    store.reader = reader  # type: ignore[method-assign]
    try:
        yield release
    finally:
        release.set()
        store.reader = original  # type: ignore[method-assign]


def test_ready_fails_while_the_store_does_not_answer():
    async def scenario() -> list[Any]:
        engine = make_engine()
        await engine.start()
        try:
            async with client_for(engine) as client:
                with hanging_reads(engine) as release:
                    # Several checks while the store hangs: each answers within its second.
                    answers = await asyncio.gather(*(client.get("/ready") for _ in range(3)))
                    release.set()
                healthy = await client.get("/ready")
            return [(a.status_code, a.json()["Status"]) for a in answers] + [healthy.status_code]
        finally:
            await engine.close()

    assert run(scenario()) == [(503, "unavailable")] * 3 + [200]


def test_ping_answers_false_within_its_timeout_when_the_store_hangs():
    async def scenario() -> tuple[bool, bool, bool]:
        engine = make_engine()
        await engine.start()
        try:
            with hanging_reads(engine) as release:
                hung = await engine.ping(0.2)
                release.set()
            # The read that hung completes; the next ping is answered.
            return hung, await engine.ping(BOUND), await engine.ping(BOUND)
        finally:
            await engine.close()

    assert run(scenario()) == (False, True, True)


def test_begin_shutdown_answers_pending_long_polls_with_the_current_state():
    async def scenario() -> tuple[str, str, bool]:
        engine = make_engine()
        await engine.start()
        try:
            await engine.create_flow("f", CALLBACK)
            await engine.start_execution("f", {}, name="e")
            poll = asyncio.create_task(engine.describe_execution("f", "e", wait_seconds=60))
            await asyncio.sleep(0.05)  # let it start waiting (its answer does not depend on it)
            assert not poll.done()
            engine.begin_shutdown()
            async with asyncio.timeout(BOUND):
                pending = await poll
            # A long poll that comes after the signal answers at once too.
            async with asyncio.timeout(BOUND):
                later = await engine.describe_execution("f", "e", wait_seconds=60)
            return pending.status, later.status, engine.accepting
        finally:
            await engine.close()

    assert run(scenario()) == ("Running", "Running", False)


def test_a_long_poll_still_wakes_when_its_execution_ends():
    async def scenario() -> str:
        engine = make_engine()
        await engine.start()
        try:
            await engine.create_flow("f", CALLBACK)
            await engine.start_execution("f", {}, name="e")
            poll = asyncio.create_task(engine.describe_execution("f", "e", wait_seconds=60))
            await asyncio.sleep(0.05)
            await engine.stop_execution("f", "e", "Cancelled", "by the test")
            async with asyncio.timeout(BOUND):
                return (await poll).status
        finally:
            await engine.close()

    assert run(scenario()) == "Stopped"


def test_use_nonce_refuses_a_nonce_the_store_has_seen():
    async def scenario() -> list[bool]:
        engine = make_engine()
        await engine.start()
        try:
            first = [await engine.use_nonce("k1", 60) for _ in range(2)]
            return [*first, await engine.use_nonce("k2", 60)]
        finally:
            await engine.close()

    assert run(scenario()) == [True, False, True]


def test_a_store_that_cannot_be_used_answers_503_without_a_traceback(caplog):
    async def scenario() -> tuple[int, dict[str, Any]]:
        engine = make_engine()
        await engine.start()
        store = engine.store
        original = store.reader

        @contextmanager
        def reader() -> Iterator[Transaction]:
            raise StoreError("the database at db.internal:5432 does not answer")
            yield  # a generator, as the real one

        store.reader = reader  # type: ignore[method-assign]
        try:
            async with client_for(engine) as client:
                answer = await client.post("/", data={"Action": "DescribeFlow", "Name": "f"})
            return answer.status_code, answer.json()
        finally:
            store.reader = original  # type: ignore[method-assign]
            await engine.close()

    status, doc = run(scenario())
    assert (status, doc["Code"]) == (503, "ServiceUnavailable")
    assert "db.internal:5432 does not answer" in doc["Message"]
    logged = [r for r in caplog.records if "DescribeFlow failed" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is None  # one line, no traceback
