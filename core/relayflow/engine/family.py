"""Parents and children: the executions a task started, linked both ways.

`link_parent` records a child's parent as the child starts (the child's ExecutionStarted
event then names it); `stop_children` stops an ended execution's running children in the
transaction that ends it; `with_family` adds the links to DescribeExecution's answer.

Which children an end stops:

- the parent was **Stopped**: every running child, whatever its pattern, and so on down (a
  stopped child stops its own children by the same rule);
- the parent ended otherwise (**Failed**, **TimedOut**, **Succeeded**): the running children
  whose end would report to it (started by a `sync` or `waitForCallback` task): nothing will
  ever take their result. Children started by `requestResponse` tasks are independent and
  keep running.

Only a child flow task links children, so an execution whose flow version has none (and that
was never redriven from another version) ends without looking for children: no query on the
path every execution's end takes.

Each stopped child's cause names the parent ("stopped because its parent execution orders/o-7
was stopped"). One transaction stops at most `MAX_STOPPED_PER_TRANSACTION` descendants and
reads at most `MAX_LINKS_READ` links; a family larger than that keeps its remaining members
running (logged as a warning), to be stopped one by one or with a bulk stop.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from relayflow.engine.childflows import names_child_flow
from relayflow.engine.model import Stop
from relayflow.engine.tokens import parse_token
from relayflow.errors import EngineError
from relayflow.fdl import TaskStep
from relayflow.results import ExecutionRef

if TYPE_CHECKING:
    from relayflow.engine.applier import Applier
    from relayflow.engine.batches import TxContext
    from relayflow.engine.interpreter import Interpreter
    from relayflow.engine.model import ExecutionState
    from relayflow.engine.records import ExecutionInfo
    from relayflow.engine.runtime import Runtime
    from relayflow.store import ExecutionRow, Transaction

__all__ = [
    "MAX_CHILDREN_SHOWN",
    "MAX_LINKS_READ",
    "MAX_STOPPED_PER_TRANSACTION",
    "FamilyOperations",
    "link_parent",
    "reports_to",
    "stop_cause",
    "stop_children",
    "with_family",
]

log = logging.getLogger("relayflow.engine")

#: How many descendants one ending execution stops in its own transaction, at most.
MAX_STOPPED_PER_TRANSACTION: Final = 1000
#: How many family links that transaction reads while looking for running children, at most.
MAX_LINKS_READ: Final = 10 * MAX_STOPPED_PER_TRANSACTION
#: How many children DescribeExecution names (`ChildExecutions`), oldest first.
MAX_CHILDREN_SHOWN: Final = 100
_PAGE: Final = 100
_ENDED_AS: Final = {
    "Stopped": "was stopped",
    "Failed": "failed",
    "TimedOut": "timed out",
    "Succeeded": "succeeded",
}

# The executions whose children the current walk still has to look at. Stopping a child
# records its end, which calls `stop_children` again for it: that nested call only queues the
# child, so the walk stays one loop (no recursion as deep as the family) with one budget.
_walk: ContextVar[list[tuple[ExecutionRow, str]] | None] = ContextVar(
    "relayflow_family_walk", default=None
)


# Whether a loaded flow version has a task that starts child executions, by its interpreter
# (the applier's cache holds one per version; an entry goes when the interpreter does).
_starts_children: weakref.WeakKeyDictionary[Interpreter, bool] = weakref.WeakKeyDictionary()


def link_parent(tx: Transaction, child_id: int, parent: tuple[str, str] | None) -> dict[str, Any]:
    """Record that the execution ``parent`` (flow, name) started ``child_id``.

    Returns:
        What the child's ExecutionStarted event adds to its detail: ``{"ParentExecution":
        {"FlowName", "Name"}}``, or ``{}`` without a parent (none given, or it no longer
        exists: the child then runs unlinked).
    """
    if parent is None:
        return {}
    row = tx.get_execution(*parent)
    if row is None:
        return {}
    tx.link_child(row.id, child_id)
    return {"ParentExecution": {"FlowName": row.flow_name, "Name": row.name}}


def stop_cause(parent: ExecutionRow, status: str) -> str:
    """The cause recorded on a child stopped because ``parent`` ended with ``status``."""
    verb = _ENDED_AS.get(status, f"ended {status}")
    return f"stopped because its parent execution {parent.flow_name}/{parent.name} {verb}"


def stop_children(
    applier: Applier, tx: Transaction, ctx: TxContext, row: ExecutionRow, state: ExecutionState
) -> None:
    """An execution ended: stop its running children, and theirs, in the same transaction.

    Which children: the module's rule. Each child is locked (`Transaction.lock_execution`)
    and stopped through the applier, in a savepoint of its own: a child that cannot be stopped
    is failed alone, never the parent. Locking a child after its parent is the reverse of
    what a child's report to its parent does; on a shared database two such transactions may
    deadlock, and the database then aborts one (`StoreConflict`), which the writer runs again
    from the start, walk included.
    """
    queue = _walk.get()
    if queue is not None:
        queue.append((row, state.status))  # a child the walk stopped: the walk goes on to it
        return
    if not state.redrives and not _runs_child_flows(applier, tx, row):
        return  # most ends (and stops): no query at all
    queue = [(row, state.status)]
    token = _walk.set(queue)
    try:
        _walk_down(applier, tx, ctx, queue)
    finally:
        _walk.reset(token)


def _runs_child_flows(applier: Applier, tx: Transaction, row: ExecutionRow) -> bool:
    """Whether ``row``'s flow version has a task that starts child executions.

    Only such a task links children (`Engine.start_execution`'s ``parent``, which the child
    flow integration passes), so an execution of a version without one, never redriven from
    another version, has none to stop: its end runs no query for them.
    """
    try:
        flow, interp = applier.flow_for(tx, row.flow_name, row.flow_id, row.flow_version)
    except (EngineError, ValueError):  # its definition cannot be loaded: look to be safe
        return True
    known = _starts_children.get(interp)
    if known is None:
        known = any(
            isinstance(step, TaskStep)
            and names_child_flow(
                str(step.resource_arn) if step.resource_arn is not None else step.action or ""
            )
            for _, step in flow.walk()
        )
        _starts_children[interp] = known
    return known


def _walk_down(
    applier: Applier, tx: Transaction, ctx: TxContext, queue: list[tuple[ExecutionRow, str]]
) -> None:
    """Stop the running children of each queued execution, breadth first, within the budgets."""
    stopped = read = 0
    for ended, status in queue:  # grows while it is walked: stopped children join it
        after = 0
        while True:
            children = tx.children_of(ended.id, after, _PAGE)
            read += len(children)
            for child in children:
                if not _stops(ended, status, child):
                    continue
                if stopped >= MAX_STOPPED_PER_TRANSACTION:
                    _over_budget(queue[0][0], "descendants stopped")
                    return
                locked = tx.lock_execution(child.id)
                if locked is None or locked.status != "Running":
                    continue  # it ended meanwhile
                applier.apply_alone(tx, ctx, locked, Stop("", stop_cause(ended, status)))
                stopped += 1
            if len(children) < _PAGE:
                break
            if read >= MAX_LINKS_READ:
                _over_budget(queue[0][0], "links read")
                return
            after = children[-1].id


def _stops(parent: ExecutionRow, status: str, child: ExecutionRow) -> bool:
    """Whether ``parent`` ending with ``status`` stops ``child`` (see the module's rule)."""
    if child.status != "Running":
        return False
    if status == "Stopped":
        return True
    return reports_to(child, parent)


def reports_to(child: ExecutionRow, parent: ExecutionRow) -> bool:
    """Whether ``child``'s end reports to a task of ``parent`` (its callback token's)."""
    if not child.callback_token:
        return False
    try:
        parts = parse_token(child.callback_token)
    except EngineError:
        return False
    return (parts.flow_name, parts.execution_name) == (parent.flow_name, parent.name)


def _over_budget(root: ExecutionRow, what: str) -> None:
    log.warning(
        "execution %s/%s ended, and its family is larger than one transaction stops (%s "
        "reached the limit): its remaining running descendants keep running",
        root.flow_name,
        root.name,
        what,
        extra={"flow": root.flow_name, "execution": root.name},
    )


def _ref(row: ExecutionRow) -> ExecutionRef:
    return ExecutionRef(row.flow_name, row.name, row.status)


def with_family(tx: Transaction, row: ExecutionRow, info: ExecutionInfo) -> ExecutionInfo:
    """``info`` with its parent and its first `MAX_CHILDREN_SHOWN` children (oldest first).

    Children are looked for only where a child flow task may have started some: a definition
    that names no `fnf:` resource or action (`acs:fnf:...`, `fnf:StartExecution`), never
    redriven from another, has none (one query saved on every DescribeExecution of the many
    flows without child flows, a queue named `fnf-demo` included).
    """
    parent = tx.parent_of(row.id)
    children: list[ExecutionRow] = []
    if "fnf:" in info.flow_definition or not info.flow_definition or info.redrive_count:
        children = tx.children_of(row.id, 0, MAX_CHILDREN_SHOWN)
    if parent is None and not children:
        return info
    return dataclasses.replace(
        info,
        parent=None if parent is None else _ref(parent),
        children=tuple(_ref(child) for child in children),
    )


class FamilyOperations:
    """The family of an execution, as `Engine` methods.

    Families need no operation of their own: `Engine.start_execution` links a child to its
    parent (``parent=``), `Engine.describe_execution` names both, and ending an execution
    stops children by this module's rule.
    """

    _runtime: Runtime
