"""The README's examples stay true: its table validates, its messages are the code's, its
trace-id recipe finds the trace the engine exported."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver

import relayflow_otel
from relayflow.config import Config, ConfigError
from relayflow.plugins import PluginManager
from relayflow.testing import bounded, fdl, make_engine
from relayflow_otel import enable
from relayflow_otel.config import OtelSettings, resolve

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[str]:
    return [text for info, text in BLOCKS if info == kind]


def test_the_readme_table_validates_and_turns_tracing_on() -> None:
    (text,) = blocks("toml")
    table = tomllib.loads(text)["otel"]
    settings = resolve(OtelSettings.model_validate(table), {})
    assert settings.enabled and settings.traces_url == "http://collector:4318/v1/traces"
    assert settings.resource_attributes == {"deployment.environment": "prod"}


def test_the_readme_lists_every_key_of_the_table() -> None:
    for key in OtelSettings.model_fields:
        assert f"| `{key}` |" in README, key


def test_the_readme_error_sentences_are_the_ones_given() -> None:
    first, second = blocks("text")[0].strip().splitlines()
    for table, expected in (({"sampling_ratio": 1.5}, first), ({"protocol": "grpc"}, second)):
        plugins = PluginManager()
        plugins.register(relayflow_otel, name="otel")
        if "grpc" in table and relayflow_otel.config.grpc_available():
            continue
        with pytest.raises(ConfigError) as caught:
            plugins.check_config(Config(source="relayflow.toml", sections={"otel": table}))
        assert str(caught.value) == expected
    logged = blocks("text")[1].strip().removeprefix("ERROR relayflow.otel relayflow-otel is off: ")
    with pytest.raises(ConfigError) as caught:
        resolve(OtelSettings(endpoint="http://c:4318"), {"OTEL_TRACES_SAMPLER_ARG": "2"})
    assert str(caught.value) == logged


@bounded(seconds=20)
async def test_the_trace_id_recipe_finds_the_exported_trace(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    (recipe,) = blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(recipe, "README.md", "exec"), namespace)
    plugins = PluginManager()
    tracer = enable(resolve(OtelSettings(endpoint=otlp.endpoint), {}), plugins)
    try:
        async with make_engine(store=f"sqlite:///{tmp_path / 's.db'}", plugins=plugins) as engine:
            await engine.create_flow("one", fdl("- type: pass\n  name: only"))
            await engine.start_execution("one", {}, name="r-1")
            await engine.describe_execution("one", "r-1", wait_seconds=10)
            expected = await namespace["trace_of"](engine, "one", "r-1")
    finally:
        tracer.close()
    spans = otlp.wait_for_spans(2)
    assert {span["trace_id"] for span in spans} == {expected}
