"""The structure of a flow's drawing: nodes, lanes and edges, before anything has a position.

`build` walks a `Flow` into a tree of lists (`LaneBox`) and steps (`StepBox`) and the edges
between their nodes, with how each edge is to be routed; `relayflow.console.layout_geometry`
then sizes and places the tree and turns routes into points. The rules for ids are in
`relayflow.console.graph`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relayflow.console.layout_detail import MAX_LABEL, MAX_TEXT, cut, step_detail
from relayflow.fdl import (
    ChoiceStep,
    FailStep,
    Flow,
    ForeachStep,
    ParallelStep,
    StepBase,
    SucceedStep,
)

__all__ = [
    "MAX_LABEL",
    "MAX_TEXT",
    "Edge",
    "LaneBox",
    "Node",
    "StepBox",
    "Tree",
    "build",
    "cut",
    "escape",
]

# Node sizes, and the space on each side of a lane's steps (retry loops run in it on the left).
NODE_W, NODE_H = 180.0, 44.0
JOIN_W, JOIN_H = 20.0, 20.0
ENDS_W, ENDS_H = 36.0, 36.0
LANE_PAD = 24.0

START = "~start"
END = "~end"


def escape(name: str) -> str:
    """A step name as one segment of a node id: `~` becomes `~0` and `/` becomes `~1`."""
    return name.replace("~", "~0").replace("/", "~1")


@dataclass(eq=False)
class Node:
    """One box of the drawing: a step, a container's join, or the flow's start or end."""

    id: str
    name: str
    type: str
    path: str
    label: str
    sublabel: str
    width: float
    height: float
    group: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    x: float = 0.0
    y: float = 0.0


@dataclass(eq=False)
class LaneBox:
    """A serial list drawn as a column: the flow's steps, or one lane of a container."""

    id: str  # "" for the flow's own list
    kind: str  # flow, branch, iteration, case, default
    label: str
    owner: StepBox | None
    items: list[StepBox] = field(default_factory=list)
    channels: int = 0  # edges routed on this list's right
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0
    y: float = 0.0

    items_width: float = 0.0  # the widest of its steps' boxes

    @property
    def axis(self) -> float:
        """The x of the centre line its steps stand on (once placed)."""
        return self.x + self.width / 2


@dataclass(eq=False)
class StepBox:
    """One step in its list: its node, and for a container its lanes and join."""

    node: Node
    step: StepBase | None
    lane: LaneBox
    kind: str  # leaf, or the group kind: parallel, foreach, choice, group
    label: str = ""
    lanes: list[LaneBox] = field(default_factory=list)
    join: Node | None = None
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0
    y: float = 0.0
    bus_y: float = 0.0  # where lanes meet before the join (set by the geometry)

    @property
    def exit(self) -> Node:
        """The node the step is left from: its join when it has lanes, else itself."""
        return self.join if self.join is not None else self.node


@dataclass(eq=False)
class Edge:
    """An edge and how to route it.

    Routes: `down` (the target stands right below in the same column), `fan` (a container to
    the first node of one of its lanes; `lane` names it), `bus` (a lane's end to its
    container's join; `lane` names the lane), `side` (through the channel of
    `lane`, slot `slot`), `loop` (a retry, on the node's left).
    """

    source: Node
    target: Node
    kind: str
    route: str
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    lane: LaneBox | None = None  # fan and bus: the lane; side: the lane whose channel it uses
    slot: int = 0
    # A side edge from a step inside a container's lane to a target outside it (a choice
    # branch's goto) first drops to the container's bus level: `out_of` is that container.
    out_of: StepBox | None = None
    # A side or goto edge from a step that is not its lane's last runs down the lane's own
    # channel first: `inner` is that lane, `inner_slot` its slot there.
    inner: LaneBox | None = None
    inner_slot: int = 0
    # A side edge to the join of `into`, from a step that ends its lane early (`end: true`).
    into: StepBox | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    label_at: tuple[float, float] = (0.0, 0.0)


@dataclass(eq=False)
class Tree:
    """The flow's drawing before geometry: the top list, every node and every edge."""

    root: LaneBox
    start: Node
    end: Node
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    steps: int = 0


class _Builder:
    def __init__(self, end: Node) -> None:
        self.end = end
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.steps = 0
        self.rows: dict[Node, int] = {end: 0}  # each node's row in its lane
        self.uses: dict[LaneBox, list[tuple[int, int, int, Edge, str]]] = {}

    def node(self, nid: str, step: StepBase, path: str, group: str | None) -> Node:
        sub, detail = step_detail(step)
        node = Node(
            nid, step.name, step.type, path, cut(step.name, MAX_LABEL), sub, NODE_W, NODE_H, group
        )
        node.detail = detail
        self.nodes.append(node)
        return node

    def edge(self, source: Node, target: Node, kind: str, route: str, **kw: Any) -> Edge:
        e = Edge(source, target, kind, route, **kw)
        self.edges.append(e)
        return e

    def side(
        self,
        lane: LaneBox,
        source: Node,
        target: Node,
        kind: str,
        origin: Node | None = None,
        **kw: Any,
    ) -> Edge:
        """An edge through ``lane``'s channel; ``origin`` is the source's row there if not it."""
        edge = self.edge(source, target, kind, "side", lane=lane, **kw)
        self.channel(lane, self.rows[origin or source], self.rows[target], edge, "slot")
        return edge

    def channel(self, lane: LaneBox, a: int, b: int, edge: Edge, attr: str) -> None:
        """Book ``edge`` a channel of ``lane`` from row ``a`` to row ``b`` (numbered later)."""
        self.uses.setdefault(lane, []).append((min(a, b), max(a, b), len(self.edges), edge, attr))

    def assign_channels(self) -> None:
        """Number each lane's channels: shortest edges nearest the steps, so fewer cross.

        Edges whose rows do not overlap share a channel, which keeps a long flow with many
        gotos narrow.
        """
        for lane, uses in self.uses.items():
            taken: list[list[tuple[int, int]]] = []  # each channel's booked row ranges
            for lo, hi, _, edge, attr in sorted(uses, key=lambda u: (u[1] - u[0], u[2])):
                slot = next(
                    (
                        n
                        for n, ranges in enumerate(taken)
                        if all(hi < a or b < lo for a, b in ranges)
                    ),
                    len(taken),
                )
                if slot == len(taken):
                    taken.append([])
                taken[slot].append((lo, hi))
                setattr(edge, attr, slot)
            lane.channels = len(taken)

    # -- lists ----------------------------------------------------------------------------------

    def lane(self, lane: LaneBox, steps: list[StepBase], prefix: str, path: str) -> None:
        """Build ``steps`` into ``lane``: their boxes, and their lanes' boxes."""
        group = lane.id or None
        for i, step in enumerate(steps):
            self.steps += 1
            nid = prefix + escape(step.name)
            box = StepBox(self.node(nid, step, f"{path}.{i}", group), step, lane, "leaf")
            lane.items.append(box)
            self.container(box, step, nid, f"{path}.{i}")
            self.rows[box.node] = i
            if box.join is not None:
                self.rows[box.join] = i

    def wire(self, lane: LaneBox) -> None:
        """The edges of ``lane``'s steps, once every step of the flow has its box.

        Inner lanes are wired first: whether a choice's join is reached depends on them.
        """
        for box in lane.items:
            for sub in box.lanes:
                self.wire(sub)
        names = {box.node.name: box for box in lane.items}
        for i, box in enumerate(lane.items):
            step = box.step
            assert step is not None
            for p, policy in enumerate(getattr(step, "retry", None) or []):
                self.edge(
                    box.node,
                    box.node,
                    "retry",
                    "loop",
                    label=f"retry ×{policy.max_attempts}",
                    slot=p,
                    extra={
                        "errors": list(policy.errors),
                        "maxAttempts": policy.max_attempts,
                        "intervalSeconds": policy.interval_seconds,
                    },
                )
            for policy in getattr(step, "catch", None) or []:
                target = names.get(policy.goto)
                if target is not None:
                    self.side(
                        lane,
                        box.node,
                        target.node,
                        "catch",
                        label=cut(", ".join(policy.errors), MAX_LABEL + 12),
                        extra={"errors": list(policy.errors)},
                    )
            if isinstance(step, ChoiceStep):
                self.choice_edges(box, step, names)
                join = box.join
                if join is not None and not any(e.target is join for e in self.edges):
                    self.nodes.remove(join)  # every lane leaves by a goto: nothing flows on
                    box.join = None
                if box.join is None:
                    continue
            if isinstance(step, FailStep):
                continue
            ends = isinstance(step, SucceedStep) or bool(getattr(step, "end", False))
            last = i == len(lane.items) - 1
            if not ends and not last:
                self.edge(box.exit, lane.items[i + 1].node, "next", "down")
            else:
                self.to_exit(lane, box, last)

    def to_exit(self, lane: LaneBox, box: StepBox, last: bool) -> None:
        """An edge from ``box`` to the end of ``lane``: the flow's end, a join, or a goto."""
        owner = lane.owner
        if owner is None:  # the flow's own list
            if last:
                self.edge(box.exit, self.end, "next", "down")
            else:
                self.side(lane, box.exit, self.end, "next")
            return
        step = owner.step
        goto = _branch_goto(step, lane)
        if goto is not None:
            target = {b.node.name: b for b in owner.lane.items}.get(goto)
            if target is None:
                return
            edge = self.side(
                owner.lane, box.exit, target.node, "goto", owner.node, label=f"goto {goto}"
            )
            edge.out_of = owner
            if not last:  # first down its own lane's channel
                edge.inner = lane
                self.channel(lane, self.rows[box.node], len(lane.items), edge, "inner_slot")
            return
        assert owner.join is not None
        if last:
            self.edge(box.exit, owner.join, "next", "bus", lane=lane)
        else:
            edge = self.side(lane, box.exit, owner.join, "next")
            edge.into = owner
            # it ends at the lane's bottom, below the last step
            self.uses[lane][-1] = (self.rows[box.node], len(lane.items), *self.uses[lane][-1][2:])

    # -- containers -----------------------------------------------------------------------------

    def container(self, box: StepBox, step: StepBase, nid: str, path: str) -> None:
        """Give a step that holds lists its lanes and join."""
        # The join exists before the lanes are built: their last steps' edges go to it.
        box.join = Node(f"{nid}/~join", "", "join", path, "", "", JOIN_W, JOIN_H, nid)
        if isinstance(step, ParallelStep):
            box.kind = "parallel"
            box.label = f"parallel {step.name}"
            for b, branch in enumerate(step.branches):
                lane = LaneBox(f"{nid}/branches.{b}", "branch", f"branch {b + 1}", box)
                box.lanes.append(lane)
                self.lane(lane, list(branch.steps), lane.id + "/", f"{path}.branches.{b}.steps")
        elif isinstance(step, ForeachStep):
            box.kind = "foreach"
            it = step.iteration_mapping
            box.label = cut(f"for each {it.item} in {it.collection.raw}", MAX_TEXT)
            lane = LaneBox(f"{nid}/~lane", "iteration", "each iteration", box)
            box.lanes.append(lane)
            self.lane(lane, list(step.steps), nid + "/", f"{path}.steps")
        elif isinstance(step, ChoiceStep):
            self.choice_lanes(box, step, nid, path)
        else:
            lists = step.child_step_lists()
            box.kind = "group"
            box.label = f"{step.type} {step.name}"
            for sub, children in lists:
                key = ".".join(str(p) for p in sub[:-1] if sub[-1] == "steps") or ".".join(
                    str(p) for p in sub
                )
                lane = LaneBox(f"{nid}/{key}", "branch", key, box)
                box.lanes.append(lane)
                self.lane(lane, children, lane.id + "/", f"{path}.{'.'.join(map(str, sub))}")
        if box.lanes:
            self.nodes.append(box.join)
        else:
            box.join, box.kind = None, "leaf"

    def choice_lanes(self, box: StepBox, step: ChoiceStep, nid: str, path: str) -> None:
        """A lane per branch that has steps or flows on; goto-only branches have none."""
        lanes: list[tuple[str, str, str, list[StepBase], str]] = []
        for c, branch in enumerate(step.choices):
            if branch.steps or branch.goto is None:
                text = cut(branch.condition.text, MAX_LABEL + 12)
                lanes.append((f"choices.{c}", "case", text, list(branch.steps or []), path))
        default = step.default
        if default is None or default.steps or default.goto is None:
            steps = list(default.steps or []) if default is not None else []
            lanes.append(("default", "default", "otherwise", steps, path))
        if not lanes:
            return
        box.kind = "choice"
        box.label = f"choice {step.name}"
        for key, kind, label, steps, _ in lanes:
            lane = LaneBox(f"{nid}/{key}", kind, label, box)
            box.lanes.append(lane)
            self.lane(lane, steps, lane.id + "/", f"{path}.{key}.steps")

    def choice_edges(self, box: StepBox, step: ChoiceStep, names: dict[str, StepBox]) -> None:
        """From a choice to each branch: into its lane, or straight to its goto target."""
        lanes = {lane.id.rsplit("/", 1)[-1]: lane for lane in box.lanes}
        branches: list[tuple[str, str, str, str | None]] = [
            (f"choices.{c}", "choice", b.condition.text, b.goto) for c, b in enumerate(step.choices)
        ]
        branches.append(
            ("default", "default", "otherwise", step.default.goto if step.default else None)
        )
        for key, kind, text, goto in branches:
            extra: dict[str, Any] = {"condition": text} if kind == "choice" else {}
            label = cut(text, MAX_LABEL + 12)
            lane = lanes.get(key)
            if lane is None:  # goto only
                target = names.get(goto or "")
                if target is not None:
                    self.side(box.lane, box.node, target.node, kind, label=label, extra=extra)
                continue
            first = lane.items[0].node if lane.items else box.join
            assert first is not None
            self.edge(box.node, first, kind, "fan", lane=lane, label=label, extra=extra)


def _branch_goto(step: StepBase | None, lane: LaneBox) -> str | None:
    """The goto a choice branch's lane ends with, if any."""
    if not isinstance(step, ChoiceStep):
        return None
    key = lane.id.rsplit("/", 1)[-1]
    if key == "default":
        return step.default.goto if step.default is not None else None
    return step.choices[int(key.split(".", 1)[1])].goto


def build(flow: Flow) -> Tree:
    """The drawing's structure of ``flow``: every step's node, the lanes and the edges."""
    start = Node(START, "", "start", "", "start", "", ENDS_W, ENDS_H, None)
    end = Node(END, "", "end", "", "end", "", ENDS_W, ENDS_H, None)
    b = _Builder(end)
    root = LaneBox("", "flow", "", None)
    b.nodes.append(start)
    b.lane(root, list(flow.steps), "", "steps")
    b.rows[end] = len(root.items)
    b.wire(root)
    b.assign_channels()
    b.nodes.append(end)
    b.edge(start, root.items[0].node, "next", "down")
    _fan_parallel(b, root)
    return Tree(root, start, end, b.nodes, b.edges, b.steps)


def _fan_parallel(b: _Builder, lane: LaneBox) -> None:
    """Edges from parallels, foreaches and plugin containers into each of their lanes."""
    for box in lane.items:
        if box.kind in ("parallel", "foreach", "group"):
            for sub in box.lanes:
                first = sub.items[0].node if sub.items else box.join
                assert first is not None
                b.edge(box.node, first, "next", "fan", lane=sub)
        for sub in box.lanes:
            _fan_parallel(b, sub)
