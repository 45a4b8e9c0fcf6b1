"""Fixtures of the relayflow-otel tests: a live OTLP/HTTP receiver, and the suite's servers.

The repository's root goes on the path so that tests may use its helpers (`tests.services` for
PostgreSQL); when only this folder runs, `tests.services` is loaded as a pytest plugin here (the
full suite loads it from tests/conftest.py, and loading it twice would start a second server).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from otlp_receiver import OtlpReceiver  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("tests.services"):
        config.pluginmanager.import_plugin("tests.services")


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver on a free loopback port, stopped after the test."""
    with OtlpReceiver() as receiver:
        yield receiver
