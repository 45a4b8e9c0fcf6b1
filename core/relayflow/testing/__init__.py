"""Helpers for testing flows and plugins against a real engine, and the pytest plugin's parts.

    from relayflow.testing import bounded, fdl, run_to_end

    @bounded
    async def test_echo(engine_factory) -> None:
        async with engine_factory(integrations=[EchoIntegration()]) as engine:
            await engine.create_flow("f", fdl('''
            - type: task
              name: echo
              action: myplugin:Echo
            '''))
            info = await run_to_end(engine, "f", {"word": "hi"}, name="run-1")

`bounded` runs an async test in its own event loop with an overall time limit, so that a test
waiting for something that never comes fails instead of hanging the suite; `make_engine` (and the
`engine_factory` fixture of the pytest plugin `relayflow.testing.plugin`, which installing
relayflow registers) builds an engine with test-friendly defaults; `eventually` polls a condition
within a time limit; `run_to_end` and `event_details` start an execution and read what happened.

This module imports neither pytest nor the engine until a helper needs them, so that loading the
plugin costs a pytest session next to nothing.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import textwrap
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from relayflow.engine import Engine, ExecutionInfo, Integration
    from relayflow.engine.integration import Handler

__all__ = [
    "DEFAULT_TEST_SECONDS",
    "DEFAULT_WAIT_SECONDS",
    "EngineFactory",
    "bounded",
    "event_details",
    "eventually",
    "eventually_sync",
    "fdl",
    "make_engine",
    "run_to_end",
]

#: The time limit of a `bounded` test unless it says otherwise.
DEFAULT_TEST_SECONDS = 15.0
#: How long `eventually` waits unless told otherwise.
DEFAULT_WAIT_SECONDS = 3.0
#: The pause between two checks of `eventually`.
_POLL_INTERVAL = 0.02
#: How often an engine made by `make_engine` looks for due work: often, so that tests are quick.
_TEST_POLL_SECONDS = 0.1

_AsyncTest = Callable[..., Awaitable[None]]
_Test = Callable[..., None]
_T = TypeVar("_T")


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


async def eventually(
    check: Callable[[], Any],
    seconds: float = DEFAULT_WAIT_SECONDS,
    what: str = "a condition",
    *,
    interval: float = _POLL_INTERVAL,
) -> Any:
    """Poll ``check`` until it gives a true value, and return that value.

    ``check`` is a plain or an async function of no arguments. It is called at least once, and
    again every ``interval`` seconds while the event loop runs other work.

    Raises:
        AssertionError: ``check`` gave no true value within ``seconds``; the message names
            ``what`` was awaited.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], _T],
    seconds: float = DEFAULT_WAIT_SECONDS,
    what: str = "a condition",
    *,
    interval: float = _POLL_INTERVAL,
) -> _T:
    """`eventually` for code without an event loop: poll ``check`` (a plain function), sleeping.

    Raises:
        AssertionError: ``check`` gave no true value within ``seconds``.
        TypeError: ``check`` is an async function (await `eventually` instead).
    """
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: close it so Python does not warn about it
            raise TypeError("eventually_sync() got an async check: use `await eventually(...)`")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(interval)


def fdl(steps: str, head: str = "") -> str:
    """A flow document: ``steps`` (a YAML list, indented as you like) under `steps:`.

    ``head`` (also indented as you like) goes between `type: flow` and `steps:`, for flow
    attributes such as `timeoutSeconds: 60`.
    """
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    top = textwrap.dedent(head).strip("\n")
    if top:
        top += "\n"
    return f"version: v1\ntype: flow\n{top}steps:\n{body}\n"


def make_engine(
    handlers: Mapping[str, Handler] | None = None,
    *,
    integrations: Sequence[Integration] = (),
    store: str = "memory://",
    **options: Any,
) -> Engine:
    """An engine for a test, not yet started: enter it with ``async with``.

    Args:
        handlers: async functions that serve task steps, keyed by resourceArn or action (they
            become a `FunctionIntegration`).
        integrations: further integrations, such as the plugin's under test.
        store: the store's URL; an in-memory SQLite store unless told otherwise.
        **options: passed on to `Engine`; `poll_seconds` is 0.1 unless given, so that timers and
            retries come due quickly.
    """
    from relayflow.engine import Engine, FunctionIntegration
    from relayflow.store import open_store

    served = list(integrations)
    if handlers or not served:
        served.append(FunctionIntegration(dict(handlers or {})))
    options.setdefault("poll_seconds", _TEST_POLL_SECONDS)
    return Engine(open_store(store), integrations=served, **options)


class EngineFactory:
    """Makes engines for one test, as `make_engine` does: the `engine_factory` fixture.

    ``sqlite=True`` puts the engine on a SQLite file in the test's own temporary folder: every
    engine of one factory made so shares it, so that a second engine sees what the first one
    stored (a restart).
    """

    def __init__(self, folder: Path) -> None:
        #: The URL of the test's SQLite store.
        self.sqlite_url = f"sqlite:///{folder / 'relayflow.db'}"

    def __call__(
        self,
        handlers: Mapping[str, Handler] | None = None,
        *,
        integrations: Sequence[Integration] = (),
        sqlite: bool = False,
        **options: Any,
    ) -> Engine:
        """An engine, not yet started; see `make_engine` for the arguments."""
        if sqlite:
            options["store"] = self.sqlite_url
        return make_engine(handlers, integrations=integrations, **options)


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
