"""Errors the engine answers with: a code, an HTTP status and one sentence.

Codes that Serverless Workflow defines keep its names (`ExecutionAlreadyExists`,
`FlowNotExists`, ...). Codes for task tokens are relayflow's own, since the original service
documents none; each bad report gets its own code so that a worker can tell them apart.
"""

from __future__ import annotations

__all__ = ["EngineError", "first_line"]


class EngineError(Exception):
    """A request the engine refuses. Nothing was changed.

    Attributes:
        code: a stable name, such as `TaskAlreadyCompleted`.
        status: the HTTP status that fits.
        message: one sentence for a person.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# Codes, with the status each gets. Listed here so docs and the API stay in step.
CODES = {
    "InvalidArgument": 400,
    "InvalidDefinition": 400,
    "FlowAlreadyExists": 409,
    "FlowNotExists": 404,
    "ExecutionAlreadyExists": 409,
    "ExecutionNotExists": 404,
    "ExecutionNotRunning": 409,
    "TaskTokenMalformed": 400,
    "TaskTokenInvalid": 403,
    "TaskAlreadyCompleted": 409,
    "TaskExpired": 409,
}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters: enough to say why."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def error(code: str, message: str) -> EngineError:
    """An `EngineError` with the status that belongs to ``code``."""
    return EngineError(code, message, CODES.get(code, 400))
