"""What the engine's operations return: the shared result types of `relayflow.results`.

The embedded engine and the client return the same types; they live in `relayflow.results`
(a leaf the client can import without the engine). This module keeps the engine's names.
"""

from __future__ import annotations

from relayflow.results import ExecutionInfo, FlowInfo, HistoryEvent, HistoryPage, Page, iso_time

__all__ = ["ExecutionInfo", "FlowInfo", "HistoryEvent", "HistoryPage", "Page", "iso_time"]
