"""Child flows: task steps that start an execution of another flow on the same engine.

Two spellings name the child, as in Serverless Workflow:

- `resourceArn: acs:fnf:::flow/{name}`, with optional serviceParams `ExecutionName` and `Input`;
- `action: fnf:StartExecution`, with serviceParams `FlowName` (required), `ExecutionName`,
  `Input`.

`Input` is the child's input (an object, or JSON text); without it the step's mapped input is.
Without `ExecutionName` the child's name is made from the task token, so that an attempt
dispatched again after a crash finds the child it already started instead of starting another.

Patterns:

- `requestResponse`: the task succeeds once the child has started; the local is the child's
  `Name`, `FlowName`, `Status` and `StartedTime`.
- `sync` and `waitForCallback`: the child is started with the task's token as its callback
  token (what StartExecution's `CallbackFnFTaskToken` sets), and the task waits. When the child
  ends, the engine reports to the parent's task in the same transaction that ends the child
  (`report_to_parent`, called as the child's end is recorded): its output on success; on
  failure its error name and cause, which the parent's `retry` and `catch` match;
  `fnf.ExecutionStopped` (or the stop's own error) when it was stopped. The report cannot be
  lost between the two.

Every child is linked to its parent (`relayflow.engine.family`): DescribeExecution names both
(`ParentExecution`, `ChildExecutions`), the child's ExecutionStarted event names the parent,
and the parent's TaskSubmitted (sync, waitForCallback) or TaskSucceeded (requestResponse) event
names the child. A parent that ends stops its running children by `family`'s rule; a child
whose parent has already ended reports to nobody, silently.

Refusals of the start fail the task with the API's code behind the lower-case `fnf.` prefix the
service uses for integrated calls: `fnf.ExecutionAlreadyExists`, `fnf.FlowNotExists`,
`fnf.InvalidArgument`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, Protocol

from relayflow.engine.batches import TxContext
from relayflow.engine.integration import (
    Failed,
    Integration,
    Submitted,
    Succeeded,
    TaskOutcome,
    TaskReporter,
    TaskRequest,
)
from relayflow.engine.model import Command, ExecutionState, TaskFailed, TaskSucceeded, Transition
from relayflow.engine.records import ExecutionInfo, iso_time
from relayflow.engine.tokens import parse_token, verify_token
from relayflow.errors import ERROR_RUNTIME, EngineError
from relayflow.store import ExecutionRow, Transaction

__all__ = [
    "ACTION",
    "ChildFlowIntegration",
    "ExecutionStarter",
    "ParentApplier",
    "names_child_flow",
    "report_to_parent",
]

log = logging.getLogger("relayflow.engine")

#: The action name of the `action:` spelling.
ACTION = "fnf:StartExecution"
_ARN = re.compile(r"acs:fnf:[^:]*:[^:]*:flow/(?P<name>.+)")


class ExecutionStarter(Protocol):
    """What starts child executions: the engine."""

    async def start_execution(
        self,
        flow_name: str,
        input: Any = None,
        name: str | None = None,
        callback_token: str = "",
        qualifier: str = "",
        parent: tuple[str, str] | None = None,
    ) -> ExecutionInfo:
        """Start an execution, idempotent by name, linked to ``parent`` (flow, name)."""


class ChildFlowIntegration(Integration):
    """Starts child executions on the engine it is bound to. Built into every engine."""

    name = "fnf"
    patterns = frozenset({"requestResponse", "sync", "waitForCallback"})

    def __init__(self) -> None:
        self._engine: ExecutionStarter | None = None

    def claims(self, resource: str) -> bool:
        """`acs:fnf:...:flow/{name}` resourceArns and the action `fnf:StartExecution`."""
        return names_child_flow(resource)

    def bind(self, reporter: TaskReporter) -> None:
        """Keep the engine, which both starts children and takes their reports."""
        if hasattr(reporter, "start_execution"):
            self._engine = reporter  # type: ignore[assignment]

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Start the child; answer at once (requestResponse) or leave the task waiting."""
        if self._engine is None:
            return Failed(ERROR_RUNTIME, "child flows need a running engine to start them")
        params = dict(request.service_params or {})
        found = _ARN.fullmatch(request.resource)
        flow_name = found["name"] if found else params.get("FlowName")
        if not isinstance(flow_name, str) or not flow_name:
            return Failed(
                "fnf.InvalidArgument",
                f"step {request.step_name}: serviceParams.FlowName must name the flow to start",
            )
        given = params.get("ExecutionName")
        if given is not None and not isinstance(given, str):
            return Failed(
                "fnf.InvalidArgument",
                f"step {request.step_name}: serviceParams.ExecutionName must be text, "
                f"got {json.dumps(given)}",
            )
        name = given or _name_for(request.token)
        child_input = params.get("Input", request.input)
        waits = request.pattern in ("sync", "waitForCallback")
        callback = request.token if waits else str(params.get("CallbackFnFTaskToken") or "")
        try:
            child = await self._engine.start_execution(
                flow_name,
                child_input,
                name,
                callback,
                parent=(request.flow_name, request.execution_name),
            )
        except EngineError as exc:
            if exc.code == "ExecutionAlreadyExists" and not given:
                # A name made from this attempt's token: this attempt started it before a
                # restart, and the child has ended since. Its report (if it waits) is in.
                started = {"Name": name, "FlowName": flow_name}
                return Submitted(started) if waits else Succeeded(started)
            return Failed(f"fnf.{exc.code}", str(exc))
        if waits:
            return Submitted({"Name": child.name, "FlowName": child.flow_name})
        return Succeeded(
            {
                "Name": child.name,
                "FlowName": child.flow_name,
                "Status": child.status,
                "StartedTime": iso_time(child.started),
            }
        )


def names_child_flow(resource: str) -> bool:
    """Whether a task's resource (its resourceArn, or its action) starts a child execution."""
    return resource == ACTION or _ARN.fullmatch(resource) is not None


def _name_for(token: str) -> str:
    """A child execution name that only this task attempt makes."""
    return "child-" + uuid.uuid5(uuid.NAMESPACE_URL, token).hex


class ParentApplier(Protocol):
    """What reporting to a parent needs of the engine: its token secret, and applying commands."""

    secret: bytes

    def read_state(
        self, tx: Transaction, ctx: TxContext, row: ExecutionRow
    ) -> ExecutionState | None:
        """The execution's state; None if it cannot be read (the execution is then failed)."""

    def apply(
        self,
        tx: Transaction,
        ctx: TxContext,
        row: ExecutionRow,
        command: Command,
        state: ExecutionState | None = None,
    ) -> Transition:
        """Apply ``command`` to an execution inside ``tx``, recording what follows."""


def report_to_parent(
    applier: ParentApplier,
    tx: Transaction,
    ctx: TxContext,
    child: ExecutionRow,
    state: ExecutionState,
) -> None:
    """Finish the task waiting for ``child`` (its callback token) in the same transaction.

    Called as the child's end is recorded: the child's end and the parent's report commit
    together, so neither can be lost without the other. A token whose task is no longer open
    (it timed out, or the parent was stopped) is dropped, as a late ReportTask call would be
    refused.
    """
    try:
        parts = parse_token(child.callback_token)
        # Lock order: the child is locked already (its end is being recorded), the parent now.
        # A parent's end locks its children the other way round (`family.stop_children`), so
        # on a shared database two such transactions may deadlock: the database then aborts
        # one (StoreConflict), which the writer runs again; by then the other has committed.
        parent = tx.get_execution(parts.flow_name, parts.execution_name, lock=True)
        if parent is None:
            raise EngineError.of("ExecutionNotExists", "the parent execution does not exist")
        verify_token(applier.secret, parts, parent.uid)
    except EngineError as exc:
        log.warning(
            "execution %s/%s ended, but its callback token leads nowhere: %s",
            child.flow_name,
            child.name,
            exc,
            extra={"flow": child.flow_name, "execution": child.name},
        )
        return
    if parent.status != "Running":
        return
    parent_state = applier.read_state(tx, ctx, parent)
    if parent_state is None or parts.task_id not in parent_state.tasks:
        return
    command: Command
    if state.status == "Succeeded":
        command = TaskSucceeded(parts.task_id, state.output or {})
    else:
        default = {"Stopped": "fnf.ExecutionStopped", "TimedOut": "fnf.ExecutionTimedOut"}
        error = state.error or default.get(state.status, ERROR_RUNTIME)
        cause = state.cause or f"child execution {child.flow_name}/{child.name} {state.status}"
        command = TaskFailed(parts.task_id, error, cause)
    applier.apply(tx, ctx, parent, command, parent_state)
