"""The floor under report -> next message: the same path with `floor_server.py` for the engine.

`measure_floors` starts `floor_server.py` processes, each behind a balancer like the one the
replicas had, and times what bench_queue.py's latency measurement times: from just before a
ReportTaskSucceeded is sent through `relayflow.client.Client` to the moment a waiting kombu
consumer in this process has the next message. Each sample is followed by two more reports
and messages, as each of the benchmark's is, so that the processes idle between samples about
as long. The difference to relayflow's own figure is relayflow's work: the token, the engine,
the store's commit, the dispatch.

Given a PostgreSQL URL, the floor server also commits one row update and one event row there
before each publish (`floor_server.py --store`): the least any engine that keeps its state in
PostgreSQL must do before the next message goes out.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inbox import WaitingInbox
from replicas import HERE, Cluster, spawn, summary_ms

from relayflow.client import Client

__all__ = ["FloorCluster", "measure_floors"]


class FloorCluster(Cluster):
    """A `Cluster` whose replicas are `floor_server.py` processes publishing to ``transport``.

    A ``store`` that is a PostgreSQL URL is passed on as `--store`: each report is committed
    there before its message goes out.
    """

    def _spawn_server(self, index: int, config: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(HERE / "floor_server.py"), "--host", self.hosts[index]]
        command += ["--port", str(self.port), "--redis", self.transport]
        if self.store.startswith(("postgresql://", "postgres://")):
            command += ["--store", self.store]
        return spawn(command, self.folder, f"server{index}.log")


def measure_floors(
    folder: Path,
    transport: str,
    count: int,
    balancer: str | None,
    route: bool = True,
    stores: dict[str, str | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """``count`` samples of report -> next message through each of one or more floor servers.

    The servers run side by side, each behind a balancer of its own, and take turns sample by
    sample (who goes first alternating too), so that the machine's swings weigh on all alike.

    Args:
        folder: where their logs go (a subfolder each).
        transport: the Redis URL (`redis://host:port/db`) the consumer reads.
        count: how many samples each.
        balancer: as for `Cluster` (None: the server's own address).
        route: as for `Cluster`.
        stores: a name for each server, with the PostgreSQL database's URL it commits each
            report to before the publish, or None for no store at all. Default: one server,
            ``floor``, with no store.

    Returns:
        For each name, ``{"report_to_next_message": summary_ms(...)}``.
    """
    stores = stores if stores is not None else {"floor": None}
    clusters = {
        name: FloorCluster(
            folder / name,
            store or "floor",
            transport,
            1,
            lease_seconds=None,
            poll_seconds=None,
            visibility_timeout=30,
            balancer=balancer,
            route=route,
        )
        for name, store in stores.items()
    }
    latencies: dict[str, list[float]] = {name: [] for name in clusters}
    with contextlib.ExitStack() as stack:
        clients = {}
        for name, cluster in clusters.items():
            stack.callback(cluster.stop)
            cluster.start()
            clients[name] = stack.enter_context(Client(cluster.url))
        inbox = WaitingInbox(transport)
        stack.callback(inbox.close)
        names = list(clusters)
        for i in range(count):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                for n in range(3):
                    began = time.perf_counter()
                    clients[name].report_task_succeeded("floor-token", {"rows": [{"id": 1}]})
                    received, _ = inbox.take()
                    if n == 0:
                        latencies[name].append(received - began)
    return {name: {"report_to_next_message": summary_ms(v)} for name, v in latencies.items()}
