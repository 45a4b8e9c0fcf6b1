"""The README stays true: its tables name exactly what the plugin exposes and reads, its
`[prometheus]` example validates, its scrape configuration passes `promtool check config`, and
its `relayflow plugins` line is what the command prints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from prometheus_testkit import manager_with, metrics_of

from relayflow_prometheus import PrometheusSettings
from tests.api_server import EXE, server_env

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def blocks(kind: str) -> list[str]:
    return [text for info, text in BLOCKS if info == kind]


def documented() -> dict[str, set[str]]:
    """The metrics of the README's tables, with the labels each row names."""
    rows = re.findall(r"^\| `(relayflow_\w+)` \| (\w+) \|([^|]*)\|", README, re.MULTILINE)
    return {name: set(re.findall(r"`(\w+)`", labels)) for name, _kind, labels in rows}


def family(sample: str, names: set[str]) -> str:
    """The family a sample belongs to (a histogram's `_bucket` is the histogram's)."""
    if sample in names:
        return sample
    for suffix in SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in names:
            return sample[: -len(suffix)]
        if sample.endswith(suffix) and sample[: -len(suffix)] + "_total" in names:
            return sample[: -len(suffix)] + "_total"
    return sample


def test_the_tables_name_every_metric_and_its_labels(exposed):
    table = documented()
    assert len(table) >= 18
    seen: dict[str, set[str]] = {}
    for sample, labels in exposed.items():
        if sample.startswith("relayflow_"):
            seen.setdefault(family(sample, set(table)), set()).update(labels - {"le"})
    assert set(seen) == set(table)
    for name, labels in seen.items():
        assert labels == table[name], name


def test_every_key_is_documented_and_the_example_validates():
    for key in PrometheusSettings.model_fields:
        assert f"| `{key}` |" in README, key
    (example,) = blocks("toml")
    manager = manager_with(tomllib.loads(example)["prometheus"])
    assert metrics_of(manager).settings.max_flows == 1000


def test_the_scrape_configuration_passes_promtool(tmp_path):
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(promtool, os.X_OK):
        if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    (scrape,) = blocks("yaml")
    (tmp_path / "prometheus.yml").write_text(scrape, encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_plugins_line_is_what_the_command_prints(tmp_path):
    env = {**server_env(), "RELAYFLOW_LOAD_PLUGINS": "prometheus"}
    printed = subprocess.run(
        [EXE, "plugins"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    line = next(line for line in printed.stdout.splitlines() if line.startswith("prometheus"))
    assert line.split() == re.search(r"^prometheus .*$", README, re.MULTILINE)[0].split()
