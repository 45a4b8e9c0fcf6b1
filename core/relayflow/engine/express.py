"""Express flows: short executions run in memory and started synchronously (StartSyncExecution).

A flow created with `ExecutionMode=Express` follows Serverless Workflow's Express rules:

- it is started with `StartSyncExecution`, which answers with the execution's end (its
  `Output`, or its `ErrorCode` and `ErrorMessage`) in the same call; `StartExecution` refuses
  it, as `StartSyncExecution` refuses a Standard flow (`ActionNotSupported`, as the service);
- it runs at most `EXPRESS_MAX_SECONDS` (5 minutes), waits included; then it ends `TimedOut`;
- its task steps answer in the call (pattern `requestResponse`): a `waitForCallback` or `sync`
  task waits for a report that may come much later, which an execution that lives in one call
  and keeps no state in the store cannot take, so `CreateFlow` and `UpdateFlow` refuse them.

Express executions are cheap because nothing of them goes through the store while they run:
the interpreter runs in memory (`relayflow.engine.inmemory.ExpressRun`), tasks are direct
calls of their integration and timers are sleeps. The store gets one row per execution, with
its final status, input and output, written once it has ended, so that `DescribeExecution`
and `ListExecutions` show it. No history events are kept: `GetExecutionHistory` refuses an
Express execution. An execution that ends in its first transition (no task, no wait) is
recorded by the same writer job that checks its flow; that transition runs on the event loop
with the flow revision the engine last ran, and again in the job if the flow changed since.

The execution's name is `{ExecutionName}:{uuid}` when the caller names it and a uuid when it
does not, as the service makes it: names of synchronous executions need not be unique.

The operations are a part of `Engine` (it inherits `ExpressOperations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from relayflow import jsontext
from relayflow.engine.arguments import check_name, environment_variables, parse_object
from relayflow.engine.inmemory import ExpressRun, call_integration
from relayflow.engine.model import TERMINAL_STATUSES, ExecutionState
from relayflow.engine.records import ExecutionInfo
from relayflow.engine.snapshot import dump_state
from relayflow.engine.tokens import mint_token
from relayflow.engine.versions import Target, flow_not_exists, resolve_qualifier
from relayflow.errors import EngineError, first_line
from relayflow.fdl import DefinitionError, Flow, TaskStep
from relayflow.store import ExecutionRow, FlowRow

if TYPE_CHECKING:
    from relayflow.engine.batches import TxContext
    from relayflow.engine.interpreter import Interpreter
    from relayflow.engine.runtime import Runtime
    from relayflow.store import Transaction

__all__ = [
    "EXECUTION_MODES",
    "EXPRESS_MAX_SECONDS",
    "EXPRESS_PATTERNS",
    "ExpressOperations",
    "check_express_flow",
    "refuse_express_history",
    "refuse_express_start",
]

log = logging.getLogger("relayflow.engine")

EXECUTION_MODES = ("Standard", "Express")
#: The longest an Express execution runs, waits included (the service's 5 minutes).
EXPRESS_MAX_SECONDS = 300.0
#: The task patterns an Express flow may use: the integration answers in the call.
EXPRESS_PATTERNS = frozenset({"requestResponse"})
#: How long `ExpressOperations._express_drain` waits for stopped executions to be recorded.
_STOP_SECONDS = 5.0
#: How many Express flows an engine remembers the last revision of (see `_express_saw`).
_SEEN_FLOWS = 1024


def check_express_flow(flow: Flow, flow_name: str) -> None:
    """Refuse an Express flow with a task that waits for a later report (CreateFlow, UpdateFlow).

    Raises:
        EngineError: `InvalidDefinition`, naming the first such task step and why.
    """
    for _, step in flow.walk():
        if isinstance(step, TaskStep) and step.pattern not in EXPRESS_PATTERNS:
            raise EngineError.of(
                "InvalidDefinition",
                f"task step '{step.name}' of Express flow '{flow_name}' uses pattern "
                f"{step.pattern}, which waits for a report that may come long after the call; "
                "an Express execution lives only in its StartSyncExecution call, at most 5 "
                "minutes, so its tasks must use requestResponse (or make the flow Standard)",
            )


def refuse_express_start(flow: FlowRow) -> None:
    """Refuse StartExecution on an Express flow, as the service does.

    Raises:
        EngineError: `ActionNotSupported` when ``flow`` is Express.
    """
    if flow.execution_mode == "Express":
        raise EngineError(
            "ActionNotSupported",
            f"Express execution is not supported by StartExecution: flow '{flow.name}' is an "
            "Express flow; start it with StartSyncExecution",
            400,
        )


def refuse_express_history(flow: FlowRow | None, execution_name: str) -> None:
    """Refuse GetExecutionHistory on an execution of an Express flow, which keeps no history.

    Raises:
        EngineError: `ActionNotSupported` when ``flow`` is Express.
    """
    if flow is not None and flow.execution_mode == "Express":
        raise EngineError(
            "ActionNotSupported",
            f"execution '{execution_name}' of Express flow '{flow.name}' has no history: "
            "Express executions keep only their result, which DescribeExecution shows",
            400,
        )


def _variables(environment: str) -> dict[str, str]:
    """A stored Environment's variables by name, as `$context.flow.environment` reads them."""
    return {v["Name"]: v["Value"] for v in environment_variables(environment)}


@dataclass(frozen=True, slots=True)
class _Seen:
    """An Express flow as this engine last ran it: the row, its interpreter, its variables."""

    flow: FlowRow
    interp: Interpreter
    variables: dict[str, str]

    def same(self, flow: FlowRow, target: Target) -> bool:
        """Whether ``target`` of ``flow`` is what this was: revision and Environment alike."""
        return (
            self.flow.id == flow.id
            and self.flow.version == flow.version == target.revision
            and self.flow.environment == target.environment
            and target.published_version == 0
        )


@dataclass(frozen=True, slots=True)
class _Begun:
    """What the writer's job of StartSyncExecution found and ran."""

    run: ExpressRun
    flow: FlowRow
    target: Target
    interp: Interpreter
    row: ExecutionRow | None  # when the execution ended in the job, and was recorded there
    definition: str


class ExpressOperations:
    """The Express actions of the API, as `Engine` methods."""

    _runtime: Runtime
    _routing: random.Random
    # Executions past their first transition, until they are recorded (made on first use:
    # the Engine's constructor is not this module's).
    _express_running: dict[ExpressRun, asyncio.Future[None]] | None = None
    # The last revision of each Express flow this engine ran, by flow name (the same).
    _express_flows: dict[str, _Seen] | None = None

    async def start_sync_execution(
        self,
        flow_name: str,
        input: Any = None,
        name: str | None = None,
        qualifier: str = "",
    ) -> ExecutionInfo:
        """Run an execution of an Express flow to its end and return it (StartSyncExecution).

        Args:
            flow_name: the Express flow.
            input: the input object (a dict or JSON text).
            name: a name for the execution; the execution is called `{name}:{uuid}` (a uuid
                without one), so names need not be unique.
            qualifier: a published version or an alias of the flow to run.

        Returns:
            The ended execution: `status` `Succeeded` with its `output`, or `Failed`,
            `TimedOut` or `Stopped` with `error` and `cause` (the API's `ErrorCode` and
            `ErrorMessage`). A failed execution is an answer, not an exception.

        Raises:
            EngineError: `FlowNotExists`; `ActionNotSupported` for a Standard flow;
                `InvalidArgument` for a bad name, input or qualifier.
        """
        runtime = self._runtime
        data = parse_object(input, "Input", runtime.limits.max_json_depth)
        unique = uuid.uuid4()
        exec_name = f"{check_name(name, 'execution name')}:{unique}" if name else str(unique)
        started = runtime.clock()
        make_run = self._express_runs(flow_name, exec_name, unique.hex, started)
        # The flow as this engine last saw it: the first transition runs here, on the event
        # loop, while the writer commits other work; the writer's job then only checks that
        # the flow is still that revision (else it runs the transition again itself).
        seen = None if qualifier else self._express_seen().get(flow_name)
        early = None
        if seen is not None:
            early = make_run(seen.interp)
            early.begin(data, seen.variables)

        def begin(tx: Transaction, ctx: TxContext) -> _Begun | EngineError:
            # Refusals are returned, not raised: the job then needs no savepoint of its own.
            flow = tx.get_flow(flow_name)
            if flow is None:
                return flow_not_exists(flow_name)
            if flow.execution_mode != "Express":
                return EngineError(
                    "ActionNotSupported",
                    f"Standard execution is not supported by StartSyncExecution: flow "
                    f"'{flow_name}' is a Standard flow; start it with StartExecution",
                    400,
                )
            try:
                target = resolve_qualifier(tx, flow, qualifier, self._routing)
                if early is not None and seen is not None and seen.same(flow, target):
                    run, interp = early, seen.interp
                else:
                    interp = self._express_interpreter(tx, flow, target.revision)
                    run = make_run(interp)
                    run.begin(data, _variables(target.environment))
            except EngineError as exc:
                return exc
            row = None
            if run.done:  # the common case: recorded in this same job
                row = _row(run, flow.id, target, data)
                tx.insert_execution(row)
            definition = flow.definition
            if target.revision != flow.version:
                definition = tx.flow_definition(flow_name, target.revision) or ""
            return _Begun(run, flow, target, interp, row, definition)

        begun = await runtime.committer.submit(begin, atomic=False)
        if isinstance(begun, EngineError):
            raise begun
        run, row = begun.run, begun.row
        if begun.target.published_version == 0:
            self._express_saw(begun.flow, begun.interp)
        if row is None:
            row = await self._express_finish(run, begun.flow, begun.target, data)
        hooks = runtime.hooks
        if run.events and hooks is not None:  # as Standard events are: once recorded
            try:
                hooks.notify([(flow_name, exec_name, run.events)])
            except Exception:  # recorded all the same: the caller must get its answer
                log.exception(
                    "lifecycle hooks failed on Express %s/%s",
                    flow_name,
                    exec_name,
                    extra={"flow": flow_name, "execution": exec_name},
                )
        return ExecutionInfo.of(row, begun.definition, begun.target.environment)

    def _express_runs(
        self, flow_name: str, exec_name: str, uid: str, started: float
    ) -> Callable[[Interpreter], ExpressRun]:
        """What makes the run of one execution, given the interpreter of its flow revision."""
        runtime = self._runtime
        applier = runtime.applier
        secret = applier.secret
        invoke = partial(call_integration, runtime.dispatcher, runtime.hooks)

        def mint(task_id: int) -> str:
            return mint_token(secret, flow_name, exec_name, uid, task_id)

        def make(interp: Interpreter) -> ExpressRun:
            return ExpressRun(
                interp,
                flow_name=flow_name,
                name=exec_name,
                uid=uid,
                mint_token=mint,
                invoke=invoke,
                started=started,
                deadline=started + EXPRESS_MAX_SECONDS,
                clock=runtime.clock,
                keep_events=applier.observed,
            )

        return make

    def _express_seen(self) -> dict[str, _Seen]:
        seen = self._express_flows
        if seen is None:
            seen = self._express_flows = {}
        return seen

    def _express_saw(self, flow: FlowRow, interp: Interpreter) -> None:
        """Remember the flow revision an execution ran, for the next start's early transition."""
        seen = self._express_seen()
        known = seen.get(flow.name)
        if (
            known is not None
            and known.interp is interp
            and known.same(flow, Target(0, flow.version, flow.environment))
        ):
            return  # the usual case: nothing changed, and the variables need not be read again
        if len(seen) >= _SEEN_FLOWS and flow.name not in seen:
            seen.clear()  # rarely: as many Express flows in use as this bounds
        seen[flow.name] = _Seen(flow, interp, _variables(flow.environment))

    def _express_interpreter(self, tx: Transaction, flow: FlowRow, revision: int) -> Interpreter:
        """The interpreter of a flow revision, from the engine's cache of loaded flows."""
        try:
            _, interp = self._runtime.applier.flow_for(tx, flow.name, flow.id, revision)
        except DefinitionError as exc:
            # Stored definitions were valid; a plugin step type removed since can break one.
            raise EngineError.of(
                "InvalidDefinition",
                f"flow '{flow.name}' cannot be run: its definition no longer loads: "
                f"{first_line(exc)}",
            ) from None
        return interp

    async def _express_finish(
        self, run: ExpressRun, flow: FlowRow, target: Target, data: dict[str, Any]
    ) -> ExecutionRow:
        """Run an execution that waits (tasks, timers) to its end in memory, then record it."""
        running = self._express_running
        if running is None:
            running = self._express_running = {}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        running[run] = done
        try:
            await run.run_to_end(self._runtime.poll_seconds)
            row = _row(run, flow.id, target, data)

            def record(tx: Transaction, ctx: TxContext) -> None:
                current = tx.get_flow(flow.name)
                if current is not None and current.id == flow.id:  # not deleted meanwhile
                    tx.insert_execution(row)

            await self._runtime.committer.submit(record, atomic=False)
        finally:
            running.pop(run, None)
            done.set_result(None)
        return row

    async def _express_drain(self, grace_seconds: float) -> None:
        """Let running Express executions end within ``grace_seconds``; stop and record the rest.

        For `Engine.close`, before the runtime stops: the executions still running after the
        grace period end `Stopped` and are recorded, and their callers get that answer.
        """
        running = self._express_running
        if not running:
            return
        await asyncio.wait(list(running.values()), timeout=grace_seconds)
        late = list(running.items())
        for run, _ in late:
            run.stop_cause = "the engine stopped before the Express execution ended"
        if late:
            wait = _STOP_SECONDS + self._runtime.poll_seconds
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await asyncio.gather(*(done for _, done in late))


# What an ended Express execution's row holds as its state: no scopes, tasks nor timers to
# resume (a late task report is told the task is over), by status; made once, not per row.
_ENDED_STATES = {status: dump_state(ExecutionState(status=status)) for status in TERMINAL_STATUSES}


def _row(run: ExpressRun, flow_id: str, target: Target, data: dict[str, Any]) -> ExecutionRow:
    """The store's row of an ended Express execution: its result, and no state to resume."""
    state = run.state
    return ExecutionRow(
        0,
        run.uid,
        run.flow_name,
        run.name,
        flow_id,
        target.revision,
        state.status,
        json.dumps(data),
        jsontext.dumps(state.output) if state.output is not None else None,
        state.error,
        state.cause,
        run.started,
        run.stopped,
        _ENDED_STATES[state.status],
        "",
        target.published_version,
    )
