"""bench_queue.py's reference: the seed scenario's three jobs as a Celery chain on Redis.

One `celery worker -c 2 --pool prefork` process, Redis as broker and result backend (another
database of the redis-server bench_queue.py starts): chains per second for ``--count`` chains
submitted at once, and the latency of one chain, one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from replicas import CpuMeter, Processes, summary_ms

CELERY = str(Path(sys.executable).with_name("celery"))
EXPECTED = {"rows": [{"id": i, "seen": True} for i in (1, 2, 3)], "loaded": 3}

CELERY_TASKS = '''\
"""The seed scenario's three jobs as a Celery chain: extract -> transform -> load."""

import os

from celery import Celery

URL = os.environ["BENCH_CELERY_REDIS"]
app = Celery("bench_celery_tasks", broker=URL, backend=URL)
app.conf.update(
    task_default_queue="bench-celery",
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
    result_expires=600,
)


@app.task
def extract(source):
    return {"rows": [{"id": 1}, {"id": 2}, {"id": 3}]}


@app.task
def transform(local):
    return {"rows": [dict(row, seen=True) for row in local["rows"]]}


@app.task
def load(local):
    return {"rows": local["rows"], "loaded": len(local["rows"])}
'''


def bench_celery(
    procs: Processes,
    where: Path,
    redis: str,
    redis_pid: int,
    args: argparse.Namespace,
    full: bool,
) -> dict:
    """One round of the reference: chains per second; with ``full``, one at a time too."""
    where.mkdir(parents=True)
    (where / "bench_celery_tasks.py").write_text(CELERY_TASKS, encoding="utf-8")
    url = f"{redis}/1"
    os.environ["BENCH_CELERY_REDIS"] = url
    if "bench_celery_tasks" in sys.modules:  # a later round: a fresh app (the last was closed)
        tasks = importlib.reload(sys.modules["bench_celery_tasks"])
    else:
        sys.path.insert(0, str(where))
        import bench_celery_tasks as tasks  # type: ignore[import-not-found]
    from celery import chain

    command = [CELERY, "-A", "bench_celery_tasks", "worker", "-c", "2", "--pool", "prefork"]
    command += ["-Q", "bench-celery", "-l", "warning", "--without-gossip", "--without-mingle"]
    command += ["--without-heartbeat"]
    worker = procs.start(command, where, "celery.log", BENCH_CELERY_REDIS=url)
    figures: dict[str, Any] = {"broker": url, "worker": "1 process, prefork -c 2"}

    def one(n: int) -> Any:
        return chain(tasks.extract.s(f"c{n}"), tasks.transform.s(), tasks.load.s()).apply_async()

    try:
        one(-1).get(timeout=60)  # the worker is up and the connections are made
        meter = CpuMeter({"celery worker": worker.pid, "redis-server": redis_pid})
        with meter as cpu:
            began = time.perf_counter()
            results = [one(n) for n in range(args.count)]
            for result in results:
                assert result.get(timeout=120) == EXPECTED
            seconds = time.perf_counter() - began
        figures["throughput"] = {
            "chains": args.count,
            "seconds": seconds,
            "chains_per_s": args.count / seconds,
            "cpu_seconds": cpu,
        }
        if full:
            samples = []
            for n in range(args.sequential):
                began = time.perf_counter()
                assert one(n).get(timeout=60) == EXPECTED
                samples.append(time.perf_counter() - began)
            figures["sequential"] = summary_ms(samples)
    finally:
        with contextlib.suppress(Exception):
            tasks.app.close()
        figures["worker_exit_code"] = procs.stop(worker)
    return figures
