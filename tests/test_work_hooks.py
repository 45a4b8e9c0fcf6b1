"""The hooks on the engine's own work, called by a real engine on SQLite and on PostgreSQL.

A plugin object is registered on a `PluginManager` that the engine is given, as `relayflow
server` does. The engine's clock is a `Clock` that stands still: a timer's lateness is then
exactly how far the test moves it. Beside the plugin that records, one plugin raises in every
hook: the engine must not notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.engine import Engine, Succeeded, TaskRequest
from relayflow.plugins import PluginManager, hookimpl
from relayflow.plugins.events import CommitEvent
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import Clock, history, sqlite_or_postgres

ACTION = "test:Say"
# A task, then a wait of a minute on the engine's clock.
FLOW = fdl(f"""
- type: task
  name: say
  action: {ACTION}
- type: wait
  name: pause
  duration: 60
""")
TASK = fdl(f"""
- type: task
  name: say
  action: {ACTION}
""")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file of the test's own, or a fresh PostgreSQL database."""
    yield from sqlite_or_postgres(request, "workhooks_", f"sqlite:///{tmp_path / 'rf.db'}")


def kind_of(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "sqlite"


class Watcher:
    """Records every call of the work hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def of(self, kind: str) -> list[Any]:
        return [value for name, value in self.calls if name == kind]

    @hookimpl
    def relayflow_engine_started(self, engine: Engine) -> None:
        self.calls.append(("started", engine))

    @hookimpl
    def relayflow_engine_stopping(self, engine: Engine) -> None:
        self.calls.append(("stopping", engine))

    @hookimpl
    def relayflow_batch_committed(self, batch: CommitEvent) -> None:
        self.calls.append(("commit", batch))

    @hookimpl
    def relayflow_outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        self.calls.append(("dispatched", (resource, lag_seconds)))

    @hookimpl
    def relayflow_timers_fired(self, count: int, lag_seconds: float) -> None:
        self.calls.append(("timers", (count, lag_seconds)))


class Failing:
    """Raises in every work hook."""

    @hookimpl
    def relayflow_engine_started(self, engine: Engine) -> None:
        raise RuntimeError("broken plugin")

    @hookimpl
    def relayflow_engine_stopping(self, engine: Engine) -> None:
        raise RuntimeError("broken plugin")

    @hookimpl
    def relayflow_batch_committed(self, batch: CommitEvent) -> None:
        raise RuntimeError("broken plugin")

    @hookimpl
    def relayflow_outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        raise RuntimeError("broken plugin")

    @hookimpl
    def relayflow_timers_fired(self, count: int, lag_seconds: float) -> None:
        raise RuntimeError("broken plugin")


def plugins_with(*plugins: object) -> PluginManager:
    manager = PluginManager()
    for index, plugin in enumerate(plugins):
        manager.register(plugin, f"p{index}")
    return manager


async def waiting(engine: Engine, flow: str) -> bool:
    """Whether execution ``run`` of ``flow`` has entered its wait step."""
    events = await history(engine, flow, "run")
    return any(e.type == "StepEntered" and e.step_name == "pause" for e in events)


async def say(request: TaskRequest) -> Succeeded:
    return Succeeded({"said": True})


@bounded(seconds=20)
async def test_commits_dispatches_and_timers_reach_plugins_beside_a_failing_one(
    store_url: str,
) -> None:
    watcher, clock = Watcher(), Clock()
    manager = plugins_with(Failing(), watcher)
    engine = make_engine({ACTION: say}, store=store_url, plugins=manager, clock=clock)
    async with engine:
        assert watcher.calls == [("started", engine)]
        await engine.create_flow("f", FLOW)
        await engine.start_execution("f", {}, name="run")
        await eventually(lambda: watcher.of("dispatched"), what="the dispatch")
        # Once the task's outcome has committed, the wait's timer is due a minute later.
        await eventually(lambda: waiting(engine, "f"), what="the wait step")
        clock.now += 65
        await eventually(lambda: watcher.of("timers"), what="the timer firing")
        done = await engine.describe_execution("f", "run", wait_seconds=5)
        assert done.status == "Succeeded"
        assert watcher.of("timers") == [(1, 5.0)]  # 65 s on the clock, due after 60
        [(resource, lag)] = watcher.of("dispatched")
        assert resource == ACTION and isinstance(lag, float) and lag >= 0
    assert [name for name, _ in watcher.calls].count("stopping") == 1
    assert watcher.of("stopping") == [engine]
    commits = watcher.of("commit")
    assert commits and all(isinstance(c, CommitEvent) for c in commits)
    assert {c.store for c in commits} == {kind_of(store_url)}
    assert all(c.jobs >= 1 and c.seconds >= 0 for c in commits)
    # The flow, the start, the outcome, the timer: at least four jobs went through the writer.
    assert sum(c.jobs for c in commits) >= 4


@bounded(seconds=20)
async def test_a_row_taken_over_from_the_store_has_no_lag(store_url: str) -> None:
    called, hold = asyncio.Event(), asyncio.Event()

    async def stuck(request: TaskRequest) -> Succeeded:
        called.set()
        await hold.wait()  # never set: the first engine stops with its attempt open
        return Succeeded({})

    async with make_engine({ACTION: stuck}, store=store_url) as first:
        await first.create_flow("g", TASK)
        await first.start_execution("g", {}, name="run")
        await asyncio.wait_for(called.wait(), 5)
        await first.close(grace_seconds=0.05)  # abandons the attempt, hands its lease back
    watcher = Watcher()
    second = make_engine({ACTION: say}, store=store_url, plugins=plugins_with(watcher))
    async with second:
        done = await second.describe_execution("g", "run", wait_seconds=5)
        assert done.status == "Succeeded"
    assert watcher.of("dispatched") == [(ACTION, None)]


class WorkBlind:
    """An `EngineHooks` object that wants no work hooks, and notes any that come."""

    observes_lifecycle = False
    observes_work = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare_request(self, request: TaskRequest) -> TaskRequest:
        return request

    def task_outcome(self, request: TaskRequest, outcome: Any) -> None:
        pass

    def notify(self, committed: Any) -> None:
        pass

    def engine_started(self, engine: Engine) -> None:
        self.calls.append("started")

    def engine_stopping(self, engine: Engine) -> None:
        self.calls.append("stopping")

    def batch_committed(self, batch: Any) -> None:
        self.calls.append("commit")

    def outbox_dispatched(self, resource: str, lag_seconds: float | None) -> None:
        self.calls.append("dispatched")

    def timers_fired(self, count: int, lag_seconds: float) -> None:
        self.calls.append("timers")


@bounded
async def test_without_a_plugin_that_watches_work_the_engine_times_nothing() -> None:
    hooks, clock = WorkBlind(), Clock()
    async with make_engine({ACTION: say}, plugins=hooks, clock=clock) as engine:
        await engine.create_flow("f", FLOW)
        await engine.start_execution("f", {}, name="run")
        await eventually(lambda: waiting(engine, "f"), what="the wait step")
        clock.now += 65
        done = await engine.describe_execution("f", "run", wait_seconds=5)
        assert done.status == "Succeeded"
    assert hooks.calls == ["started", "stopping"]


def test_a_plugin_manager_without_work_hooks_does_not_observe_work() -> None:
    class StartsOnly:
        @hookimpl
        def relayflow_engine_started(self, engine: Engine) -> None:
            pass

    assert not plugins_with(StartsOnly()).observes_work
    assert plugins_with(Watcher()).observes_work
