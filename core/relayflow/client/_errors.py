"""The client's one exception, `ClientError`."""

from __future__ import annotations

from relayflow.errors import CallError

__all__ = ["ClientError"]


class ClientError(CallError):
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
