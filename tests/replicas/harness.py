"""What the multi-replica process tests share: the cluster, the flow, the checks.

The processes (replicas, balancer, workers) are started by contrib/bench/replicas.py, which the
scale-out benchmarks use too; this module adds a fresh PostgreSQL database per test, a Redis
database of the test's own, and the checks every execution must pass once the dust settles.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from relayflow.client import Client
from relayflow.results import HistoryEvent
from tests.helpers import EXAMPLES, ROOT

sys.path.insert(0, str(ROOT / "contrib" / "bench"))

from replicas import Cluster, create_database, ready

__all__ = [
    "SEED",
    "SLOW_WORKER",
    "STEPS",
    "Cluster",
    "check_execution",
    "create_database",
    "expected_output",
    "fresh_redis",
    "history",
    "ready",
    "wait_for",
]

SEED = (EXAMPLES / "seed-three-tasks.yaml").read_text()
STEPS = ("extract", "transform", "load")

# Each job takes a moment, so that executions are in flight when a replica goes.
SLOW_WORKER = """
import time

from seed_worker import handle as quick


def handle(body):
    time.sleep(0.15)
    return quick(body)
"""


def expected_output() -> dict[str, Any]:
    """What every seed execution ends with."""
    return {"rows": [{"id": i, "seen": True} for i in (1, 2, 3)], "loaded": 3}


def fresh_redis(redis_url: str, db: int) -> str:
    """The session's redis-server with database ``db``, emptied: no other test's messages."""
    import redis

    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


def wait_for(what: str, done: Callable[[], bool], seconds: float, every: float = 0.1) -> None:
    """Poll ``done`` until it holds; fail naming ``what`` after ``seconds`` (a bound, not a
    timing assertion: the work normally takes a fraction of it)."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(every)


def history(client: Client, flow: str, name: str) -> list[HistoryEvent]:
    """Every event of an execution, read through ``client``'s replica."""
    return list(client.iter_history(flow, name, page_size=999))


def check_execution(events: list[HistoryEvent], name: str) -> None:
    """One seed execution's history: gap-free, each step entered and done once, one end."""
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(events) + 1)), (name, "history has gaps", ids)
    types = Counter(e.type for e in events)
    assert types["ExecutionStarted"] == 1, (name, types)
    assert types["ExecutionSucceeded"] == 1, (name, types)
    ends = {"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"} & set(types)
    assert not ends, (name, types)
    assert events[-1].type == "ExecutionSucceeded", (name, events[-1])
    # TaskStarted and TaskSubmitted may repeat: a replica that takes over a dead one's
    # dispatch sends the message again (at least once); the attempt stays one.
    for kind in ("StepEntered", "TaskScheduled", "TaskSucceeded", "StepSucceeded", "StepExited"):
        per_step = Counter(e.step_name for e in events if e.type == kind)
        assert per_step == dict.fromkeys(STEPS, 1), (name, kind, per_step)
