"""Fixtures of the relayflow-otel tests: a live OTLP/HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from otlp_receiver import OtlpReceiver


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver on a free loopback port, stopped after the test."""
    with OtlpReceiver() as receiver:
        yield receiver
