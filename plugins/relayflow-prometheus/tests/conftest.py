"""Fixtures of the relayflow-prometheus tests: a real Prometheus server, and the suite's servers.

These tests use the repository's own test helpers (`tests.api_server` to start
`relayflow server`, `tests.services` for PostgreSQL), so the repository's root goes on the path
and, when only this folder runs, `tests.services` is loaded as a pytest plugin here (the full
suite loads it from tests/conftest.py; loading it twice would start a second PostgreSQL).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_testkit import Prometheus, exposed_metrics, start_prometheus  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("tests.services"):
        config.pluginmanager.import_plugin("tests.services")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus server on a free loopback port, its storage in tmp; killed after the test.

    Scrape targets are added with `Prometheus.scrape` (the configuration is reloaded). Skipped
    when /usr/bin/prometheus is missing, unless RELAYFLOW_REQUIRE_SERVICES is set.
    """
    with start_prometheus(tmp_path / "prometheus") as server:
        yield server


@pytest.fixture(scope="session")
def exposed() -> dict[str, set[str]]:
    """Every sample name the plugin exposes after a small real run, with its label names."""
    return exposed_metrics()
