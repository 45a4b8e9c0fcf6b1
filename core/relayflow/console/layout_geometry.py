"""Sizes and places a flow's drawing (`relayflow.console.layout_tree`), then routes its edges.

Two passes over the tree: `measure` works bottom up (a lane is as wide as its widest step plus
its channels, a container as wide as its lanes side by side), `place` top down (each lane's
steps stand one below the other on its centre line). Nothing is placed where something else
is: steps of a lane are rows, lanes of a container are columns, so node boxes cannot overlap.
"""

from __future__ import annotations

from itertools import pairwise

from relayflow.console.layout_tree import (
    JOIN_H,
    LANE_PAD,
    NODE_H,
    NODE_W,
    Edge,
    LaneBox,
    Node,
    StepBox,
    Tree,
)

__all__ = ["MARGIN", "layout"]

MARGIN = 16.0
GAP = 36.0  # between two steps of a lane
LANE_TOP = 16.0  # above a lane's first step
LANE_BOTTOM = 20.0  # below its last
EMPTY_W = 40.0  # a lane with no steps (a choice branch that only flows on)
EMPTY_H = 24.0
BOX_PAD = 12.0  # inside a container's box, around its header, lanes and join
FAN = 32.0  # between a container's header and its lanes
BUS = 40.0  # between its lanes and its join; the bus runs in it
LANE_GAP = 16.0
CH_PAD = 14.0  # between a lane's widest step and its first channel
CH_STEP = 10.0  # between channels
LOOP = 12.0  # how far a retry loop reaches left of its node


def _measure_lane(lane: LaneBox) -> None:
    for box in lane.items:
        _measure_box(box)
    if lane.items:
        lane.items_width = max(box.width for box in lane.items)
        lane.height = (
            LANE_TOP + sum(box.height for box in lane.items) + GAP * (len(lane.items) - 1)
        ) + LANE_BOTTOM
    else:
        lane.items_width = EMPTY_W
        lane.height = LANE_TOP + EMPTY_H + LANE_BOTTOM
    # Channels run on the right; as much room on the left keeps the steps on the lane's centre.
    channels = CH_PAD + lane.channels * CH_STEP if lane.channels else 0.0
    lane.width = 2 * (LANE_PAD + channels) + lane.items_width


def _measure_box(box: StepBox) -> None:
    if not box.lanes:
        box.width, box.height = box.node.width, box.node.height
        return
    for lane in box.lanes:
        _measure_lane(lane)
    lanes_width = sum(lane.width for lane in box.lanes) + LANE_GAP * (len(box.lanes) - 1)
    box.width = max(NODE_W, lanes_width) + 2 * BOX_PAD
    tallest = max(lane.height for lane in box.lanes)
    box.height = BOX_PAD + NODE_H + FAN + tallest + BUS + JOIN_H + BOX_PAD


def _place_lane(lane: LaneBox, x: float, y: float) -> None:
    lane.x, lane.y = x, y
    axis = lane.axis
    top = y + LANE_TOP
    for box in lane.items:
        _place_box(box, axis - box.width / 2, top)
        top += box.height + GAP


def _place_box(box: StepBox, x: float, y: float) -> None:
    box.x, box.y = x, y
    node = box.node
    if not box.lanes:
        node.x, node.y = x, y
        return
    centre = x + box.width / 2
    node.x, node.y = centre - node.width / 2, y + BOX_PAD
    lanes_width = sum(lane.width for lane in box.lanes) + LANE_GAP * (len(box.lanes) - 1)
    left = centre - lanes_width / 2
    top = node.y + node.height + FAN
    tallest = max(lane.height for lane in box.lanes)
    for lane in box.lanes:
        _place_lane(lane, left, top)
        lane.height = tallest  # lanes of one container end level, above the bus
        left += lane.width + LANE_GAP
    bottom = top + tallest
    box.bus_y = bottom + BUS * 0.3
    assert box.join is not None
    box.join.x, box.join.y = centre - box.join.width / 2, bottom + BUS


# -- edges -------------------------------------------------------------------------------------


def _cx(node: Node) -> float:
    return node.x + node.width / 2


def _mid(node: Node) -> float:
    return node.y + node.height / 2


def _channel(lane: LaneBox, slot: int) -> float:
    return lane.axis + lane.items_width / 2 + CH_PAD + slot * CH_STEP


def _lane_end(lane: LaneBox) -> float:
    return lane.y + lane.height - LANE_BOTTOM / 2


def _route(edge: Edge) -> list[tuple[float, float]]:
    s, t = edge.source, edge.target
    if edge.route == "loop":
        reach = LOOP + 4 * min(edge.slot, 2)
        top, bottom = s.y + s.height * 0.3, s.y + s.height * 0.7
        return [(s.x, top), (s.x - reach, top), (s.x - reach, bottom), (s.x, bottom)]
    if edge.route == "down":
        if abs(_cx(s) - _cx(t)) < 0.5:
            return [(_cx(s), s.y + s.height), (_cx(t), t.y)]
        bend = (s.y + s.height + t.y) / 2
        return [(_cx(s), s.y + s.height), (_cx(s), bend), (_cx(t), bend), (_cx(t), t.y)]
    if edge.route == "fan":
        assert edge.lane is not None and edge.lane.owner is not None
        lane, owner = edge.lane, edge.lane.owner
        bend = s.y + s.height + FAN / 2
        points = [(_cx(s), s.y + s.height), (_cx(s), bend), (lane.axis, bend)]
        if lane.items:
            return [*points, (lane.axis, t.y)]
        return [*points, (lane.axis, owner.bus_y), (_cx(t), owner.bus_y), (_cx(t), t.y)]
    if edge.route == "bus":
        assert edge.lane is not None and edge.lane.owner is not None
        bus = edge.lane.owner.bus_y
        return [(_cx(s), s.y + s.height), (_cx(s), bus), (_cx(t), bus), (_cx(t), t.y)]
    return _side(edge)


def _side(edge: Edge) -> list[tuple[float, float]]:
    """Through a channel: out of the source's right side, down or up, into the target's."""
    s, t = edge.source, edge.target
    assert edge.lane is not None
    x = _channel(edge.lane, edge.slot)
    if edge.into is not None:  # an early end of a lane: down its channel, then the bus
        lane, join = edge.lane, edge.target
        bus = edge.into.bus_y
        end = _lane_end(lane)
        return [
            (s.x + s.width, _mid(s)),
            (x, _mid(s)),
            (x, end),
            (lane.axis, end),
            (lane.axis, bus),
            (_cx(join), bus),
            (_cx(join), join.y),
        ]
    points: list[tuple[float, float]]
    if edge.out_of is not None:  # leaves a container's lane for a sibling of the container
        drop = edge.out_of.bus_y + 8 + 4 * min(edge.slot, 4)  # above the join, one lane each
        if edge.inner is not None:
            inner = _channel(edge.inner, edge.inner_slot)
            points = [(s.x + s.width, _mid(s)), (inner, _mid(s)), (inner, drop)]
        else:
            points = [(_cx(s), s.y + s.height), (_cx(s), drop)]
        points.append((x, drop))
    else:
        points = [(s.x + s.width, _mid(s)), (x, _mid(s))]
    return [*points, (x, _mid(t)), (t.x + t.width, _mid(t))]


def _tidy(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Rounded, without repeated points or points in the middle of a straight run."""
    out: list[tuple[float, float]] = []
    for x, y in points:
        p = (round(x, 1), round(y, 1))
        if out and out[-1] == p:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if (ax == bx == p[0]) or (ay == by == p[1]):
                out[-1] = p
                continue
        out.append(p)
    return out


def _label_at(edge: Edge) -> tuple[float, float]:
    """Where an edge's label starts: by its lane's entry, its channel, or its longest run."""
    points = edge.points
    if edge.route == "fan" and len(points) >= 2:
        x, y = points[-2]
        return x + 4, y + 12
    if edge.route == "side" and len(points) >= 2:
        x, y = points[1] if edge.out_of is None else points[-3]
        return x + 3, y - 4
    best = max(
        pairwise(points),
        key=lambda ab: abs(ab[0][0] - ab[1][0]) + abs(ab[0][1] - ab[1][1]),
    )
    (ax, ay), (bx, by) = best
    return round((ax + bx) / 2 + 4, 1), round((ay + by) / 2, 1)


def layout(tree: Tree) -> tuple[float, float]:
    """Place every node of ``tree`` and route every edge; the drawing's width and height."""
    root = tree.root
    _measure_lane(root)
    _place_lane(root, MARGIN, MARGIN + tree.start.height + GAP - LANE_TOP)
    axis = root.axis
    tree.start.x, tree.start.y = axis - tree.start.width / 2, MARGIN
    tree.end.x = axis - tree.end.width / 2
    tree.end.y = root.y + root.height - LANE_BOTTOM + GAP
    for edge in tree.edges:
        edge.points = _tidy(_route(edge))
        edge.label_at = _label_at(edge)
    width = root.width + 2 * MARGIN
    height = tree.end.y + tree.end.height + MARGIN
    return round(width, 1), round(height, 1)
