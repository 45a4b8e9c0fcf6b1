"""The client's error, `ClientError`, and the names it has always given the shared results.

The results themselves (`FlowInfo`, `ExecutionInfo`, `HistoryEvent`, `Page`, `HistoryPage`)
live in `relayflow.results`, which the embedded engine returns too. `Flow` and `Execution` are
the client's former names for `FlowInfo` and `ExecutionInfo`: the same classes.
"""

from __future__ import annotations

from relayflow.errors import RelayflowError
from relayflow.results import (
    FINAL_STATUSES,
    ExecutionInfo,
    FlowInfo,
    HistoryEvent,
    HistoryPage,
    Page,
    parse_object,
    parse_time,
)

__all__ = [
    "FINAL_STATUSES",
    "ClientError",
    "Execution",
    "ExecutionInfo",
    "ExecutionPage",
    "Flow",
    "FlowInfo",
    "FlowPage",
    "HistoryEvent",
    "HistoryPage",
    "Page",
    "parse_object",
    "parse_time",
]

Flow = FlowInfo
"""The client's former name for `FlowInfo` (the same class)."""

Execution = ExecutionInfo
"""The client's former name for `ExecutionInfo` (the same class)."""

FlowPage = Page[FlowInfo]
"""A page of `ListFlows`."""

ExecutionPage = Page[ExecutionInfo]
"""A page of `ListExecutions`."""


class ClientError(RelayflowError):
    """A call that did not succeed: the server refused it, or it never got an answer.

    Attributes:
        code: a stable name. The server's `Code` (such as `ExecutionNotExists`,
            `TaskAlreadyCompleted`, `SignatureDoesNotMatch`), or one of the client's own:
            `ConnectionFailed` (the server cannot be reached), `RequestTimeout` (no answer in
            time), `InvalidResponse` (an answer that is not the API's JSON).
        message: one sentence for a person.
        status: the HTTP status of the answer; 0 when there was none.
        request_id: the server's `RequestId`, to find the request in its log; "" when unknown.
    """

    def __init__(self, code: str, message: str, status: int = 0, request_id: str = "") -> None:
        super().__init__(code, message, status, request_id)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
