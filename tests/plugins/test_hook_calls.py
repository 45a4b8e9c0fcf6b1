"""How hooks are called: pluggy's order at every call site, monitoring, wrappers, isolation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator
from typing import Any

import click
import pytest
from pydantic import BaseModel

from relayflow.config import Config
from relayflow.engine.integration import FunctionIntegration, Integration, Succeeded, TaskRequest
from relayflow.engine.model import HistoryEvent
from relayflow.plugins import PluginManager, hookimpl

REQUEST = TaskRequest("f", "e", "s", 1, "t", "x:Y", "requestResponse", {"a": 1}, None, None, 0)
STEP_ENTERED = HistoryEvent(2, 0, "StepEntered", "s", 0.0, {"input": {}})


class Settings(BaseModel):
    pass


def calling_plugin(label: str, log: list[tuple[str, str]], **marks: bool) -> object:
    """A plugin implementing every hook, each call logged as (hook, label)."""

    class Plugin:
        @hookimpl(**marks)
        def relayflow_configure(self, config: Config) -> None:
            log.append(("configure", label))

        @hookimpl(**marks)
        def relayflow_register_integrations(self, register: Any) -> None:
            log.append(("register_integrations", label))
            register(label, lambda settings: FunctionIntegration({}, label))

        @hookimpl(**marks)
        def relayflow_register_config_models(self, register: Any) -> None:
            log.append(("register_config_models", label))
            register(label, Settings)

        @hookimpl(**marks)
        def relayflow_register_commands(self, cli: click.Group) -> None:
            log.append(("register_commands", label))

        @hookimpl(**marks)
        def relayflow_prepare_task_request(self, request: TaskRequest) -> TaskRequest:
            log.append(("prepare_task_request", label))
            seen = request.headers.get("seen", "")
            return dataclasses.replace(request, headers={"seen": seen + label})

        @hookimpl(**marks)
        def relayflow_task_outcome(self, request: TaskRequest, outcome: Any) -> None:
            log.append(("task_outcome", label))

        @hookimpl(**marks)
        def relayflow_start_local_workers(self, workers: Any, engine: Any, integrations: Any):
            log.append(("start_local_workers", label))
            return lambda: None

        @hookimpl(**marks)
        def relayflow_step_entered(self, step: Any) -> None:
            log.append(("step_entered", label))

    return Plugin()


def call_every_hook(manager: PluginManager) -> TaskRequest:
    manager.configure(Config())
    manager.integration_specs()
    manager.config_models()
    manager.register_commands(click.Group())
    request = manager.prepare_request(REQUEST)
    manager.task_outcome(request, Succeeded({}))
    manager.start_local_workers([], None, [])  # type: ignore[arg-type]
    manager.notify([("f", "e", [STEP_ENTERED])])
    return request


def test_every_call_site_follows_pluggys_order():
    log: list[tuple[str, str]] = []
    manager = PluginManager()
    manager.register(calling_plugin("a", log), "a")
    manager.register(calling_plugin("b", log, tryfirst=True), "b")
    manager.register(calling_plugin("c", log, trylast=True), "c")
    manager.register(calling_plugin("d", log), "d")
    request = call_every_hook(manager)
    order = ["b", "d", "a", "c"]  # last registered first; tryfirst and trylast move a plugin
    hooks = list(dict.fromkeys(hook for hook, _ in log))
    assert len(hooks) == 8
    for hook in hooks:
        assert [label for h, label in log if h == hook] == order, hook
        pluggy_order = manager.pluggy_manager.hook.__dict__[f"relayflow_{hook}"].get_hookimpls()
        assert [impl.plugin_name for impl in reversed(pluggy_order)] == order
    assert request.headers == {"seen": "bdac"}  # each plugin saw the one before it
    # The engine asks integrations in the same order.
    assert list(manager.integration_specs()) == order
    assert [i.name for i in manager.integrations(Config())] == order


def test_hook_call_monitoring_sees_every_call():
    log: list[tuple[str, str]] = []
    manager = PluginManager()
    manager.register(calling_plugin("a", log), "a")
    manager.register(calling_plugin("b", log), "b")
    seen: list[tuple[str, list[str], list[str]]] = []

    def before(hook_name: str, impls: Any, kwargs: Any) -> None:
        seen.append((hook_name, [i.plugin_name for i in impls], sorted(kwargs)))

    undo = manager.pluggy_manager.add_hookcall_monitoring(before, lambda *args: None)
    try:
        call_every_hook(manager)
    finally:
        undo()
    assert seen == [
        ("relayflow_configure", ["b"], ["config", "plugins"]),
        ("relayflow_configure", ["a"], ["config", "plugins"]),
        ("relayflow_register_integrations", ["b"], ["register"]),
        ("relayflow_register_integrations", ["a"], ["register"]),
        ("relayflow_register_config_models", ["b"], ["register"]),
        ("relayflow_register_config_models", ["a"], ["register"]),
        ("relayflow_register_commands", ["b"], ["cli"]),
        ("relayflow_register_commands", ["a"], ["cli"]),
        ("relayflow_prepare_task_request", ["b"], ["request"]),
        ("relayflow_prepare_task_request", ["a"], ["request"]),
        ("relayflow_task_outcome", ["b"], ["outcome", "request"]),
        ("relayflow_task_outcome", ["a"], ["outcome", "request"]),
        # one pluggy call: pluggy lists implementations in reverse call order
        ("relayflow_start_local_workers", ["a", "b"], ["engine", "integrations", "workers"]),
        ("relayflow_step_entered", ["b"], ["step"]),
        ("relayflow_step_entered", ["a"], ["step"]),
    ]


def test_tracing_sees_hook_calls():
    manager = PluginManager()
    manager.register(calling_plugin("a", []), "a")
    lines: list[str] = []
    manager.pluggy_manager.trace.root.setwriter(lines.append)
    undo = manager.pluggy_manager.enable_tracing()
    try:
        manager.notify([("f", "e", [STEP_ENTERED])])
    finally:
        undo()
        manager.pluggy_manager.trace.root.setwriter(None)
    assert any("relayflow_step_entered" in line for line in lines)


def test_a_wrapper_on_an_isolated_hook_is_refused_at_registration():
    class Wrapping:
        @hookimpl(wrapper=True)
        def relayflow_prepare_task_request(self, request: TaskRequest) -> Generator[None, Any, Any]:
            result = yield
            return result

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def relayflow_step_entered(self, step: Any) -> Generator[None, Any, None]:
            yield

    manager = PluginManager()
    manager.register(Wrapping(), "wrapping")
    manager.register(OldStyle(), "old")
    assert manager.infos["wrapping"].error == (
        "TypeError: relayflow_prepare_task_request cannot be a wrapper (wrapper=True or "
        "hookwrapper=True): relayflow calls each plugin's implementation of it on its own"
    )
    assert manager.infos["old"].error.startswith("TypeError: relayflow_step_entered cannot be")
    assert manager.modules() == []  # neither stays registered
    assert manager.prepare_request(REQUEST) is REQUEST  # not a generator
    assert not manager.observes_lifecycle


def test_wrappers_work_on_the_hook_pluggy_calls():
    calls: list[str] = []

    class Workers:
        @hookimpl
        def relayflow_start_local_workers(self, workers: Any, engine: Any, integrations: Any):
            calls.append("start")
            return lambda: calls.append("stop")

    class Timing:
        @hookimpl(wrapper=True)
        def relayflow_start_local_workers(self, workers: Any) -> Generator[None, Any, Any]:
            calls.append("before")
            stoppers = yield
            calls.append(f"after {len(stoppers)}")
            return [*stoppers, lambda: calls.append("stop timing")]

    class Old:
        @hookimpl(hookwrapper=True)
        def relayflow_start_local_workers(self) -> Generator[None, Any, None]:
            calls.append("old before")
            yield
            calls.append("old after")

    manager = PluginManager()
    for name, plugin in [("workers", Workers()), ("timing", Timing()), ("old", Old())]:
        manager.register(plugin, name)
        assert manager.infos[name].error == ""
    stoppers = manager.start_local_workers([("q", "m:f")], None, [])  # type: ignore[arg-type]
    for stop in stoppers:
        stop()
    assert calls == [
        "old before",
        "before",
        "start",
        "after 1",
        "old after",
        "stop",
        "stop timing",
    ]


def test_one_failing_plugin_does_not_silence_the_others(caplog):
    log: list[tuple[str, str]] = []

    class Failing:
        @hookimpl(tryfirst=True)
        def relayflow_prepare_task_request(self, request: TaskRequest) -> TaskRequest:
            raise RuntimeError("cannot prepare")

        @hookimpl(tryfirst=True)
        def relayflow_step_entered(self, step: Any) -> None:
            raise RuntimeError("cannot watch")

        @hookimpl(tryfirst=True)
        def relayflow_register_integrations(self, register: Any) -> None:
            register("half", lambda settings: FunctionIntegration({}, "half"))
            raise RuntimeError("cannot register")

    manager = PluginManager()
    manager.register(calling_plugin("a", log), "a")
    manager.register(Failing(), "failing")
    with caplog.at_level(logging.WARNING, "relayflow.plugins"):
        request = manager.prepare_request(REQUEST)
        manager.notify([("f", "e", [STEP_ENTERED])])
        specs = manager.integration_specs()
    assert request.headers == {"seen": "a"}
    assert ("step_entered", "a") in log
    assert list(specs) == ["half", "a"]  # what it registered before failing stays
    assert manager.infos["failing"].error == "RuntimeError: cannot register"
    assert "plugin failing failed in relayflow_prepare_task_request" in caplog.text
    assert "plugin failing failed in relayflow_step_entered" in caplog.text


def test_the_same_integration_name_twice_keeps_the_first_called(caplog):
    class First(Integration):
        def claims(self, resource: str) -> bool:
            return False

        async def invoke(self, request: TaskRequest) -> Any:
            raise AssertionError

    def plugin(factory: Any) -> object:
        class Registering:
            @hookimpl
            def relayflow_register_integrations(self, register: Any) -> None:
                register("same", factory)

        return Registering()

    manager = PluginManager()
    manager.register(plugin(lambda s: FunctionIntegration({})), "early")
    manager.register(plugin(lambda s: First()), "late")
    with caplog.at_level(logging.WARNING, "relayflow.plugins"):
        specs = manager.integration_specs()
    assert specs["same"].plugin == "late"
    assert manager.infos["late"].integrations == ["same"]
    assert manager.infos["early"].integrations == []
    assert "plugin early registers the integration same again; late's is used" in caplog.text


@pytest.mark.parametrize("removed", ["IntegrationFactory", "INTEGRATION_DRIVERS"])
def test_one_way_in_for_integrations(removed):
    from relayflow.plugins import hookspecs
    from relayflow.plugins import manager as manager_module

    assert not hasattr(hookspecs, removed) and not hasattr(manager_module, removed)
