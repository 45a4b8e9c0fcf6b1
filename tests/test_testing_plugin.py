"""relayflow.testing: `eventually`, `make_engine`, `fdl`'s head, and the pytest plugin's fixture."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

import pytest

from relayflow.engine import FunctionIntegration, Succeeded, TaskRequest
from relayflow.errors import EngineError
from relayflow.fdl import load_flow
from relayflow.testing import (
    EngineFactory,
    bounded,
    event_details,
    eventually,
    eventually_sync,
    fdl,
    make_engine,
    run_to_end,
)

ECHO = fdl("""
- type: task
  name: echo
  action: demo:Echo
""")


async def echo(request: TaskRequest) -> Succeeded:
    return Succeeded({"echo": request.input})


# --- eventually --------------------------------------------------------------------------------


@bounded
async def test_eventually_returns_the_first_true_value_of_a_plain_or_async_check() -> None:
    calls: list[int] = []

    def plain() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(plain) == 3

    async def later() -> str:
        await asyncio.sleep(0)
        calls.append(1)
        return "ready" if len(calls) >= 5 else ""

    assert await eventually(later, 2, "the fifth call") == "ready"


@bounded
async def test_eventually_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for the doorbell"):
        await eventually(lambda: False, 0.05, "the doorbell")


def test_eventually_sync_polls_without_an_event_loop() -> None:
    calls: list[int] = []
    assert eventually_sync(lambda: calls.append(1) or len(calls) == 3) is True
    assert len(calls) == 3
    with pytest.raises(AssertionError, match="waiting for nothing"):
        eventually_sync(lambda: None, seconds=0.05, what="nothing")


def test_eventually_sync_refuses_an_async_check() -> None:
    async def check() -> bool:
        return True

    with pytest.raises(TypeError, match="use `await eventually"):
        eventually_sync(check)


# --- fdl ---------------------------------------------------------------------------------------


def test_fdl_head_may_be_indented_and_without_a_final_newline() -> None:
    text = fdl(
        """
        - type: pass
          name: only
        """,
        head="""
            timeoutSeconds: 60
            """,
    )
    assert load_flow(text).timeout_seconds == 60
    assert fdl("- type: pass\n  name: a", head="timeoutSeconds: 5") == fdl(
        "- type: pass\n  name: a", head="timeoutSeconds: 5\n"
    )


# --- make_engine and the engine_factory fixture ------------------------------------------------


@bounded
async def test_make_engine_serves_handlers_and_integrations_together() -> None:
    async def other(request: TaskRequest) -> Succeeded:
        return Succeeded({"other": True})

    extra = FunctionIntegration({"demo:Other": other}, name="extra")
    two_steps = fdl("""
    - type: task
      name: echo
      action: demo:Echo
    - type: task
      name: other
      action: demo:Other
    """)
    async with make_engine({"demo:Echo": echo}, integrations=[extra]) as engine:
        await engine.create_flow("f", two_steps)
        info = await run_to_end(engine, "f", {"a": 1}, name="run-1")
        assert info.output == {"echo": {"a": 1}, "other": True}
        types = [kind for kind, _ in await event_details(engine, "f", "run-1")]
        assert types.count("TaskSucceeded") == 2


@bounded
async def test_engine_factory_gives_engines_in_memory_by_default(
    engine_factory: EngineFactory,
) -> None:
    async with engine_factory({"demo:Echo": echo}) as engine:
        await engine.create_flow("f", ECHO)
        info = await run_to_end(engine, "f", {"a": 1}, name="run-1")
        assert info.output == {"echo": {"a": 1}}
    async with engine_factory() as engine:  # a new memory store: the flow is not there
        with pytest.raises(EngineError, match="f"):
            await engine.describe_flow("f")


@bounded
async def test_engine_factory_sqlite_engines_share_the_tests_store(
    engine_factory: EngineFactory, tmp_path
) -> None:
    async with engine_factory({"demo:Echo": echo}, sqlite=True) as engine:
        await engine.create_flow("f", ECHO)
        await run_to_end(engine, "f", {}, name="run-1")
    async with engine_factory(sqlite=True) as engine:  # a restart: the same file
        assert (await engine.describe_execution("f", "run-1")).status == "Succeeded"
    assert engine_factory.sqlite_url == f"sqlite:///{tmp_path / 'relayflow.db'}"
    assert (tmp_path / "relayflow.db").exists()


def test_installing_relayflow_registers_the_pytest_plugin(
    pytestconfig: pytest.Config,
) -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("relayflow") == "relayflow.testing.plugin"
    assert pytestconfig.pluginmanager.has_plugin("relayflow")
