"""The project's exceptions, the codes requests are refused with, and the flows' error names.

Every exception relayflow raises for a caller to handle derives from `RelayflowError`, so
``except RelayflowError`` catches them all; each also keeps the standard base it had before
(`ConfigError` is still a `ValueError`), so older ``except`` clauses keep working::

    RelayflowError
    ├── CallError                  a call that did not succeed, embedded or remote: code, message
    │   ├── EngineError            a request the engine or the API refuses: code, status, message
    │   │   └── RefusedAfterChange relayflow.engine.batches: refused, but what it wrote commits
    │   └── ClientError            relayflow.client: the server refused a call, or none answered
    ├── ConfigError (ValueError)   relayflow.config: relayflow.toml or a setting is wrong
    ├── StoreError (RuntimeError)  relayflow.store: the store cannot be opened or used
    ├── DefinitionError (ValueError)   relayflow.fdl: a flow definition is invalid
    ├── ExpressionError (ValueError)   relayflow.dataflow: a path or condition is invalid
    ├── ImportTargetError          relayflow.importing: a `module:attribute` cannot be loaded
    │                              (the plugins' HandlerImportError and HandlerError are it)
    └── WorkerError                relayflow.worker: a worker cannot start or go on

Codes that Serverless Workflow defines keep its names (`ExecutionAlreadyExists`,
`FlowNotExists`, ...). Codes for task tokens are relayflow's own, since the original service
documents none; each bad report gets its own code so that a worker can tell them apart.

The `ERROR_*` names are different: they are the error names a flow's steps fail with, which
`retry` and `catch` match (`FnF.TaskTimeout`, ...).
"""

from __future__ import annotations

from typing import Final, Literal, Self, TypeAlias

__all__ = [
    "CODES",
    "ERROR_DATA_LIMIT",
    "ERROR_EVENT_LIMIT",
    "ERROR_INVALID_LOCAL",
    "ERROR_RUNTIME",
    "ERROR_TASK_TIMEOUT",
    "CallError",
    "EngineError",
    "ErrorCode",
    "RelayflowError",
    "error",
    "first_line",
]


class RelayflowError(Exception):
    """The root of relayflow's exceptions (the tree is in this module's docstring)."""


#: The codes the engine refuses requests with; mypy checks them where `EngineError.of` is used.
ErrorCode: TypeAlias = Literal[
    "InvalidArgument",
    "InvalidDefinition",
    "FlowAlreadyExists",
    "FlowNotExists",
    "ExecutionAlreadyExists",
    "ExecutionNotExists",
    "ExecutionNotRunning",
    "TaskTokenMalformed",
    "TaskTokenInvalid",
    "TaskAlreadyCompleted",
    "TaskExpired",
    "InternalError",
]

# Codes, with the status each gets. Listed here so docs and the API stay in step.
CODES: Final[dict[ErrorCode, int]] = {
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
    "InternalError": 500,
}


class CallError(RelayflowError):
    """A call that did not succeed, embedded or remote: one ``except`` for both.

    The engine raises `EngineError`; `relayflow.client` raises `ClientError` (the server's
    refusal, or no answer at all).

    Attributes:
        code: a stable name, such as `ExecutionNotExists`.
        message: one sentence for a person.
        status: the HTTP status that fits (0 when a remote call got no answer).
    """

    code: str
    message: str
    status: int


class EngineError(CallError):
    """A request the engine refuses. Nothing was changed.

    The API answers with its own codes too (`SignatureDoesNotMatch`, ...), so the constructor
    takes any code; `EngineError.of` takes only the engine's, with their status.

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

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> Self:
        """The refusal ``code`` with ``message``, and the HTTP status that belongs to the code."""
        return cls(code, message, CODES[code])


def error(code: ErrorCode, message: str) -> EngineError:
    """An `EngineError` with the status that belongs to ``code`` (as `EngineError.of`)."""
    return EngineError(code, message, CODES[code])


#: A task exceeded its `timeoutSeconds`.
ERROR_TASK_TIMEOUT: Final = "FnF.TaskTimeout"
#: A fault while running a step: a mapping, collection, duration or timestamp that cannot be used.
ERROR_RUNTIME: Final = "FnF.RuntimeError"
#: A task's result is not a JSON object.
ERROR_INVALID_LOCAL: Final = "FnF.InvalidLocal"
#: A step's input, output or local is larger than `Limits.max_step_data_bytes` (relayflow's name).
ERROR_DATA_LIMIT: Final = "FnF.DataLimitExceeded"
#: The execution would record more than `Limits.max_events` events (relayflow's name).
ERROR_EVENT_LIMIT: Final = "FnF.EventLimitExceeded"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters: enough to say why."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
