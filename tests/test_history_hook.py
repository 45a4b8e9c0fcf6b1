"""`relayflow_history_committed`: a whole transaction's history events in one call.

A real engine (SQLite) runs executions; the hook must see every event the history holds,
exactly once, in EventId order per execution, after the lifecycle hooks of the same
transaction; a plugin that raises beside it changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from relayflow.engine import Failed, Succeeded, TaskRequest
from relayflow.plugins import CommittedHistory, PluginManager, StepEvent, hookimpl
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import history

ACTION = "test:Say"
FLOW = fdl(f"""
- type: task
  name: one
  action: {ACTION}
- type: pass
  name: two
- type: task
  name: three
  action: {ACTION}
""")


class Recorder:
    """Keeps every call, in order: the batches whole, the step hooks by their event id."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    @hookimpl
    def relayflow_step_entered(self, step: StepEvent) -> None:
        self.calls.append(("entered", (step.execution_name, step.event.event_id)))

    @hookimpl
    def relayflow_history_committed(self, history: CommittedHistory) -> None:
        self.calls.append(("batch", history))


class Failing:
    @hookimpl
    def relayflow_history_committed(self, history: CommittedHistory) -> None:
        raise RuntimeError("broken plugin")


async def say(request: TaskRequest) -> Succeeded:
    return Succeeded({"step": request.step_name})


def seen_by_batch_hook(recorder: Recorder) -> dict[str, list[tuple[int, str]]]:
    """(EventId, type) of every event the batch hook saw, by execution."""
    seen: dict[str, list[tuple[int, str]]] = {}
    for kind, value in recorder.calls:
        if kind == "batch":
            assert isinstance(value, CommittedHistory)
            for flow, execution, event in value.events():
                assert flow == "f"
                seen.setdefault(execution, []).append((event.event_id, event.type))
    return seen


@bounded(seconds=30)
async def test_every_event_reaches_the_batch_hook_once_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    manager = PluginManager()
    manager.register(Failing(), "failing")
    manager.register(recorder, "recorder")
    engine = make_engine({ACTION: say}, store=f"sqlite:///{tmp_path / 'rf.db'}", plugins=manager)
    names = [f"run{i}" for i in range(20)]
    async with engine:
        await engine.create_flow("f", FLOW)
        for name in names:
            await engine.start_execution("f", {}, name=name)
        for name in names:
            done = await engine.describe_execution("f", name, wait_seconds=10)
            assert done.status == "Succeeded"

        async def all_seen() -> bool:
            seen = seen_by_batch_hook(recorder)
            for name in names:
                if len(seen.get(name, [])) != len(await history(engine, "f", name)):
                    return False
            return True

        await eventually(all_seen, what="every event in a batch")
        seen = seen_by_batch_hook(recorder)
        for name in names:
            recorded = [(e.event_id, e.type) for e in await history(engine, "f", name)]
            assert seen[name] == recorded  # all of them, once, in order, every type
    # Some transaction carried the events of several executions (they ran side by side).
    batches = [v for k, v in recorder.calls if k == "batch"]
    assert any(len(b.executions) > 1 for b in batches)  # type: ignore[attr-defined]
    # Within a transaction, the lifecycle hooks come first: each StepEntered's own call is
    # recorded before the batch that holds it.
    for index, (kind, value) in enumerate(recorder.calls):
        if kind != "batch":
            continue
        before = {v for k, v in recorder.calls[:index] if k == "entered"}
        for _flow, name, event in value.events():  # type: ignore[attr-defined]
            if event.type == "StepEntered":
                assert (name, event.event_id) in before


def test_a_manager_with_only_the_batch_hook_observes_lifecycle() -> None:
    manager = PluginManager()
    assert not manager.observes_lifecycle
    manager.register(Recorder(), "recorder")
    assert manager.observes_lifecycle


RETRIED = fdl(f"""
- type: task
  name: flaky
  action: {ACTION}
  retry:
    - errors: [Try.Again]
      intervalSeconds: 1
      maxAttempts: 2
""")


class Stamper:
    """Adds a header in place, as relayflow-otel does, and returns None."""

    def __init__(self) -> None:
        self.fresh: list[bool] = []

    @hookimpl
    def relayflow_prepare_task_request(self, request: TaskRequest) -> None:
        self.fresh.append("x-seen" not in request.headers)  # each attempt: a dict of its own
        request.headers["x-seen"] = str(request.attempt)


@bounded(seconds=30)
async def test_a_header_set_in_place_reaches_the_integration_and_no_other_attempt(
    tmp_path: Path,
) -> None:
    seen: list[dict[str, str]] = []

    async def flaky(request: TaskRequest) -> Succeeded | Failed:
        seen.append(dict(request.headers))
        if len(seen) == 1:
            return Failed("Try.Again", "the first attempt fails")
        return Succeeded({})

    manager = PluginManager()
    stamper = Stamper()
    manager.register(stamper, "stamper")
    engine = make_engine({ACTION: flaky}, store=f"sqlite:///{tmp_path / 'rf.db'}", plugins=manager)
    async with engine:
        await engine.create_flow("f", RETRIED)
        await engine.start_execution("f", {}, name="run")
        done = await engine.describe_execution("f", "run", wait_seconds=15)
        assert done.status == "Succeeded"
    assert seen == [{"x-seen": "0"}, {"x-seen": "1"}]
    assert stamper.fresh == [True, True]
