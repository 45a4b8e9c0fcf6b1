"""The engine holds its runtime; its public face is the API's operations; plugins are an interface."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

from relayflow.engine import Engine, Succeeded
from relayflow.engine.hooks import EngineHooks
from relayflow.engine.runtime import Runtime
from relayflow.plugins import PluginManager
from relayflow.store import open_store
from relayflow.testing import bounded, fdl, make_engine, run_to_end

ENGINE_PACKAGE = Path(inspect.getfile(Runtime)).parent

# What users call on an Engine (docs/engine.md, the API, the CLI, the plugins, the tests).
PUBLIC = {
    "accepting",
    "close",
    "create_flow",
    "delete_flow",
    "describe_execution",
    "describe_flow",
    "from_config",
    "get_execution_history",
    "integrations",
    "list_executions",
    "list_flows",
    "read",
    "report_task_failed",
    "report_task_succeeded",
    "start",
    "start_execution",
    "stop_execution",
    "store",
    "update_flow",
    "wait_for_execution",
}
# The groups Engine inherits (issue 14): schedules, published versions and aliases, Express.
PUBLIC |= {
    "create_schedule",
    "describe_schedule",
    "list_schedules",
    "update_schedule",
    "delete_schedule",
    "publish_flow_version",
    "list_flow_versions",
    "delete_flow_version",
    "create_flow_alias",
    "describe_flow_alias",
    "list_flow_aliases",
    "update_flow_alias",
    "delete_flow_alias",
    "start_sync_execution",
}

FLOW = fdl("""
    - type: task
      name: say
      action: test:Say
""")


def test_the_engine_holds_its_runtime_instead_of_being_one():
    assert not issubclass(Engine, Runtime)
    engine = Engine(open_store("memory://"))
    try:
        assert isinstance(engine._runtime, Runtime)
    finally:
        engine.store.close()


# What the runtime does for the operations, which an Engine showed while it was a Runtime.
INTERNAL = {
    "apply",
    "apply_alone",
    "clock",
    "definition_limits",
    "end_waiters",
    "enqueue",
    "fail_execution",
    "flow_for",
    "integration_for",
    "lease_seconds",
    "limits",
    "owner",
    "plugins",
    "poll_seconds",
    "read_state",
    "submit",
}


def test_the_engine_shows_its_operations_and_none_of_the_runtimes_work():
    engine = Engine(open_store("memory://"))
    try:
        public = {name for name in dir(engine) if not name.startswith("_")}
    finally:
        engine.store.close()
    assert public >= PUBLIC
    assert public & INTERNAL == set()


def test_the_plugin_manager_is_what_the_engine_asks_of_its_hooks():
    for name, member in vars(EngineHooks).items():
        if name.startswith("_"):
            continue
        given = getattr(PluginManager, name)
        if isinstance(member, property):
            assert isinstance(given, property), name
            continue
        expected = list(inspect.signature(member).parameters)
        assert list(inspect.signature(given).parameters) == expected, name


def test_the_engine_imports_no_plugin_manager():
    for path in sorted(ENGINE_PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            assert not any(n.startswith("relayflow.plugins") for n in names), path
    code = "import json, sys, relayflow.engine; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert not [m for m in json.loads(done.stdout) if m.startswith("relayflow.plugins")]


def test_every_engine_module_says_what_it_holds():
    for path in sorted(ENGINE_PACKAGE.glob("*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), path


class Recorder:
    """Any object with the `EngineHooks` members will do: here, one that writes them down."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @property
    def observes_lifecycle(self) -> bool:
        return True

    def prepare_request(self, request):
        self.calls.append(("prepare", request.step_name))
        return request

    def task_outcome(self, request, outcome):
        self.calls.append(("outcome", type(outcome).__name__))

    def notify(self, committed):
        for _flow, _name, events in committed:
            for event in events:
                self.calls.append(("event", event.type))

    @property
    def observes_work(self) -> bool:
        return True

    def engine_started(self, engine):
        self.calls.append(("started", type(engine).__name__))

    def engine_stopping(self, engine):
        self.calls.append(("stopping", type(engine).__name__))

    def batch_committed(self, batch):
        self.calls.append(("commit", batch.store))

    def outbox_dispatched(self, resource, lag_seconds):
        self.calls.append(("dispatched", resource))

    def timers_fired(self, count, lag_seconds):
        self.calls.append(("timers", str(count)))


@bounded
async def test_any_object_with_the_hook_methods_serves_as_the_engines_plugins():
    hooks = Recorder()

    async def say(request):
        return Succeeded({"said": 1})

    async with make_engine({"test:Say": say}, plugins=hooks) as engine:
        await engine.create_flow("f", FLOW)
        assert (await run_to_end(engine, "f", {}, "run")).status == "Succeeded"
    assert ("prepare", "say") in hooks.calls and ("outcome", "Succeeded") in hooks.calls
    events = [detail for kind, detail in hooks.calls if kind == "event"]
    assert events[0] == "ExecutionStarted" and events[-1] == "ExecutionSucceeded"
    kinds = [kind for kind, _ in hooks.calls]
    assert hooks.calls[0] == ("started", "Engine") and kinds.count("started") == 1
    # Once, before the close's last commits (handing back leases).
    assert kinds.count("stopping") == 1 and kinds.index("stopping") > kinds.index("outcome")
    assert ("dispatched", "test:Say") in hooks.calls and ("commit", "memory") in hooks.calls


@bounded
async def test_read_inspects_the_store():
    async with make_engine() as engine:
        await engine.create_flow("f", FLOW)
        assert await engine.read(lambda tx: tx.get_flow("f").version) == 1
