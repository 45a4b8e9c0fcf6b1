"""The `[otel]` table, the `OTEL_*` variables under it, and inertness when tracing is off."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import relayflow_otel
from relayflow.config import Config, ConfigError
from relayflow.plugins import PluginManager
from relayflow_otel.config import OtelSettings, grpc_available, resolve

_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_EXPORTER",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    """A plugin manager holding only relayflow-otel; its tracer (if any) closed afterwards."""
    plugins = PluginManager()
    plugins.register(relayflow_otel, name="otel")
    yield plugins
    for plugin in plugins._pm.get_plugins():
        close = getattr(plugin, "close", None)
        if callable(close) and plugin is not relayflow_otel:
            close()


def _check(table: dict[str, object]) -> str:
    plugins = PluginManager()
    plugins.register(relayflow_otel, name="otel")
    with pytest.raises(ConfigError) as caught:
        plugins.check_config(Config(source="relayflow.toml", sections={"otel": table}))
    return str(caught.value)


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"sampling_ratio": 1.5}, "otel.sampling_ratio"),
        ({"endpoint": "ftp://collector"}, "otel.endpoint"),
        ({"endpnt": "http://collector:4318"}, "endpnt"),
        ({"timeout_seconds": 0}, "otel.timeout_seconds"),
        ({"headers": "x-key: 1"}, "otel.headers"),
        ({"protocol": "thrift"}, "otel.protocol"),
    ],
)
def test_a_bad_table_is_one_sentence_naming_the_key(table: dict[str, object], names: str) -> None:
    message = _check(table)
    _one_sentence(message)
    assert message.startswith("relayflow.toml") and names in message


@pytest.mark.skipif(grpc_available(), reason="the gRPC exporter is installed here")
def test_grpc_without_its_exporter_says_what_to_install() -> None:
    message = _check({"protocol": "grpc"})
    _one_sentence(message)
    assert "opentelemetry-exporter-otlp-proto-grpc" in message


def test_the_environment_fills_what_the_file_leaves_out() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    }
    settings = resolve(OtelSettings(), env)
    assert settings.enabled
    assert settings.traces_url == "http://collector:4318/v1/traces"
    assert settings.service_name == "from-env"
    assert settings.resource_attributes == {"deployment.environment": "prod", "team": "a b"}
    assert settings.sampling_ratio == 0.25
    assert settings.headers == {"api-key": "secret"}
    assert settings.timeout_seconds == 2.5
    # The signal's own variable is the full URL, taken as it is.
    full = resolve(OtelSettings(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:1/t"})
    assert full.traces_url == "http://c:1/t"


def test_the_file_wins_over_the_environment() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "team=env,region=eu",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_SDK_DISABLED": "true",
    }
    table = OtelSettings(
        enabled=True,
        endpoint="http://file:4318",
        service_name="from-file",
        resource_attributes={"team": "file"},
        sampling_ratio=1.0,
    )
    settings = resolve(table, env)
    assert settings.enabled  # enabled = true in the file beats OTEL_SDK_DISABLED
    assert settings.traces_url == "http://file:4318/v1/traces"
    assert settings.service_name == "from-file"
    assert settings.resource_attributes == {"team": "file", "region": "eu"}
    assert settings.sampling_ratio == 1.0


def test_enabled_by_default_only_when_an_endpoint_is_known() -> None:
    assert not resolve(OtelSettings(), {}).enabled
    assert resolve(OtelSettings(endpoint="http://c:4318"), {}).enabled
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert not resolve(OtelSettings(), off).enabled
    assert not resolve(OtelSettings(enabled=False, endpoint="http://c:4318"), {}).enabled
    none = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    assert not resolve(OtelSettings(), none).enabled
    # Off, the other variables are not read: a wrong one does not matter.
    assert not resolve(OtelSettings(enabled=False), {"OTEL_TRACES_SAMPLER_ARG": "x"}).enabled


def test_the_sampler_variable_fixes_the_ratio_or_defers_to_its_argument() -> None:
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert resolve(OtelSettings(), {**on, "OTEL_TRACES_SAMPLER": "always_off"}).sampling_ratio == 0
    ratio = {
        **on,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ".5",
    }
    assert resolve(OtelSettings(), ratio).sampling_ratio == 0.5
    assert (
        resolve(
            OtelSettings(sampling_ratio=1), {**on, "OTEL_TRACES_SAMPLER": "always_off"}
        ).sampling_ratio
        == 1
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER_ARG": "nan"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "justakey"}, "OTEL_RESOURCE_ATTRIBUTES"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
    ],
)
def test_a_bad_variable_is_one_sentence_naming_it(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(OtelSettings(), env)
    _one_sentence(str(caught.value))
    assert str(caught.value).startswith(f"${variable}:")


def test_a_bad_header_is_named_and_its_value_never_quoted() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(OtelSettings(endpoint="http://c:4318", headers={"x-key": "hush\nhush"}), {})
    message = str(caught.value)
    assert message.startswith("[otel] headers: the value of 'x-key'") and "hush" not in message


def test_enabled_without_an_endpoint_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"no endpoint is known"):
        resolve(OtelSettings(enabled=True), {})


def _tracing_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("OtelBatch")]


def test_off_it_registers_no_hook_and_starts_no_thread(manager: PluginManager) -> None:
    before = _tracing_threads()
    manager.configure(Config(sections={}))
    assert set(manager.infos) == {"otel"}
    assert manager.infos["otel"].hooks == [
        "relayflow_configure",
        "relayflow_register_config_models",
    ]
    assert not manager.observes_lifecycle
    assert _tracing_threads() == before


def test_a_bad_variable_leaves_it_off_and_logs_one_sentence(
    manager: PluginManager, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "2")
    manager.configure(Config(sections={}))
    assert set(manager.infos) == {"otel"}
    (record,) = [r for r in caplog.records if r.name == "relayflow.otel"]
    assert record.getMessage().startswith("relayflow-otel is off: $OTEL_TRACES_SAMPLER_ARG")


def test_on_it_registers_the_engine_hooks(
    manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    manager.configure(Config(sections={}))
    hooks = manager.infos[relayflow_otel.ENGINE_PLUGIN_NAME].hooks
    assert "relayflow_prepare_task_request" in hooks
    assert "relayflow_engine_stopping" in hooks
    assert manager.observes_lifecycle


def test_off_it_does_not_even_import_the_sdk() -> None:
    # A fresh interpreter, as every relayflow command starts: loading and configuring the
    # plugin with tracing off imports nothing of OpenTelemetry.
    program = (
        "import sys\n"
        "import relayflow_otel\n"
        "from relayflow.config import Config\n"
        "from relayflow.plugins import PluginManager\n"
        "plugins = PluginManager()\n"
        "plugins.register(relayflow_otel, name='otel')\n"
        "plugins.configure(Config(sections={}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
