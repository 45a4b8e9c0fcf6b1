"""The plugin, registered in a real PluginManager and driven by a real engine run."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import relayflow_myplugin

from relayflow.config import Config, ConfigError
from relayflow.engine import Engine, Integration
from relayflow.plugins import PluginManager
from relayflow.store import open_store

FLOW = """\
version: v1
type: flow
steps:
  - type: pass
    name: prepare
    outputMappings:
      - target: word
        source: $input.word
  - type: task
    name: echo
    action: myplugin:Echo
"""


def manager() -> PluginManager:
    plugins = PluginManager()
    plugins.register(relayflow_myplugin)
    return plugins


async def run_flow(plugins: PluginManager, integrations: list[Integration]) -> Any:
    async with Engine(
        open_store("memory://"), integrations=integrations, plugins=plugins
    ) as engine:
        await engine.create_flow("demo", FLOW)
        await engine.start_execution("demo", {"word": "hello"}, name="run-1")
        return await engine.describe_execution("demo", "run-1", wait_seconds=10)


def test_registration_is_seen_by_the_manager() -> None:
    plugins = manager()
    info = plugins.infos["relayflow_myplugin"]
    assert info.error == ""
    assert info.hooks == ["relayflow_register_integrations", "relayflow_step_entered"]
    spec = plugins.integration_specs()["myplugin"]
    assert spec.config_model is relayflow_myplugin.EchoSettings
    assert info.integrations == ["myplugin"]


def test_a_run_echoes_the_input_and_logs_each_step(caplog: pytest.LogCaptureFixture) -> None:
    plugins = manager()
    integrations = plugins.integrations(Config())
    caplog.set_level(logging.INFO, logger="relayflow_myplugin")
    run = asyncio.run(run_flow(plugins, integrations))
    assert run.status == "Succeeded"
    assert run.output == {"word": "hello"}
    entered = [r.getMessage() for r in caplog.records if r.name == "relayflow_myplugin"]
    assert entered == [
        "demo/run-1: entered step prepare (event 2)",
        "demo/run-1: entered step echo (event 5)",
    ]


def test_the_integration_table_configures_it() -> None:
    plugins = manager()
    config = Config(integrations={"myplugin": {"key": "echoed"}})
    run = asyncio.run(run_flow(plugins, plugins.integrations(config)))
    assert run.output == {"word": "hello", "echoed": {"word": "hello"}}


def test_a_wrong_key_in_the_table_is_one_clear_error() -> None:
    plugins = manager()
    config = Config(integrations={"myplugin": {"kee": "x"}}, source="relayflow.toml")
    expected = r"relayflow.toml: unknown key 'integrations.myplugin.kee'"
    with pytest.raises(ConfigError, match=expected):
        plugins.check_config(config)
