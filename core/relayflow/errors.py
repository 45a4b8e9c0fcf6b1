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
`FlowNotExists`, `ScheduleNotExists`, ...), and so do the messages that tools match on: a
missing resource is `<Kind> '<name>' does not exist` with a capital first letter, as in
`Flow 'orders' does not exist` (`not_exists` and `already_exists` write them). Codes for task
tokens are relayflow's own, since the original service documents none; each bad report gets
its own code so that a worker can tell them apart.

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
    "ScheduleAlreadyExists",
    "ScheduleNotExists",
    "FlowVersionNotExists",
    "FlowVersionInUse",
    "FlowAliasAlreadyExists",
    "FlowAliasNotExists",
    "MapRunNotExists",
    "ExecutionNotRedrivable",
    "FlowHasRunningExecutions",
    "CorrelationKeyNotExists",
    "CorrelationKeyInUse",
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
    "ScheduleAlreadyExists": 409,
    "ScheduleNotExists": 404,
    "FlowVersionNotExists": 404,
    "FlowVersionInUse": 409,
    "FlowAliasAlreadyExists": 409,
    "FlowAliasNotExists": 404,
    "MapRunNotExists": 404,
    # relayflow's own (issue 15): redrive, DeleteFlow of a busy flow, reports by key.
    "ExecutionNotRedrivable": 409,
    "FlowHasRunningExecutions": 409,
    "CorrelationKeyNotExists": 404,
    "CorrelationKeyInUse": 409,
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


def not_exists(code: ErrorCode, kind: str, name: str, flow: str | None = None) -> EngineError:
    """The service's refusal for a missing resource: `Flow 'orders' does not exist`.

    Tools match on this text, so its shape is fixed: ``kind`` with a capital letter, the name
    in single quotes, then `does not exist`; a resource inside a flow adds `in flow '<flow>'`.

    Args:
        code: the code, such as `FlowNotExists` or `ScheduleNotExists`.
        kind: what is missing, as a person calls it: `Flow`, `Execution`, `Schedule`, ...
        name: its name.
        flow: the flow it belongs to, for resources inside a flow.
    """
    where = "" if flow is None else f" in flow '{flow}'"
    return EngineError(code, f"{kind} '{name}' does not exist{where}", CODES[code])


def already_exists(code: ErrorCode, kind: str, name: str, flow: str | None = None) -> EngineError:
    """The service's refusal for a name that is taken: `Flow 'orders' already exists`.

    Args:
        code: the code, such as `FlowAlreadyExists` or `ScheduleAlreadyExists`.
        kind: what exists, as a person calls it: `Flow`, `Schedule`, `Flow alias`, ...
        name: its name.
        flow: the flow it belongs to, for resources inside a flow.
    """
    where = "" if flow is None else f" in flow '{flow}'"
    return EngineError(code, f"{kind} '{name}' already exists{where}", CODES[code])


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
