"""docs/observability.md: its commands run, its configuration and rules are accepted by the real
programs, and the metrics it names are the ones relayflow-prometheus exposes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "observability.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
RELAYFLOW = str(Path(sys.executable).with_name("relayflow"))


def blocks(language: str) -> list[str]:
    """The fenced blocks of ``language``, in page order."""
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


def named_block(language: str, name: str) -> str:
    """The block whose first line is the comment `# <name>`."""
    found = [b for b in blocks(language) if b.startswith(f"# {name}\n")]
    assert len(found) == 1, f"docs/observability.md has no single {language} block named {name}"
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing(program: str) -> None:
    """Skip without the program, unless CI requires every service (as tests/services.py)."""
    message = f"{program} is not installed (apt-get install prometheus)"
    if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


# -- the quick start ----------------------------------------------------------------------------


def try_it_commands() -> list[str]:
    section = DOC.split("## Try it on one machine", 1)[1].split("\n## ", 1)[0]
    (console,) = re.findall(r"```console\n(.*?)```", section, re.S)
    return [line[2:] for line in console.splitlines() if line.startswith("$ ")]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            assert process.poll() is None, "the OTLP sink exited"
            time.sleep(0.05)
    raise AssertionError(f"the OTLP sink did not listen on {port} within {timeout} s")


def test_try_it_on_one_machine_gives_one_nested_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's commands, run as written (a free port and a temporary folder swapped in)."""
    for name in [n for n in os.environ if n.startswith(("OTEL_", "RELAYFLOW_"))]:
        monkeypatch.delenv(name)
    port = str(free_port())
    examples = tmp_path / "contrib" / "examples"
    shutil.copytree(ROOT / "contrib" / "examples", examples)
    shutil.copytree(ROOT / "contrib" / "bench", tmp_path / "contrib" / "bench")
    out = tmp_path / "trace"
    cwd = tmp_path
    sink: subprocess.Popen[bytes] | None = None
    try:
        for command in try_it_commands():
            command = command.replace("4318", port).replace("/tmp/trace", str(out))
            command = re.sub(r"(^|&& )python ", rf"\g<1>{shlex.quote(sys.executable)} ", command)
            command = re.sub(r"(^| )relayflow ", rf"\g<1>{shlex.quote(RELAYFLOW)} ", command)
            if command.startswith("cd "):
                cwd = cwd / command[3:]
            elif command.endswith(" &"):
                sink = subprocess.Popen(command[:-2], shell=True, cwd=cwd, start_new_session=True)
                wait_for_port(int(port), sink)
            else:
                done = subprocess.run(
                    command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=60
                )
                assert done.returncode == 0, (command, done.stdout, done.stderr)
    finally:
        if sink is not None:
            os.killpg(sink.pid, signal.SIGTERM)
            sink.wait(timeout=10)
    spans = [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]
    assert len(spans) == 10, [s["name"] for s in spans]
    assert len({s["trace_id"] for s in spans}) == 1
    (root,) = [s for s in spans if not s["parent_span_id"]]
    assert root["name"] == "execution seed-three-tasks"
    steps = {s["name"]: s for s in spans if s["parent_span_id"] == root["span_id"]}
    assert sorted(steps) == ["step extract", "step load", "step transform"]
    for job in ("extract", "transform", "load"):
        (task,) = [s for s in spans if s["name"] == f"task {job}"]
        assert task["parent_span_id"] == steps[f"step {job}"]["span_id"]
        assert task["attributes"]["relayflow.pattern"] == "waitForCallback"
        # The in-process worker continues the task's trace: its message span is the task's child.
        (process,) = [s for s in spans if s["parent_span_id"] == task["span_id"]]
        assert process["name"] == "fnf-demo process"
    svg = ET.parse(out / "observability-trace.svg").getroot()
    assert svg.tag.endswith("svg") and "execution seed-three-tasks" in ET.tostring(svg, "unicode")


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", blocks("toml"))
def test_toml_examples_are_accepted_by_the_plugins(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each relayflow.toml example passes the same checks as `relayflow server` makes."""
    from relayflow.config import load_config
    from relayflow.plugins import PluginManager

    for name in [n for n in os.environ if n.startswith(("OTEL_", "RELAYFLOW_"))]:
        monkeypatch.delenv(name)
    path = tmp_path / "relayflow.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(str(path))
    plugins = PluginManager.from_config(config)
    plugins.check_config(config)  # raises ConfigError with the sentence if a key is wrong
    tables = re.findall(r"^\[(\w+)\]", text, re.M)
    for table in tables:
        if table not in ("server", "engine"):
            assert plugins.settings(config, table) is not None, table


def test_the_collector_pipeline_names_what_it_defines() -> None:
    collector = yaml.safe_load(named_block("yaml", "otel-collector.yaml"))
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipeline = collector["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(collector[kind]), kind


def test_scrape_config_and_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(promtool, os.X_OK):
        missing("promtool")
    (tmp_path / "prometheus.yml").write_text(named_block("yaml", "prometheus.yml"))
    (tmp_path / "relayflow-alerts.yml").write_text(named_block("yaml", "relayflow-alerts.yml"))
    done = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The rule file is checked with the configuration that names it.
    assert "relayflow-alerts.yml" in done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout + done.stderr


def exposed_metric_names() -> set[str]:
    """Every series name relayflow-prometheus's server and worker registries can expose."""
    from relayflow_prometheus.metrics import ServerMetrics
    from relayflow_prometheus.settings import PrometheusSettings
    from relayflow_prometheus.worker import WorkerMetrics

    names: set[str] = set()
    registries = [ServerMetrics(PrometheusSettings(enabled=True)).registry]
    registries.append(WorkerMetrics.build().registry)
    for registry in registries:
        for family in registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
            }.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_the_metrics_the_page_names_are_exposed() -> None:
    exposed = exposed_metric_names()
    named = set(re.findall(r"\brelayflow_[a-z_]+\b", named_block("yaml", "relayflow-alerts.yml")))
    assert len(named) >= 8
    assert named <= exposed, sorted(named - exposed)


# -- figures ---------------------------------------------------------------------------------


def test_every_figure_exists_and_is_svg() -> None:
    images = re.findall(r"!\[[^\]]+\]\((images/[^)]+)\)", DOC)
    assert len(images) == 3
    for image in images:
        root = ET.parse(ROOT / "docs" / image).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", image
        assert "observability_plots.py" in DOC
