"""Helpers for testing flows and plugins against a real engine.

    from relayflow.testing import bounded, fdl

    @bounded
    async def test_echo() -> None:
        async with Engine(open_store("memory://"), integrations=[...]) as engine:
            await engine.create_flow("f", fdl('''
            - type: task
              name: echo
              action: myplugin:Echo
            '''))

`bounded` runs an async test in its own event loop with an overall time limit, so that a test
waiting for something that never comes fails instead of hanging the suite; `run_to_end` and
`event_details` start an execution and read what happened.
"""

from __future__ import annotations

import asyncio
import functools
import textwrap
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from relayflow.engine import Engine, ExecutionInfo

__all__ = ["DEFAULT_TEST_SECONDS", "bounded", "event_details", "fdl", "run_to_end"]

#: The time limit of a `bounded` test unless it says otherwise.
DEFAULT_TEST_SECONDS = 15.0

_AsyncTest = Callable[..., Awaitable[None]]
_Test = Callable[..., None]


@overload
def bounded(fn: _AsyncTest, /) -> _Test: ...


@overload
def bounded(*, seconds: float = DEFAULT_TEST_SECONDS) -> Callable[[_AsyncTest], _Test]: ...


def bounded(
    fn: _AsyncTest | None = None, /, *, seconds: float = DEFAULT_TEST_SECONDS
) -> _Test | Callable[[_AsyncTest], _Test]:
    """Make an async test a plain one that runs in a fresh event loop within ``seconds``.

    Use it bare (`@bounded`) or with a limit (`@bounded(seconds=5)`).
    """

    def wrap(test: _AsyncTest) -> _Test:
        @functools.wraps(test)
        def run(*args: Any, **kwargs: Any) -> None:
            asyncio.run(asyncio.wait_for(test(*args, **kwargs), seconds))

        return run

    return wrap(fn) if fn is not None else wrap


def fdl(steps: str, head: str = "") -> str:
    """A flow document: ``steps`` (a YAML list, indented as you like) under `steps:`.

    ``head`` goes between `type: flow` and `steps:`, for flow attributes such as
    `timeoutSeconds: 60\\n`.
    """
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    return f"version: v1\ntype: flow\n{head}steps:\n{body}\n"


async def run_to_end(
    engine: Engine, flow: str, input: dict[str, Any], name: str, seconds: float = 10
) -> ExecutionInfo:
    """Start an execution and wait (a long poll of up to ``seconds``) until it has ended."""
    await engine.start_execution(flow, input, name=name)
    info = await engine.describe_execution(flow, name, wait_seconds=seconds)
    assert info.done, f"{name} is still {info.status} after {seconds} s"
    return info


async def event_details(engine: Engine, flow: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    """An execution's history as (type, detail) pairs, oldest first."""
    page = await engine.get_execution_history(flow, name, limit=999)  # the API's largest page
    return [(event.type, event.detail) for event in page.events]
