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


ROOT = EXAMPLES.parents[1]


def _recipe(target: str) -> list[str]:
    """The lines `make -n TARGET` would run, with the install step assumed done."""
    done = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_demo_says_what_its_last_two_runs_show() -> None:
    lines = _recipe("demo")
    runs = [i for i, line in enumerate(lines) if "relayflow run" in line]
    assert len(runs) == 2
    greeting = " ".join(lines[runs[0] - 3 : runs[0]])
    assert "greeting.yaml" in lines[runs[0]] and "foreach" in greeting and "choice" in greeting
    trip = " ".join(lines[runs[1] - 5 : runs[1]])
    assert "trip-saga.yaml" in lines[runs[1]]
    for shown in ("retry", "2nd attempt", "catch", "withoutHotel", "compensation"):
        assert shown in trip, shown


def test_the_first_install_shows_progress() -> None:
    done = subprocess.run(
        ["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    lines = done.stdout.splitlines()
    main = next(line for line in lines if "-e '.[dev]'" in line)
    assert "--quiet" not in main and "--progress-bar on" in main
    assert sum(line.startswith('echo "==> ') for line in lines) >= 3
