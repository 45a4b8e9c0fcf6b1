"""Tasks waiting, read from the store through the engine's ListWaitingWork, as gauges.

Why from the store and not counted from hooks: a gauge kept from hooks would start at zero
after a restart and, with several replicas, each would see only the tasks it scheduled itself.
The store holds the truth for all of them, so every replica reports the same store-wide values
(aggregate them with `max`, not `sum`). The read runs in the background every
`waiting_refresh_seconds`, never during a scrape, and stops after `waiting_max_pages` pages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from relayflow.engine import Engine

__all__ = ["WaitingCollector", "WaitingSnapshot"]

log = logging.getLogger("relayflow_prometheus")

#: ListWaitingWork's largest page.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class WaitingSnapshot:
    """What one refresh found: open task attempts by (flow, resource), oldest age by flow."""

    tasks: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    at: float = 0.0


class WaitingCollector(Collector):
    """Serves the last `WaitingSnapshot` as gauges; `run` refreshes it in the background."""

    def __init__(
        self,
        flow_label: Callable[[str], str],
        resource_label: Callable[[str], str],
        *,
        interval: float,
        max_pages: int,
    ) -> None:
        self._flow = flow_label
        self._resource = resource_label
        self._interval = interval
        self._max_pages = max_pages
        self._snapshot = WaitingSnapshot()  # replaced whole, so a scrape sees one refresh

    async def refresh(self, engine: Engine) -> WaitingSnapshot:
        """Read what running executions wait on and keep it as the current snapshot."""
        tasks: dict[tuple[str, str], int] = {}
        oldest_since: dict[str, float] = {}
        token = ""
        pages = 0
        while True:
            page = await engine.list_waiting(limit=_PAGE, next_token=token)
            pages += 1
            for work in page.items:
                if work.kind != "task":
                    continue
                flow = self._flow(work.flow_name)
                key = (flow, self._resource(work.resource))
                tasks[key] = tasks.get(key, 0) + 1
                if work.since is not None:
                    since = work.since.timestamp()
                    if since < oldest_since.get(flow, float("inf")):
                        oldest_since[flow] = since
            token = page.next_token
            if not token or pages >= self._max_pages:
                break
        now = time.time()
        oldest = {flow: max(0.0, now - since) for flow, since in oldest_since.items()}
        self._snapshot = WaitingSnapshot(tasks, oldest, bool(token), now)
        return self._snapshot

    async def run(self, engine: Engine) -> None:
        """Refresh every interval until cancelled; a failed read is logged and retried."""
        while True:
            try:
                await self.refresh(engine)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store may be away: keep the last values
                log.warning("relayflow-prometheus could not list waiting work: %s", exc)
            await asyncio.sleep(self._interval)

    def collect(self) -> Iterator[Metric]:
        """The gauges of the current snapshot."""
        snap = self._snapshot
        waiting = GaugeMetricFamily(
            "relayflow_tasks_waiting",
            "Task attempts that wait for their result, by flow and resource (store-wide).",
            labels=["flow", "resource"],
        )
        for (flow, resource), count in sorted(snap.tasks.items()):
            waiting.add_metric([flow, resource], count)
        yield waiting
        oldest = GaugeMetricFamily(
            "relayflow_task_oldest_waiting_seconds",
            "Age of the oldest task attempt still waiting, by flow (store-wide).",
            labels=["flow"],
        )
        for flow, age in sorted(snap.oldest.items()):
            oldest.add_metric([flow], age)
        yield oldest
        yield GaugeMetricFamily(
            "relayflow_waiting_scan_truncated",
            "1 when the last refresh stopped at waiting_max_pages, so the gauges are partial.",
            value=1.0 if snap.truncated else 0.0,
        )
        yield GaugeMetricFamily(
            "relayflow_waiting_refreshed_timestamp_seconds",
            "When the waiting-task gauges were last read from the store (0: not yet).",
            value=snap.at,
        )
