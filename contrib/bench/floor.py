"""The floor under report -> next message: the same path with `floor_server.py` for the engine.

`measure_floor` starts one `floor_server.py` behind the balancer the replicas had, and times
what bench_queue.py's latency measurement times: from just before a ReportTaskSucceeded is
sent through `relayflow.client.Client` to the moment a waiting kombu consumer in this process
has the next message. Each sample is followed by two more reports and messages, as each of the
benchmark's is, so that the processes idle between samples about as long. The difference to
relayflow's own figure is relayflow's work: the token, the engine, the store's commit, the
dispatch.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inbox import WaitingInbox
from replicas import HERE, Cluster, spawn, summary_ms

from relayflow.client import Client

__all__ = ["FloorCluster", "measure_floor"]


class FloorCluster(Cluster):
    """A `Cluster` whose replicas are `floor_server.py` processes publishing to ``transport``."""

    def _spawn_server(self, index: int, config: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(HERE / "floor_server.py"), "--host", self.hosts[index]]
        command += ["--port", str(self.port), "--redis", self.transport]
        return spawn(command, self.folder, f"server{index}.log")


def measure_floor(
    folder: Path, transport: str, count: int, balancer: str | None, route: bool = True
) -> dict[str, Any]:
    """``count`` samples of report -> next message through one floor server.

    Args:
        folder: where its logs go.
        transport: the Redis URL (`redis://host:port/db`) the consumer reads.
        count: how many samples.
        balancer: as for `Cluster` (None: the server's own address).
        route: as for `Cluster`.
    """
    cluster = FloorCluster(
        folder,
        "floor",
        transport,
        1,
        lease_seconds=None,
        poll_seconds=None,
        visibility_timeout=30,
        balancer=balancer,
        route=route,
    )
    latencies: list[float] = []
    try:
        cluster.start()
        inbox = WaitingInbox(transport)
        try:
            with Client(cluster.url) as client:
                for _ in range(count):
                    for n in range(3):
                        began = time.perf_counter()
                        client.report_task_succeeded("floor-token", {"rows": [{"id": 1}]})
                        received, _ = inbox.take()
                        if n == 0:
                            latencies.append(received - began)
        finally:
            inbox.close()
    finally:
        cluster.stop()
    return {"report_to_next_message": summary_ms(latencies)}
