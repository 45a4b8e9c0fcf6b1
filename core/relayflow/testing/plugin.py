"""The pytest plugin of relayflow: fixtures for tests of flows and plugins.

Installing relayflow registers it (the `pytest11` entry point `relayflow`), so a plugin's own test
suite gets these fixtures without a conftest. The helpers they build on are in `relayflow.testing`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relayflow.testing import EngineFactory


@pytest.fixture
def engine_factory(tmp_path: Path) -> EngineFactory:
    """Makes engines for the test, each to enter with ``async with``.

    Call it as `relayflow.testing.make_engine` is called. An engine is in memory unless made with
    ``sqlite=True``, which puts it on a SQLite file in the test's temporary folder, shared by
    every engine the test makes that way.
    """
    return EngineFactory(tmp_path)
