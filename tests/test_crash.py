"""Crash test: SIGKILL the engine at random moments, restart it, and check nothing was lost.

The workload (tests/crash/workload.py) runs executions with requestResponse tasks, a retry
back-off, a wait, a parallel with a callback task, and a foreach. The test kills it several
times at random points, restarts it each time, lets the last run finish, and then reads the
store: every execution succeeded with the right output, its history is gap-free, and no step
was entered twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from relayflow.store import open_store
from tests.crash.workload import expected_output

WORKLOAD = Path(__file__).parent / "crash" / "workload.py"
PER_RUN = 5  # executions each (re)start adds, so that every kill finds work in flight
KILLS = int(os.environ.get("RELAYFLOW_CRASH_KILLS", "6"))
EXECUTIONS = PER_RUN * (KILLS + 1)


def _spawn(folder: Path, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKLOAD), str(folder), str(count)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def test_sigkill_at_random_points_loses_and_doubles_nothing(tmp_path):
    seed = int(os.environ.get("RELAYFLOW_CRASH_SEED", time.time_ns() % 100000))
    rng = random.Random(seed)
    print(f"crash test seed {seed}")
    killed = 0
    for generation in range(KILLS):
        proc = _spawn(tmp_path, PER_RUN * (generation + 1))
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=10)
    # Most kills must land while work is in flight, or the test proves little.
    assert killed >= KILLS - 1, f"seed {seed}: only {killed} kills hit a running engine"
    proc = _spawn(tmp_path, EXECUTIONS)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, f"seed {seed}: the last run failed:\n{err.decode()[-3000:]}"

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.reader() as tx:
        page = tx.list_executions("crash", after="", limit=1000)
        assert len(page) == EXECUTIONS
        for row in page:
            i = int(row.name.removeprefix("run"))
            assert row.status == "Succeeded", (seed, row.name, row.error, row.cause)
            assert json.loads(row.output) == expected_output(i), (seed, row.name)
            events = tx.list_events(row.id, 0, 10000)
            assert [e.event_id for e in events] == list(range(1, len(events) + 1)), seed
            entered = Counter(e.step_name for e in events if e.type == "StepEntered")
            assert entered == {
                "double": 1,
                "pause": 1,
                "fan": 1,
                "ask": 1,
                "each": 1,
                "square": 3,
            }, (seed, row.name, entered)
            attempts = sum(
                1 for e in events if e.type == "TaskScheduled" and e.step_name == "double"
            )
            assert attempts == (2 if i % 3 == 0 else 1), (seed, row.name)
            succeeded = Counter(e.step_name for e in events if e.type == "TaskSucceeded")
            assert succeeded == {"double": 1, "ask": 1, "square": 3}, (seed, row.name)
            assert [e.type for e in events].count("ExecutionSucceeded") == 1
    store.close()
