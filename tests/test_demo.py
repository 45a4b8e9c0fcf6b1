"""`make demo`'s seed scenario script (contrib/examples/seed_demo.py), run as users run it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import EXAMPLES


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_the_seed_demo_runs_end_to_end(broker: str, request: pytest.FixtureRequest) -> None:
    command = [sys.executable, str(EXAMPLES / "seed_demo.py")]
    if broker == "redis":
        command += ["--transport", request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/7"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("extract", "transform", "load"):
        assert f"worker  {step:<9} picked up from the queue" in out
        assert f"engine  {step:<9} ReportTaskSucceeded" in out
        assert f"worker  {step:<9} succeeded in" in out
    assert "ExecutionSucceeded" in out and "TYPE" in out  # the history table
    assert "status: Succeeded" in out
    assert 'output: {"rows": [{"id": 1, "seen": true}' in out and '"loaded": 3}' in out
