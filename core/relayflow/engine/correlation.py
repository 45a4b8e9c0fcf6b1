"""Reports by correlation key: reaching a waiting task without its token.

A `waitForCallback` task may declare `correlationKey: $.orderId`. Each attempt of it computes
its key from its input (`key_of`, in the interpreter) and, in the transaction that opens the
attempt, registers it as a flow object of kind ``correlation`` named by the key, which names
the attempt (`note_effects`). The object is deleted in the transaction that closes the attempt
(its result, a timeout, a cancel, the execution's end), and with its flow.

A report by FlowName and CorrelationKey (`resolve`, used by `relayflow.engine.reports`) reads
the object and the execution it names in the same writer job as the report, so the first
report of an attempt wins exactly as with tokens: a later one finds the key gone.

One attempt per flow and key: an attempt whose key another open attempt holds fails with
`ERROR_KEY_IN_USE`, and one whose key's value is missing or unusable with `ERROR_KEY_INVALID`;
both as ordinary task failures, which `retry` and `catch` handle, applied in the same
transaction before the attempt was handed to its integration. A key whose attempt closed
without forgetting it (an execution failed as unreadable) is stale; it is taken over by the
next attempt that claims it and refused to reports.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from relayflow.engine.model import CloseTask, InvokeTask, TaskFailed
from relayflow.engine.snapshot import load_state
from relayflow.errors import EngineError
from relayflow.fdl import TaskStep
from relayflow.store import FlowObjectRow, StoreConflict

if TYPE_CHECKING:
    from relayflow.engine.applier import Applier
    from relayflow.engine.batches import TxContext
    from relayflow.engine.interpreter import Interpreter
    from relayflow.engine.model import ExecutionState, Transition
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = [
    "ERROR_KEY_INVALID",
    "ERROR_KEY_IN_USE",
    "KIND",
    "MAX_KEY_CHARS",
    "CorrelationOperations",
    "Waiting",
    "attempt_key",
    "check_key",
    "forget_stale",
    "key_of",
    "key_problem",
    "not_waiting",
    "note_effects",
    "resolve",
]

log = logging.getLogger("relayflow.engine")

#: The kind of flow object a registered key is.
KIND: Final = "correlation"
#: The longest key, in characters (an integer counts its decimal digits).
MAX_KEY_CHARS: Final = 128
#: The error a task attempt fails with when its key's value is missing or unusable.
ERROR_KEY_INVALID: Final = "FnF.CorrelationKeyInvalid"
#: The error a task attempt fails with when another open attempt of the flow holds its key.
ERROR_KEY_IN_USE: Final = "FnF.CorrelationKeyInUse"

# `key_of` must give the interpreter a string: a bad value is handed on as this character
# followed by why, which no valid key can start with (keys have no control characters).
_BAD: Final = "\x00"


def key_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a correlation key; None when it can."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "null" if value is None else type(value).__name__
        if isinstance(value, bool):
            kind = "a boolean"
        elif isinstance(value, dict):
            kind = "an object"
        elif isinstance(value, list):
            kind = "a list"
        elif isinstance(value, float):
            kind = "a number with a fraction"
        return f"must be a string or an integer, not {kind}"
    if isinstance(value, int) and value.bit_length() > 500:  # str() of it could be refused
        return f"is an integer of more than {MAX_KEY_CHARS} digits"
    text = str(value)
    if not text:
        return "must not be empty"
    if len(text) > MAX_KEY_CHARS:
        return f"is {len(text)} characters long; the limit is {MAX_KEY_CHARS}"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "must not contain control characters"
    if any("\ud800" <= c <= "\udfff" for c in text):  # no store can keep one
        return "must not contain lone surrogates"
    return None


def check_key(value: Any, what: str = "CorrelationKey") -> str:
    """A key a caller gave, as text; `InvalidArgument` naming ``what`` when it cannot be one."""
    problem = key_problem(value)
    if problem is not None:
        raise EngineError.of("InvalidArgument", f"{what} {problem}")
    return str(value)


def key_of(step: TaskStep, task_input: dict[str, Any]) -> str | None:
    """The correlation key of a task attempt with this input; None when the step declares none.

    Pure: the interpreter calls it as it schedules each attempt (`InvokeTask.correlation_key`).
    A missing or unusable value gives a text that `note_effects` turns into the attempt's
    failure with `ERROR_KEY_INVALID`.
    """
    source = getattr(step, "correlation_key", None)
    if source is None:
        return None
    value = source.evaluate({"input": task_input})
    problem = key_problem(value)
    if problem is None:
        return str(value)
    if value is None:
        problem = "selects nothing (or null) in the task's input"
    return f"{_BAD}the correlationKey {source.raw} of step '{step.name}' {problem}"


def attempt_key(step: Any, task_input: dict[str, Any]) -> str | None:
    """The key an open attempt of ``step`` with this input waits on; None if it has none.

    For tools that show waiting work: unlike `key_of`, never the text of a bad value.
    """
    key = key_of(step, task_input) if isinstance(step, TaskStep) else None
    return None if key is None or key.startswith(_BAD) else key


# ---------------------------------------------------------------------------------------------
# Keys as attempts open and close, in the transaction that records them.


@dataclass(frozen=True, slots=True)
class Waiting:
    """The task attempt a key names: its execution (by name and uid) and its task id."""

    execution: str
    uid: str
    task_id: int

    def dumps(self) -> str:
        """The object's data."""
        return json.dumps({"execution": self.execution, "uid": self.uid, "task": self.task_id})

    @classmethod
    def loads(cls, text: str) -> Waiting | None:
        """The attempt an object's data names; None for data this version did not write."""
        try:
            data = json.loads(text)
            return cls(str(data["execution"]), str(data["uid"]), int(data["task"]))
        except (ValueError, TypeError, KeyError):
            return None


# Whether a loaded flow declares any key: most do not, and their transitions cost nothing here.
_KEYED: weakref.WeakKeyDictionary[Interpreter, bool] = weakref.WeakKeyDictionary()
# The keys of the attempts a transition opened, while the attempts it refused are failed
# (a nested transition may close them: its row's stored state does not have them yet).
_OPENED: ContextVar[dict[tuple[str, int], str] | None] = ContextVar("_OPENED", default=None)


def _keyed(interp: Interpreter) -> bool:
    known = _KEYED.get(interp)
    if known is None:
        known = any(
            isinstance(step, TaskStep) and step.correlation_key is not None
            for steps in interp.index.lists.values()
            for step in steps
        )
        _KEYED[interp] = known
    return known


def _open_keys(interp: Interpreter, state: ExecutionState, wanted: set[int]) -> dict[int, str]:
    """The keys of the open attempts ``wanted`` in ``state``, recomputed from their inputs."""
    keys: dict[int, str] = {}
    for task_id in wanted:
        scope = state.scopes.get(state.tasks.get(task_id, -1))
        if scope is None or scope.run is None:
            continue
        steps = interp.index.lists.get(scope.key)
        step = steps[scope.pc] if steps is not None and scope.pc < len(steps) else None
        if isinstance(step, TaskStep):
            key = attempt_key(step, scope.run.input)
            if key is not None:
                keys[task_id] = key
    return keys


def note_effects(
    tx: Transaction,
    ctx: TxContext,
    row: ExecutionRow,
    transition: Transition,
    *,
    applier: Applier | None = None,
    state: ExecutionState | None = None,
) -> None:
    """Register or forget correlation keys for the task attempts ``transition`` opens or closes.

    ``row`` is the execution as it was before the transition (its stored state names the
    attempts that were open) and ``state`` the state the transition left. An attempt refused
    its key is failed here, by applying `TaskFailed` to it, and its outbox row is dropped so
    that no integration hears of it.
    """
    effects = transition.effects
    opens = any(isinstance(e, InvokeTask) and e.correlation_key is not None for e in effects)
    closes = any(isinstance(e, CloseTask) for e in effects)
    if not opens and not (closes and applier is not None):
        return
    interp = None
    if applier is not None:
        try:
            interp = applier.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)[1]
        except (EngineError, ValueError, RecursionError):
            # The execution is being failed because its definition no longer loads: its keys
            # cannot be recomputed and become stale, which reports and new attempts handle.
            interp = None
        if not opens and (interp is None or not _keyed(interp)):
            return
    now = applier.clock() if applier is not None else time.time()
    opened = _OPENED.get() or {}
    closed_keys: dict[int, str] | None = None
    refused: list[tuple[int, str, str]] = []
    for effect in effects:
        if isinstance(effect, InvokeTask) and effect.correlation_key is not None:
            key = effect.correlation_key
            if key.startswith(_BAD):
                refused.append((effect.task_id, ERROR_KEY_INVALID, key[1:]))
                continue
            holder = _register(tx, row, Waiting(row.name, row.uid, effect.task_id), key, now, state)
            if holder is None:
                opened = {**opened, (row.uid, effect.task_id): key}
            else:
                refused.append((effect.task_id, ERROR_KEY_IN_USE, _in_use(row, key, holder)))
        elif isinstance(effect, CloseTask):
            closing = opened.get((row.uid, effect.task_id))
            if closing is None and interp is not None:
                if closed_keys is None:
                    closed_keys = _closed_keys(interp, row, effects)
                closing = closed_keys.get(effect.task_id)
            if closing is not None:
                _forget(tx, row, effect.task_id, closing)
    if refused:
        _fail_refused(tx, ctx, row, refused, opened, applier, state)


def _closed_keys(interp: Interpreter, row: ExecutionRow, effects: list[Any]) -> dict[int, str]:
    """The keys of the attempts ``effects`` close, from the state stored before them."""
    if not _keyed(interp):
        return {}
    try:
        before = load_state(row.state)
    except (ValueError, RecursionError):
        return {}  # an attempt unaccounted for is stale, and treated as such when met
    wanted = {e.task_id for e in effects if isinstance(e, CloseTask)}
    return _open_keys(interp, before, wanted)


def _register(
    tx: Transaction,
    row: ExecutionRow,
    waiting: Waiting,
    key: str,
    now: float,
    state: ExecutionState | None,
) -> Waiting | None:
    """Register ``key`` for ``waiting``; None when done, else the attempt that holds it."""
    new = FlowObjectRow(row.flow_name, KIND, key, waiting.dumps(), now, now)
    for _ in range(3):  # a holder may close between the two statements; then try again
        if tx.create_object(new):
            return None
        found = tx.get_object(row.flow_name, KIND, key, lock=True)
        if found is None:
            continue
        holder = Waiting.loads(found.data)
        if holder is not None and _still_waits(tx, row, holder, state):
            return holder
        tx.put_object(new)  # a stale key: its attempt is over; this one takes it over
        return None
    # Only if other transactions keep taking and dropping the key: run the batch again.
    raise StoreConflict(f"correlation key {key!r} kept changing")  # pragma: no cover


def _still_waits(
    tx: Transaction, row: ExecutionRow, holder: Waiting, state: ExecutionState | None
) -> bool:
    """Whether the attempt a key names is still open (else the key is stale)."""
    if holder.uid == row.uid:
        return state is None or holder.task_id in state.tasks
    other = tx.get_execution(row.flow_name, holder.execution)
    if other is None or other.uid != holder.uid or other.status != "Running":
        return False
    try:
        return holder.task_id in load_state(other.state).tasks
    except (ValueError, RecursionError):
        return False  # unreadable: it is failed as soon as anything touches it


def _in_use(row: ExecutionRow, key: str, holder: Waiting) -> str:
    who = (
        "an earlier attempt of this execution"
        if holder.uid == row.uid
        else (f"execution '{holder.execution}'")
    )
    return (
        f"the correlation key {key!r} of flow '{row.flow_name}' is held by a task of {who} "
        "that is still waiting; one task per flow waits on a key at a time"
    )


def _forget(tx: Transaction, row: ExecutionRow, task_id: int, key: str) -> None:
    """Delete ``key`` if it names this attempt (another may hold it since)."""
    found = tx.get_object(row.flow_name, KIND, key)
    if found is None:
        return
    holder = Waiting.loads(found.data)
    if holder is None or (holder.uid == row.uid and holder.task_id == task_id):
        tx.delete_object(row.flow_name, KIND, key)


def _fail_refused(
    tx: Transaction,
    ctx: TxContext,
    row: ExecutionRow,
    refused: list[tuple[int, str, str]],
    opened: dict[tuple[str, int], str],
    applier: Applier | None,
    state: ExecutionState | None,
) -> None:
    """Fail the attempts refused their keys, before anyone hands them to an integration."""
    if applier is None or state is None:
        log.warning(
            "%s/%s: a task attempt was refused its correlation key but cannot be failed here",
            row.flow_name,
            row.name,
            extra={"flow": row.flow_name, "execution": row.name},
        )
        return
    refused_ids = {task_id for task_id, _, _ in refused}
    for item in [o for o in ctx.outbox if o.execution_id == row.id]:
        if item.payload.get("task_id") in refused_ids:
            tx.delete_outbox(item.id)
            ctx.outbox.remove(item)
    mark = _OPENED.set(opened)
    try:
        for task_id, error, cause in refused:
            if state.done or task_id not in state.tasks:
                continue
            applier.apply(tx, ctx, row, TaskFailed(task_id, error, cause), state)
    finally:
        _OPENED.reset(mark)


def resolve(tx: Transaction, flow_name: str, key: str) -> tuple[ExecutionRow | None, Waiting]:
    """The execution, locked, and the attempt that waits on ``key``, for a report.

    Read in the report's own writer job: the execution is locked before the key is read
    again, so an attempt found here is still open when the report is applied. The row is None
    when the key names an execution that is gone (the key is stale).

    Raises:
        EngineError: `CorrelationKeyNotExists` when no attempt of the flow waits on ``key``.
    """
    for _ in range(3):
        found = tx.get_object(flow_name, KIND, key)
        waiting = Waiting.loads(found.data) if found is not None else None
        if found is None or waiting is None:
            break
        # The execution first, then the key again: what closes an attempt holds its execution.
        row = tx.get_execution(flow_name, waiting.execution, lock=True)
        again = tx.get_object(flow_name, KIND, key)
        if again is None:
            break
        if again.data == found.data:
            return (row if row is not None and row.uid == waiting.uid else None), waiting
    raise not_waiting(flow_name, key)


def not_waiting(flow_name: str, key: str, cls: type[EngineError] = EngineError) -> EngineError:
    """The refusal of a report by a key that no open attempt holds."""
    return cls.of(
        "CorrelationKeyNotExists",
        f"no task of flow '{flow_name}' is waiting on correlation key {key!r}: none declared "
        "it yet, or the first report on it won already",
    )


def forget_stale(tx: Transaction, flow_name: str, key: str, waiting: Waiting) -> None:
    """Delete a key whose attempt is over (found by a report), if it still names that attempt."""
    found = tx.get_object(flow_name, KIND, key)
    if found is not None and Waiting.loads(found.data) == waiting:
        tx.delete_object(flow_name, KIND, key)


class CorrelationOperations:
    """Task reports by correlation key, as `Engine` methods.

    The reports themselves are `report_task_succeeded` and `report_task_failed`
    (`relayflow.engine.reports`), which take ``flow_name`` and ``correlation_key`` instead
    of a token.
    """

    _runtime: Runtime
