"""Plugins: loading, allow and deny lists, failures, every hook, and the hooks' meta-tests."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from relayflow.cli import main
from relayflow.config import Config, ConfigError, PluginsConfig, load_config
from relayflow.engine import Engine, FunctionIntegration, Succeeded
from relayflow.engine.integration import Integration, TaskOutcome, TaskRequest
from relayflow.plugins import PluginManager, hookimpl
from relayflow.plugins import manager as manager_module
from relayflow.store import open_store
from relayflow.worker.hooks import WorkerPlugins

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("relayflow"))
FLOW = """version: v1
type: flow
steps:
  - type: task
    name: work
    action: test:Work
  - type: wait
    name: rest
    duration: 0
"""


class Recorder:
    """A plugin that records every lifecycle call and adds a header to every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.outcomes: list[TaskOutcome] = []

    @hookimpl
    def relayflow_execution_started(self, execution):
        self.calls.append(("execution_started", execution.status))

    @hookimpl
    def relayflow_execution_finished(self, execution):
        self.calls.append(("execution_finished", execution.status))

    @hookimpl
    def relayflow_step_entered(self, step):
        self.calls.append(("step_entered", step.step_name))

    @hookimpl
    def relayflow_step_exited(self, step):
        self.calls.append(("step_exited", step.step_name))

    @hookimpl
    def relayflow_task_scheduled(self, task):
        self.calls.append(("task_scheduled", f"{task.step_name}#{task.task_id}"))

    @hookimpl
    def relayflow_task_submitted(self, task):
        self.calls.append(("task_submitted", task.step_name))

    @hookimpl
    def relayflow_task_completed(self, task):
        self.calls.append(("task_completed", f"{task.type}#{task.task_id}"))

    @hookimpl
    def relayflow_prepare_task_request(self, request):
        return dataclasses.replace(request, headers={**request.headers, "x-trace": "t-1"})

    @hookimpl
    def relayflow_task_outcome(self, request, outcome):
        self.outcomes.append(outcome)


class Redactor:
    """Runs after the recorder: sees its header and removes a secret from the input."""

    @hookimpl
    def relayflow_prepare_task_request(self, request):
        assert request.headers["x-trace"] == "t-1"
        data = {k: v for k, v in request.input.items() if k != "secret"}
        return dataclasses.replace(request, input=data, headers={**request.headers, "x-b": "2"})


def run_once(manager: PluginManager, integrations: list[Integration], data: dict) -> tuple:
    async def go():
        async with Engine(
            open_store("memory://"), integrations=integrations, plugins=manager, poll_seconds=0.05
        ) as engine:
            await engine.create_flow("f", FLOW)
            await engine.start_execution("f", data, name="run1")
            return await engine.describe_execution("f", "run1", wait_seconds=5)

    return asyncio.run(go())


def test_lifecycle_hooks_request_wrapper_and_outcome_hook():
    seen: list[TaskRequest] = []

    async def work(request: TaskRequest) -> TaskOutcome:
        seen.append(request)
        return Succeeded({"done": True})

    recorder = Recorder()
    manager = PluginManager()
    manager.register(Redactor(), "redactor")  # pluggy calls the last registered first
    manager.register(recorder, "recorder")
    info = run_once(manager, [FunctionIntegration({"test:Work": work})], {"secret": "s", "a": 1})
    assert info.status == "Succeeded"
    assert seen[0].headers == {"x-trace": "t-1", "x-b": "2"}
    assert seen[0].input == {"a": 1}
    assert recorder.outcomes == [Succeeded({"done": True})]
    task_id = int(recorder.calls[2][1].split("#")[1])
    assert recorder.calls == [
        ("execution_started", "Running"),
        ("step_entered", "work"),
        ("task_scheduled", f"work#{task_id}"),
        ("task_completed", f"TaskSucceeded#{task_id}"),
        ("step_exited", "work"),
        ("step_entered", "rest"),
        ("step_exited", "rest"),
        ("execution_finished", "Succeeded"),
    ]


def test_task_submitted_hook():
    from relayflow.engine import Submitted

    async def park(request: TaskRequest) -> TaskOutcome:
        return Submitted({"MessageId": "m"})

    recorder = Recorder()
    manager = PluginManager()
    manager.register(recorder, "recorder")

    async def go():
        async with Engine(
            open_store("memory://"),
            integrations=[FunctionIntegration({"test:Work": park})],
            plugins=manager,
            poll_seconds=0.05,
        ) as engine:
            await engine.create_flow("f", FLOW)
            await engine.start_execution("f", {}, name="run1")
            for _ in range(100):
                if ("task_submitted", "work") in recorder.calls:
                    return
                await asyncio.sleep(0.02)

    asyncio.run(go())
    assert ("task_submitted", "work") in recorder.calls


def test_a_failing_hook_is_logged_and_does_not_stop_the_engine(caplog):
    class Broken:
        @hookimpl
        def relayflow_step_entered(self, step):
            raise RuntimeError("boom")

    async def work(request: TaskRequest) -> TaskOutcome:
        return Succeeded({})

    manager = PluginManager()
    manager.register(Broken(), "broken")
    info = run_once(manager, [FunctionIntegration({"test:Work": work})], {})
    assert info.status == "Succeeded"
    assert "plugin broken failed in relayflow_step_entered" in caplog.text


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ">"


class Echo(Integration):
    name = "echo"
    config_model = EchoSettings

    def __init__(self, settings: EchoSettings) -> None:
        self.settings = settings

    def claims(self, resource: str) -> bool:
        return resource == "echo:Say"

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        return Succeeded({"said": self.settings.prefix + str(request.input.get("text"))})


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = "audit.jsonl"


class Registrar:
    @hookimpl
    def relayflow_register_integrations(self, register):
        register("echo", Echo, EchoSettings)

    @hookimpl
    def relayflow_register_config_models(self, register):
        register("audit", AuditSettings)

    @hookimpl
    def relayflow_register_commands(self, cli):
        @cli.command("hello")
        def hello() -> None:
            """Say hello from a plugin."""
            click.echo("hello from a plugin")


def registrar_manager() -> PluginManager:
    manager = PluginManager()
    manager.register(Registrar(), "registrar")
    return manager


def test_integrations_are_registered_and_configured():
    manager = registrar_manager()
    config = Config(integrations={"echo": {"prefix": "#"}})
    manager.check_config(config)
    (echo,) = manager.integrations(config)
    assert isinstance(echo, Echo) and echo.settings.prefix == "#"
    assert manager.infos["registrar"].integrations == ["echo"]
    assert sorted(manager.infos["registrar"].hooks) == [
        "relayflow_register_commands",
        "relayflow_register_config_models",
        "relayflow_register_integrations",
    ]


def test_bad_integration_and_plugin_tables_name_file_and_key():
    manager = registrar_manager()
    with pytest.raises(ConfigError, match=r"^x.toml: unknown key 'integrations.echo.prefx'$"):
        manager.check_config(Config(integrations={"echo": {"prefx": "#"}}, source="x.toml"))
    with pytest.raises(
        ConfigError,
        match=r"x.toml: \[integrations.nope\] configures no installed "
        r"integration; installed: echo",
    ):
        manager.check_config(Config(integrations={"nope": {}}, source="x.toml"))
    with pytest.raises(ConfigError, match=r"x.toml: audit.path: input should be a valid string"):
        manager.check_config(Config(sections={"audit": {"path": 3}}, source="x.toml"))
    with pytest.raises(
        ConfigError, match=r"unknown table \[audi\]; known: audit, client, engine, "
    ):
        manager.check_config(Config(sections={"audi": {}}, source="x.toml"))
    settings = manager.settings(Config(sections={"audit": {"path": "a.jsonl"}}), "audit")
    assert settings == AuditSettings(path="a.jsonl")


def test_plugin_commands_join_the_command_line(monkeypatch):
    group = click.Group(commands=dict(main.commands))
    registrar_manager().register_commands(group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"


def _fake_entry_points(points):
    def fake(group):
        return [p for p in points if p.group == group]

    return fake


def test_broken_entry_point_is_reported_and_skipped(monkeypatch, tmp_path):
    good = EntryPoint("good", "tests.test_plugins:GOOD_PLUGIN", "relayflow")
    broken = EntryPoint("broken", "no_such_module_anywhere", "relayflow")
    monkeypatch.setattr(manager_module, "entry_points", _fake_entry_points([good, broken]))
    manager = PluginManager.from_config(Config())
    assert manager.infos["broken"].error.startswith("ModuleNotFoundError")
    assert manager.infos["good"].error == ""
    assert manager.infos["good"].integrations == [] and "echo" in manager.integration_specs()


GOOD_PLUGIN = Registrar()


@pytest.mark.parametrize(
    ("env", "plugins", "loaded"),
    [
        ({}, PluginsConfig(), {"a", "b"}),
        ({}, PluginsConfig(load=["a"]), {"a"}),
        ({}, PluginsConfig(disable=["a"]), {"b"}),
        ({"RELAYFLOW_LOAD_PLUGINS": "b"}, PluginsConfig(load=["a"]), {"b"}),
        ({"RELAYFLOW_DISABLE_PLUGINS": "a, b"}, PluginsConfig(), set()),
    ],
)
def test_allow_and_deny_lists(monkeypatch, env, plugins, loaded):
    points = [EntryPoint(n, "tests.test_plugins:GOOD_PLUGIN", "relayflow") for n in ("a", "b")]
    monkeypatch.setattr(manager_module, "entry_points", _fake_entry_points(points))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    manager = PluginManager()
    manager.load_entry_points(Config(plugins=plugins))
    assert set(manager.infos) == loaded


HOOKS_MODULE = """
import json, os
from relayflow.plugins import hookimpl

def _log(kind, name):
    with open(os.environ["HOOK_LOG"], "a") as out:
        out.write(json.dumps([kind, name]) + "\\n")

@hookimpl
def relayflow_execution_started(execution):
    _log("started", execution.name)

@hookimpl
def relayflow_step_entered(step):
    _log("entered", step.step_name)

@hookimpl
def relayflow_execution_finished(execution):
    _log("finished", execution.status)
"""


def test_a_local_hook_module_named_in_toml_sees_an_execution(tmp_path):
    (tmp_path / "my_hooks.py").write_text(HOOKS_MODULE)
    (tmp_path / "broken_hooks.py").write_text("raise ImportError('on purpose')\n")
    (tmp_path / "relayflow.toml").write_text('[plugins]\nmodules = ["my_hooks", "broken_hooks"]\n')
    flow = ROOT / "contrib" / "examples" / "greeting.yaml"
    env = {"HOOK_LOG": str(tmp_path / "hooks.log"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [EXE, "run", str(flow), "--input", '{"names": ["Ada"]}', "--name", "r1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "hooks.log").read_text().splitlines()]
    assert lines[0] == ["started", "r1"] and lines[-1] == ["finished", "Succeeded"]
    assert ["entered", "greetEach"] in lines and ["entered", "compose"] in lines
    listing = subprocess.run(
        [EXE, "plugins", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    infos = {i["name"]: i for i in json.loads(listing.stdout)}
    assert infos["broken_hooks"]["error"] == "ImportError: on purpose"
    assert infos["my_hooks"]["error"] == ""
    assert infos["my_hooks"]["hooks"] == [
        "relayflow_execution_finished",
        "relayflow_execution_started",
        "relayflow_step_entered",
    ]
    table = subprocess.run(
        [EXE, "plugins"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert re.search(r"broken_hooks\s+module.*failed: ImportError: on purpose", table.stdout)


def test_validate_strict_uses_installed_integrations(tmp_path):
    module = tmp_path / "echo_plugin.py"
    module.write_text(
        textwrap.dedent("""
        from relayflow.engine import FunctionIntegration, Succeeded
        from relayflow.plugins import hookimpl

        async def say(request):
            return Succeeded({})

        def make(settings):
            integration = FunctionIntegration({"echo:Say": say}, name="echo")
            integration.patterns = frozenset({"requestResponse"})
            return integration

        @hookimpl
        def relayflow_register_integrations(register):
            register("echo", make)
    """)
    )
    (tmp_path / "relayflow.toml").write_text('[plugins]\nmodules = ["echo_plugin"]\n')
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: a\n"
        "    action: echo:Say\n  - type: task\n    name: b\n    action: echo:Say\n"
        "    pattern: waitForCallback\n  - type: task\n    name: c\n"
        "    action: other:Thing\n"
    )
    done = subprocess.run(
        [EXE, "validate", "--strict", str(flow)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        f"{flow}:10: steps[1].pattern: integration echo does not support pattern "
        "waitForCallback; it supports requestResponse"
    ) in done.stderr
    assert (
        f"{flow}:13: steps[2].action: no installed integration serves other:Thing (installed: "
    ) in done.stderr
    assert "steps[0]" not in done.stderr
    plain = subprocess.run(
        [EXE, "validate", str(flow)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 0


def test_config_environment_overrides_and_errors(tmp_path, monkeypatch):
    path = tmp_path / "relayflow.toml"
    path.write_text('[engine]\nstore = "memory://"\nmax_events = 100\n')
    monkeypatch.setenv("RELAYFLOW_ENGINE__MAX_EVENTS", "200")
    config = load_config(str(path))
    assert (config.engine.store, config.engine.max_events) == ("memory://", 200)
    monkeypatch.setenv("RELAYFLOW_ENGINE__MAX_EVENTS", "5")
    with pytest.raises(
        ConfigError, match=r"\(or \$RELAYFLOW_ENGINE__MAX_EVENTS\): engine.max_events"
    ):
        load_config(str(path))
    monkeypatch.delenv("RELAYFLOW_ENGINE__MAX_EVENTS")
    path.write_text("[engine]\nstor = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'engine.stor'$"):
        load_config(str(path))
    path.write_text("[engine\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(path))
    monkeypatch.setenv("RELAYFLOW_CONFIG", str(path))
    path.write_text('[engine]\nstore = "sqlite:///x.db"\n')
    assert load_config(None).engine.store == "sqlite:///x.db"


def test_config_show_redacts_secrets(tmp_path):
    path = tmp_path / "relayflow.toml"
    path.write_text('[engine]\nstore = "memory://"\ntoken_secret = "0123456789abcdefXYZ"\n')
    result = CliRunner().invoke(main, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert 'token_secret = "***"' in result.stdout
    assert "0123456789abcdefXYZ" not in result.stdout
    assert 'store = "memory://"' in result.stdout
    data = json.loads(
        CliRunner().invoke(main, ["config", "show", "--config", str(path), "--json"]).stdout
    )
    assert data["engine"]["token_secret"] == "***"


def test_configure_hook_gets_the_checked_configuration():
    seen = []

    class Configured:
        @hookimpl
        def relayflow_configure(self, config, plugins):
            seen.append(plugins.settings(config, "audit"))

    manager = registrar_manager()
    manager.register(Configured(), "configured")
    config = Config(sections={"audit": {"path": "x.jsonl"}})
    manager.check_config(config)
    manager.configure(config)
    assert seen == [AuditSettings(path="x.jsonl")]


def test_misspelt_hooks_and_async_request_hooks_are_refused(caplog):
    class Misspelt:
        @hookimpl
        def relayflow_step_enterd(self, step):
            pass

    class AsyncPrepare:
        @hookimpl
        async def relayflow_prepare_task_request(self, request):
            return None

    manager = PluginManager()
    manager.register(Misspelt(), "misspelt")
    assert "relayflow_step_enterd" in manager.infos["misspelt"].error
    assert "\n" not in manager.infos["misspelt"].error
    manager.register(AsyncPrepare(), "async")
    request = TaskRequest("f", "e", "s", 1, "t", "x:Y", "requestResponse", {"a": 1}, None, None, 0)
    assert manager.prepare_request(request) is request
    assert "must not be async" in caplog.text


def test_unparsable_list_in_the_environment_is_one_line(monkeypatch):
    monkeypatch.setenv("RELAYFLOW_PLUGINS__DISABLE", "fc")
    with pytest.raises(ConfigError) as err:
        load_config(None)
    assert "RELAYFLOW_PLUGINS__DISABLE" in str(err.value) or "plugins" in str(err.value)
    assert "\n" not in str(err.value)


def test_local_workers_hook_runs_workers_beside_relayflow_run(tmp_path):
    module = tmp_path / "local_workers.py"
    module.write_text(
        textwrap.dedent("""
        from pathlib import Path
        from relayflow.plugins import hookimpl

        LOG = Path("workers.log")

        @hookimpl
        def relayflow_start_local_workers(workers, engine, integrations):
            LOG.write_text(f"started {workers} running={engine.accepting}\\n")
            return lambda: LOG.write_text(LOG.read_text() + "stopped\\n")
    """)
    )
    (tmp_path / "relayflow.toml").write_text('[plugins]\nmodules = ["local_workers"]\n')
    flow = tmp_path / "flow.yaml"
    flow.write_text("version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: p\n")
    env = {"PATH": "/usr/bin:/bin", "RELAYFLOW_DISABLE_PLUGINS": "mns"}
    done = subprocess.run(
        [EXE, "run", str(flow), "--worker", "jobs=handlers:work"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "workers.log").read_text() == (
        "started [('jobs', 'handlers:work')] running=True\nstopped\n"
    )
    bad = subprocess.run(
        [EXE, "run", str(flow), "--worker", "jobs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode == 2 and "must look like QUEUE=module:function" in bad.stderr
    (tmp_path / "relayflow.toml").write_text("")
    none = subprocess.run(
        [EXE, "run", str(flow), "--worker", "jobs=handlers:work"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert none.returncode == 2 and "NoWorkerRuntime" in none.stderr


def test_every_hook_is_documented_and_tested():
    """A hook without a section in docs/plugins.md or a test is a failure (as datasette does)."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    tests = "\n".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_plugins.py"
    )
    this = Path(__file__).read_text().split("def test_every_hook_is_documented_and_tested")[0]
    for hook in [*PluginManager().hook_names(), *WorkerPlugins().hook_names()]:
        assert f"### {hook}\n" in docs, f"{hook} has no section in docs/plugins.md"
        assert f"def {hook}(" in this or f"def {hook}(" in tests, f"{hook} has no test"


def test_a_refused_secret_is_not_quoted_in_the_error(tmp_path):
    path = tmp_path / "relayflow.toml"
    path.write_text('[engine]\nstore = "memory://"\ntoken_secret = "short-one"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert "engine.token_secret" in message and "got ***" in message
    assert "short-one" not in message
    path.write_text("[engine]\nstore = 5\n")
    with pytest.raises(ConfigError, match=r"engine\.store: .*got 5"):
        load_config(str(path))


def test_config_show_writes_tuples_as_toml_arrays():
    from relayflow.config import to_toml

    text = to_toml({"integrations": {"http": {"allowed_hosts": ("a.example", "b.example")}}})
    assert 'allowed_hosts = ["a.example", "b.example"]' in text


def test_closing_the_engine_closes_every_integration():
    closed: list[str] = []

    class Holding(Integration):
        def __init__(self, name: str, fails: bool = False) -> None:
            self.name, self.fails = name, fails

        def claims(self, resource: str) -> bool:
            return False

        async def invoke(self, request: TaskRequest) -> TaskOutcome:
            raise AssertionError("never called")

        async def aclose(self) -> None:
            closed.append(self.name)
            if self.fails:
                raise RuntimeError("cannot close")

    async def main() -> None:
        engine = Engine(
            open_store("memory://"),
            integrations=[Holding("first", fails=True), Holding("second")],
        )
        await engine.start()
        await engine.close()

    asyncio.run(main())
    assert closed == ["first", "second"]  # one failing to close does not stop the others
