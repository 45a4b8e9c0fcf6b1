"""A plugin integration can serve a resourceArn service of its own (`acs:<service>:...`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.config import Config
from relayflow.engine import Engine
from relayflow.engine.integration import Integration, Succeeded, TaskOutcome, TaskRequest
from relayflow.fdl import DefinitionError, load_flow
from relayflow.fdl.resources import resource_services, unregister_resource_service
from relayflow.plugins import IntegrationRegister, PluginManager, hookimpl
from relayflow.store import open_store
from relayflow.testing import bounded, fdl, run_to_end

FLOW = fdl("""
- type: task
  name: fetch
  resourceArn: acs:oss:cn-hangzhou:123:buckets/photos/objects/cat.jpg
""")


class Oss(Integration):
    """Serves every `acs:oss` resource by echoing what it was asked for."""

    name = "oss"

    def __init__(self, settings: object = None) -> None:
        pass

    def claims(self, resource: str) -> bool:
        return resource.startswith("acs:oss:")

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        return Succeeded({"fetched": request.resource.rsplit(":", 1)[1]})


class OssPlugin:
    @hookimpl
    def relayflow_register_integrations(self, register: IntegrationRegister) -> None:
        register("oss", Oss, services=["oss"])


@pytest.fixture
def forget_oss() -> Iterator[None]:
    yield
    unregister_resource_service("oss")


def test_a_service_nothing_serves_is_refused_naming_it():
    with pytest.raises(DefinitionError) as info:
        load_flow(FLOW)
    (problem,) = info.value.problems
    assert problem.path == ("steps", 0, "resourceArn")
    assert problem.message.startswith(
        "resourceArn service 'oss' is not one relayflow knows: no installed integration serves "
        "acs:oss (known: fc, fnf, mns)"
    )


@bounded
async def test_an_integration_that_registers_the_service_runs_it(forget_oss):
    plugins = PluginManager()
    plugins.register(OssPlugin(), "oss-plugin")
    integrations = plugins.integrations(Config())
    assert resource_services()["oss"] == "oss"
    flow = load_flow(FLOW)
    arn = flow.steps[0].resource_arn  # type: ignore[attr-defined]
    assert (arn.service, arn.kind, arn.name) == (
        "oss",
        "resource",
        "buckets/photos/objects/cat.jpg",
    )
    assert (arn.region, arn.account) == ("cn-hangzhou", "123")
    async with Engine(open_store("memory://"), integrations=integrations, plugins=plugins) as eng:
        await eng.create_flow("photos", FLOW)
        info = await run_to_end(eng, "photos", {}, "one")
    assert (info.status, info.output) == (
        "Succeeded",
        {"fetched": "buckets/photos/objects/cat.jpg"},
    )


def test_a_registered_service_still_checks_the_shape(forget_oss):
    plugins = PluginManager()
    plugins.register(OssPlugin(), "oss-plugin")
    plugins.integration_specs()
    with pytest.raises(DefinitionError, match=r"expected acs:oss:\{region\}:\{account\}:"):
        load_flow(fdl("- {type: task, name: t, resourceArn: 'acs:oss:::'}"))


@pytest.mark.parametrize("service", ["Bad Name", ""])
def test_a_bad_service_name_fails_the_plugin(service: Any):
    class Bad:
        @hookimpl
        def relayflow_register_integrations(self, register: IntegrationRegister) -> None:
            register("bad", Oss, services=[service])

    plugins = PluginManager()
    plugins.register(Bad(), "bad")
    assert plugins.integration_specs() == {}
    assert plugins.infos["bad"].error == (
        f"ValueError: resourceArn service {service!r} must be a lower-case name such as 'oss'"
    )


def test_built_in_services_cannot_be_taken_over(forget_oss):
    class Claiming:
        @hookimpl
        def relayflow_register_integrations(self, register: IntegrationRegister) -> None:
            register("mine", Oss, services=["fc", "oss"])

    plugins = PluginManager()
    plugins.register(Claiming(), "claiming")
    plugins.integration_specs()
    assert resource_services() == {
        "fc": "relayflow",
        "fnf": "relayflow",
        "mns": "relayflow",
        "oss": "mine",
    }
    with pytest.raises(DefinitionError, match="not a valid acs:fc resourceArn"):
        load_flow(fdl("- {type: task, name: t, resourceArn: 'acs:fc:::nothing'}"))


PLUGIN_MODULE = """
from typing import Literal

from relayflow.engine import Integration, Succeeded
from relayflow.fdl import StepBase, register_step_type
from relayflow.plugins import hookimpl


class Oss(Integration):
    name = "oss"

    def __init__(self, settings=None):
        pass

    def claims(self, resource):
        return resource.startswith("acs:oss:")

    async def invoke(self, request):
        return Succeeded({"fetched": request.resource.rsplit(":", 1)[1]})


class StampStep(StepBase):
    type: Literal["stamp"]


register_step_type(StampStep, handler=lambda step, input, context: {"stamped": True})


@hookimpl
def relayflow_register_integrations(register):
    register("oss", Oss, services=["oss"])
"""


def test_relayflow_run_loads_plugins_before_it_checks_the_flow(tmp_path: Path):
    (tmp_path / "oss_plugin.py").write_text(PLUGIN_MODULE)
    (tmp_path / "relayflow.toml").write_text('[plugins]\nmodules = ["oss_plugin"]\n')
    flow = tmp_path / "photos.yaml"
    flow.write_text(
        fdl("""
        - type: stamp
          name: mark
        - type: task
          name: fetch
          resourceArn: acs:oss:::photos/cat.jpg
        """)
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("relayflow")), "run", str(flow)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "RELAYFLOW_DISABLE_PLUGINS": "mns"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stamped": True, "fetched": "photos/cat.jpg"}
