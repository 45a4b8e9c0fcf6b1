"""Shared flows and helpers for the engine's tests.

Each test runs its own event loop (`relayflow.testing.bounded`) with an in-memory or a temporary
SQLite store (`relayflow.testing.make_engine`), and integrations made of small async functions.
Waits are short and bounded (`relayflow.testing.eventually`): no test waits on anything for more
than a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

from relayflow.engine import (
    Engine,
    ExecutionInfo,
    Submitted,
    TaskRequest,
)
from relayflow.engine.model import HistoryEvent
from relayflow.errors import EngineError
from relayflow.testing import eventually, fdl
from tests.helpers import EXAMPLES

QUEUE = "acs:mns:::/queues/q/messages"
SEED = (EXAMPLES / "seed-three-tasks.yaml").read_text()
TEST_TIMEOUT = 10.0  # the time limit of a test in tests/test_childflows.py


CALLBACK = fdl(f"""
- type: task
  name: work
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")

PASS = fdl("""
- type: pass
  name: only
""")

BROKEN = """version: v1
type: flow
steps:
  - type: choice
    name: c
    choices:
      - condition: $.ok
        goto: nowhere
  - type: pass
    name: b
"""

# Runs `hold` (a callback task) when the input says so, else ends at once.
ROUTED = fdl(f"""
- type: choice
  name: route
  choices:
    - condition: $.hold == true
      goto: hold
  default:
    goto: done
- type: task
  name: hold
  resourceArn: {QUEUE}
  pattern: waitForCallback
- type: pass
  name: done
""")


class Worker:
    """Task handlers that record every request they get."""

    def __init__(self) -> None:
        self.requests: list[TaskRequest] = []
        self.times: list[float] = []

    async def queue(self, request: TaskRequest) -> Submitted:
        self.requests.append(request)
        self.times.append(time.monotonic())
        return Submitted({"MessageId": str(request.task_id)})

    async def take(self, n: int = 1, timeout: float = 3.0) -> TaskRequest:
        """The ``n``-th request (1-based), once it has come."""
        await eventually(lambda: len(self.requests) >= n, timeout, f"task request #{n}")
        return self.requests[n - 1]


async def refused(code: str, awaitable: Awaitable[Any]) -> EngineError:
    """Await ``awaitable`` and check that the engine refuses it with ``code``."""
    with pytest.raises(EngineError) as info:
        await awaitable
    assert info.value.code == code, str(info.value)
    return info.value


async def history(engine: Engine, flow: str, name: str) -> list[HistoryEvent]:
    return (await engine.get_execution_history(flow, name, limit=999)).events


async def types_of(engine: Engine, flow: str, name: str) -> list[str]:
    return [e.type for e in await history(engine, flow, name)]


async def has_event(engine: Engine, flow: str, name: str, kind: str) -> bool:
    """Whether the execution's history holds an event of type ``kind``."""
    return kind in await types_of(engine, flow, name)


async def finished(engine: Engine, flow: str, name: str, seconds: float = 3) -> ExecutionInfo:
    info = await engine.describe_execution(flow, name, wait_seconds=seconds)
    assert info.done, f"{flow}/{name} is still {info.status} after {seconds} s"
    return info


def action_flow(action: str = "demo:Work", extra: str = "") -> str:
    """A flow of one requestResponse task step; ``extra`` adds attributes to the step."""
    step = f"- type: task\n  name: call\n  action: {action}\n"
    return fdl(step + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  "))


def token_text(token: str) -> str:
    return base64.b64decode(token).decode()


def retoken(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@contextlib.asynccontextmanager
async def running(*engines: Engine) -> AsyncIterator[None]:
    """Start ``engines`` (one after the other) and close every one that started."""
    started: list[Engine] = []
    try:
        for engine in engines:
            await engine.start()
            started.append(engine)
        yield
    finally:
        for engine in started:
            await engine.close(grace_seconds=0.5)


class Clock:
    """A clock that stands still until the test moves it (``clock.now += 60``)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sqlite_or_postgres(
    request: pytest.FixtureRequest, prefix: str, sqlite_url: str = "memory://"
) -> Iterator[str]:
    """The body of a store fixture parametrized over ``["sqlite", "postgres"]``.

    ``sqlite_url`` for the SQLite run; for PostgreSQL a fresh database named from ``prefix``
    on the session's server, dropped afterwards.
    """
    if request.param == "sqlite":
        yield sqlite_url
        return
    pytest.importorskip("psycopg")
    from tests.services import fresh_database

    server = request.getfixturevalue("postgres_url")
    with fresh_database(server, prefix + uuid.uuid4().hex[:12]) as url:
        yield url
