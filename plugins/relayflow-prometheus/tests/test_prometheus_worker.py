"""The worker side without a port: inert; and its labels held to their bounds.

Serving on a port is tested with a real worker process in test_prometheus_scrape.py (a server
thread started here would outlive the test in pytest's process).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from prometheus_client import generate_latest
from prometheus_testkit import samples, value

import relayflow_prometheus.worker as prometheus_worker
from relayflow.worker.hooks import ENTRY_POINT_GROUP, WorkerInfo, WorkerMessage, WorkerPlugins
from relayflow_prometheus.worker import WorkerMetrics


def test_without_a_metrics_port_the_hooks_do_nothing():
    plugins = WorkerPlugins()
    plugins.register(prometheus_worker, "prometheus")
    loaded = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert loaded["prometheus"] == "relayflow_prometheus.worker"
    message = WorkerMessage(queue="jobs", flow="f", execution="e", step="s")
    plugins.started(WorkerInfo(queues=("jobs",), concurrency=1, transport="redis"))
    plugins.handled(message, "succeeded", 0.5)
    assert prometheus_worker.current() is None


def test_queue_and_outcome_labels_are_bounded():
    metrics = WorkerMetrics.build()
    metrics.handled("jobs", "succeeded", 0.2)
    metrics.handled("jobs", "Not A Word!", -1.0)  # an odd word and a clock gone backwards
    for i in range(25):
        metrics.handled("jobs", f"word{chr(97 + i)}", 0.1)
    for i in range(105):
        metrics.handled(f"q{i}", "succeeded", 0.1)
    text = generate_latest(metrics.registry).decode()
    done = "relayflow_worker_messages_total"
    assert value(text, done, queue="jobs", outcome="succeeded") == 1
    assert value(text, done, queue="jobs", outcome="(other)") == 1 + 25 - 19
    outcomes = {
        dict(labels)["outcome"]
        for (name, labels), _ in samples(text).items()
        if name == done and dict(labels)["queue"] == "jobs"
    }
    assert len(outcomes) == 21  # 20 words, then "(other)"
    assert value(text, done, queue="(other)", outcome="succeeded") == 6  # 1 + 105 - 100
    assert (
        value(text, "relayflow_worker_message_duration_seconds_bucket", queue="jobs", le="0.005")
        == 1
    )


def test_the_worker_side_imports_nothing_of_the_engine_side():
    code = (
        "import sys, relayflow_prometheus.worker\n"
        "heavy = ('relayflow.plugins', 'relayflow.config', 'relayflow.engine', 'pydantic')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]"
