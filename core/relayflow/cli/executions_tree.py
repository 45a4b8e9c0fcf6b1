"""`relayflow executions tree`: an execution's whole family, from its root ancestor down.

The command walks with DescribeExecution alone: up through `ParentExecution` to the root, then
down through `ChildExecutions` (each child described in turn, for its own children). The walk
is bounded: `--max-depth` levels below the root and `--max-nodes` executions described in all;
what a bound cut off is said in the output (and `"Truncated": true` with `--json`), as is a
node whose `ChildExecutions` was full (the server names the first 100 children).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import click

from relayflow.cli._common import echo_json
from relayflow.cli._remote import client_config_option, connect

if TYPE_CHECKING:
    from relayflow.client import Client, Execution

__all__ = ["add_commands"]

#: What DescribeExecution names of one execution's children, at most.
CHILDREN_SHOWN: Final = 100
DEFAULT_DEPTH: Final = 10
MAX_DEPTH: Final = 50
DEFAULT_NODES: Final = 500
MAX_NODES: Final = 5000


@dataclass
class Node:
    """One execution of the family, as the walk found it."""

    flow_name: str
    name: str
    status: str
    cause: str = ""
    children: list[Node] = field(default_factory=list)
    #: Children that exist but were not described: a bound, or more than the server names.
    more: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"FlowName": self.flow_name, "Name": self.name}
        doc["Status"] = self.status
        if self.cause:
            doc["Cause"] = self.cause
        doc["Children"] = [child.to_json() for child in self.children]
        if self.more:
            doc["MoreChildren"] = self.more
        return doc


class _Walk:
    """The bounded walk: how many executions it has described, and what it cut off."""

    def __init__(self, client: Client, max_depth: int, max_nodes: int) -> None:
        self.client = client
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.described = 0
        self.truncated = False
        self._shown = sys.stderr.isatty()
        self._last = 0.0

    def describe(self, flow_name: str, name: str) -> Execution:
        self.described += 1
        now = time.monotonic()
        if self._shown and now - self._last >= 0.1:
            self._last = now
            click.echo(f"\rreading the family: {self.described} executions", nl=False, err=True)
        return self.client.describe_execution(flow_name, name)

    def done(self) -> None:
        if self._shown and self._last:
            click.echo("\r" + " " * 60 + "\r", nl=False, err=True)

    def root_of(self, execution: Execution) -> tuple[Execution, bool]:
        """The root ancestor (and False), or the highest one within `max_depth` (and True)."""
        seen = {(execution.flow_name, execution.name)}
        for _ in range(self.max_depth):
            ref = execution.parent
            if ref is None or (ref.flow_name, ref.name) in seen:
                return execution, False
            seen.add((ref.flow_name, ref.name))
            execution = self.describe(ref.flow_name, ref.name)
        return execution, execution.parent is not None

    def down(self, execution: Execution, depth: int) -> Node:
        """``execution`` with its descendants, depth first, oldest child first."""
        from relayflow.client import ClientError

        node = Node(execution.flow_name, execution.name, execution.status, execution.cause)
        children = list(execution.children)
        if len(children) >= CHILDREN_SHOWN:
            node.more = f"only the first {CHILDREN_SHOWN} children are shown"
            self.truncated = True
        for index, ref in enumerate(children):
            if depth >= self.max_depth or self.described >= self.max_nodes:
                left = len(children) - index
                node.more = f"{left} more children not shown (--max-depth, --max-nodes)"
                self.truncated = True
                break
            try:
                child = self.describe(ref.flow_name, ref.name)
            except ClientError as exc:
                if exc.code != "ExecutionNotExists":
                    raise
                node.children.append(Node(ref.flow_name, ref.name, "(deleted)"))
                continue
            node.children.append(self.down(child, depth + 1))
        return node


def _lines(node: Node, asked: tuple[str, str], prefix: str = "") -> list[str]:
    """The tree as text lines with ASCII branches; the execution asked for is marked."""
    mark = "   <- this one" if (node.flow_name, node.name) == asked else ""
    lines = [f"{node.flow_name}/{node.name}  {node.status}{mark}"]
    for index, child in enumerate(node.children):
        final = index == len(node.children) - 1 and not node.more
        sub = _lines(child, asked, prefix + ("    " if final else "|   "))
        lines.append(prefix + ("`-- " if final else "|-- ") + sub[0])
        lines.extend(sub[1:])
    if node.more:
        lines.append(f"{prefix}`-- ... {node.more}")
    return lines


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
    group.add_command(executions_tree)


@click.command("tree")
@click.argument("flow")
@click.argument("name")
@click.option(
    "--max-depth",
    type=click.IntRange(1, MAX_DEPTH),
    default=DEFAULT_DEPTH,
    show_default=True,
    metavar="N",
    help="Levels to walk up to the root and down from it.",
)
@click.option(
    "--max-nodes",
    type=click.IntRange(1, MAX_NODES),
    default=DEFAULT_NODES,
    show_default=True,
    metavar="N",
    help="Executions to describe in all; what is left out is said to be cut off.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the family as nested JSON.")
@client_config_option
def executions_tree(
    flow: str, name: str, max_depth: int, max_nodes: int, as_json: bool, config_path: str | None
) -> None:
    """Show the family of the execution NAME of FLOW: its root ancestor and every descendant.

    A child execution is one that a task step started (a flow's `acs:fnf:::flow/NAME` task, or
    `fnf:StartExecution`). The tree starts at the root ancestor and shows each execution with
    its status; the one asked for is marked.

    \b
      relayflow executions tree orders o-7
      relayflow executions tree orders o-7 --json
      relayflow executions tree orders o-7 --max-depth 3 --max-nodes 50

    \b
      orders/o-7  Stopped
      |-- audit/audit-of-o-7  Stopped   <- this one
      |   `-- ledger/child-9b1c0d3e  Stopped
      `-- mail/child-77d0e2a1  Succeeded

    --json prints {"Tree": {"FlowName", "Name", "Status", "Cause", "Children": [...],
    "MoreChildren"}, "Truncated": true|false}. Exit codes: 0 shown; 1 the server refused (an
    unknown execution, say) or cannot be reached; 2 bad local input.
    """
    with connect(config_path) as client:
        walk = _Walk(client, max_depth, max_nodes)
        try:
            asked = walk.describe(flow, name)
            root, cut_above = walk.root_of(asked)
            tree = walk.down(root, 0)
        finally:
            walk.done()
    truncated = walk.truncated or cut_above
    if as_json:
        echo_json({"Tree": tree.to_json(), "Truncated": truncated})
        return
    if cut_above:
        click.echo(f"(the root is more than {max_depth} levels up: showing from here)")
    for line in _lines(tree, (flow, name)):
        click.echo(line)
