"""Settings that cannot work are found before the first task: `validate --strict` and the
server's start name them in one line each (an FC handler that does not import, a transport
kombu does not know)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relayflow.engine import FunctionIntegration, Integration
from relayflow.engine.coverage import settings_problems
from relayflow_fc import FcIntegration, FcSettings
from relayflow_mns import MnsIntegration, MnsSettings

EXE = str(Path(sys.executable).with_name("relayflow"))

FC_FLOW = """version: v1
type: flow
steps:
  - type: task
    name: book
    resourceArn: acs:fc:cn-hangzhou:123:services/trip/functions/bookTrain
"""
MNS_FLOW = """version: v1
type: flow
steps:
  - type: task
    name: send
    resourceArn: acs:mns:::/queues/jobs/messages
    pattern: waitForCallback
    serviceParams:
      MessageBody: $
"""
FC_CONFIG = (
    '[engine]\nstore = "memory://"\n\n[server]\nport = 0\n\n'
    '[integrations.fc.functions]\n"trip/bookTrain" = "trip_broken:book"\n'
)
MNS_CONFIG = (
    '[engine]\nstore = "memory://"\n\n[server]\nport = 0\n\n'
    '[integrations.mns]\ntransport = "reddis://:pw@127.0.0.1:6379/0"\n'
)
FC_SAYS = '[integrations.fc.functions] "trip/bookTrain" = "trip_broken:book": cannot import module'
MNS_SAYS = "[integrations.mns] transport 'reddis://:***@127.0.0.1:6379/0' names no transport"


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "trip_broken.py").write_text("import not_installed_anywhere\n")
    (tmp_path / "fc.yaml").write_text(FC_FLOW)
    (tmp_path / "mns.yaml").write_text(MNS_FLOW)
    (tmp_path / "fc.toml").write_text(FC_CONFIG)
    (tmp_path / "mns.toml").write_text(MNS_CONFIG)
    return tmp_path


@pytest.mark.parametrize(
    ("flow", "config", "says"),
    [("fc.yaml", "fc.toml", FC_SAYS), ("mns.yaml", "mns.toml", MNS_SAYS)],
)
def test_validate_strict_names_the_setting(folder: Path, flow: str, config: str, says: str) -> None:
    assert run(folder, "validate", flow, "--config", config).returncode == 0  # not strict
    done = run(folder, "validate", "--strict", flow, "--config", config)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"{flow}: ")]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "pw@" not in done.stderr


@pytest.mark.parametrize(("config", "says"), [("fc.toml", FC_SAYS), ("mns.toml", MNS_SAYS)])
def test_the_server_refuses_to_start(folder: Path, config: str, says: str) -> None:
    done = run(folder, "server", "--config", config)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relayflow: InvalidConfig: "), lines
    assert says in lines[0]


def test_each_integration_answers_for_its_settings(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder)
    (folder / "trip_ok.py").write_text("def book(event, context):\n    return {}\n")
    good = FcIntegration(FcSettings(functions={"trip/bookTrain": "trip_ok:book"}))
    assert good.problems() == []
    bad = FcIntegration(FcSettings(functions={"trip/bookTrain": "trip_ok:nope"}))
    assert bad.problems() == [
        '[integrations.fc.functions] "trip/bookTrain" = "trip_ok:nope": '
        "module 'trip_ok' has no attribute 'nope'"
    ]
    for url in ("redis://h:6379/0", "memory://", "amqp://guest@h//", "relayflow-sqlite:///q.db"):
        assert MnsIntegration(MnsSettings(transport=url)).problems() == [], url
    assert (
        "Did you mean redis?" in MnsIntegration(MnsSettings(transport="reddis://h")).problems()[0]
    )


def test_a_check_that_fails_is_a_problem_too() -> None:
    class Broken(FunctionIntegration):
        def problems(self) -> list[str]:
            raise RuntimeError("oops")

    integrations: list[Integration] = [FunctionIntegration({}), Broken({}, name="broken")]
    assert settings_problems(integrations) == [
        "integration broken: checking its settings failed: RuntimeError: oops"
    ]
