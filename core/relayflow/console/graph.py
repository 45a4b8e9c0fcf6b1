"""A flow definition drawn as a graph: nodes with positions, edges and lanes, as JSON.

`flow_graph(flow)` takes a parsed `relayflow.fdl.Flow` (from `load_flow`) and answers the
JSON of `GET /console/graph`; the console draws it as SVG. The layout is layered, top to
bottom and deterministic: serial steps stay in one column, the branches of a choice or a
parallel and a foreach's iteration stand side by side as lanes inside their step's box,
nested as deeply as the flow nests; a step's node sits at its lane's centre line.

The answer (all coordinates in pixels, origin at the top left, `x`/`y` the top left corner)::

    {
      "width": 640, "height": 900,            # the whole drawing
      "steps": 12,                             # the flow's step count, nested ones included
      "nodes": [{
        "id": "fork/startSubflow",            # the rule below
        "name": "startSubflow",               # the step's name ("" for start, end and joins)
        "type": "task",                        # task pass wait choice parallel foreach succeed
                                               # fail (or a plugin's type), start, end, join
        "path": "steps.0.steps.0",             # where the step is in the definition
        "label": "startSubflow",               # the name, cut to 28 characters
        "sublabel": "subflowSamples/startSubflow (waitForCallback)",  # a short line, or ""
        "x": 10, "y": 80, "width": 180, "height": 44,
        "group": "fork/~lane",                 # the lane the node is in (null: the top
                                               # level); a join's is its container's box
        "detail": {...}                        # the step's settings, below
      }],
      "edges": [{
        "from": "init", "to": "listObjects",
        "kind": "next",                        # next choice default goto catch retry
        "label": "",                           # condition text (cut), errors, "otherwise"...
        "condition": "$.hasMore",              # choice edges only: the full condition
        "errors": ["FnF.ALL"],                 # catch and retry edges only
        "points": [[100, 124], [100, 160]],    # a polyline; the arrow head is at the end
        "labelAt": [104, 142]                  # where the label's text may start (left end,
                                               # baseline), clear of the other edges' labels
                                               # where the layout can tell
      }],
      "groups": [{
        "id": "fork", "kind": "foreach",       # parallel foreach choice (a step's box), or
                                               # branch iteration case default (one lane)
        "node": "fork",                        # the step whose box or lane it is
        "label": "for each key in $.keys",
        "parent": null,                        # the enclosing group's id
        "x": 0, "y": 70, "width": 220, "height": 300
      }]
    }

**Node ids.** A top-level step's id is its name; a nested step's id is its container's id,
`/`, the list it is in when the container has several (`branches.0`, `choices.2`, `default`;
nothing for a foreach's one list), `/`, and its name: `fork/startSubflow`,
`checks/branches.1/lookup`, `route/choices.0/notify`. In names, `~` is written `~0` and `/` is
written `~1` (as in JSON Pointer), so ids never collide. `~start` and `~end` are the flow's
start and end; a container's join (where its lanes meet again) is its id plus `/~join`. Lane
groups are a container's id plus `/~lane` (a foreach) or `/<list>` (`branches.0`, ...). Every
step appears exactly once, whatever it runs as (loops, iterations): the execution view's step
states use the same ids (`relayflow.console.view`).

**Details.** Only what is set: a task's `resource`, `pattern`, `timeoutSeconds`,
`correlationKey`; a wait's `duration` or `timestamp`; a choice's `choices` (`condition`,
`goto`, `steps`: how many) and `default`; a parallel's `branches` (how many); a foreach's
`collection`, `item`, `index`; a fail's `error` and `cause`; `retry` and `catch` as in the
definition (camelCase); `end: true`.

**Edges.** `next` edges join steps of one list (and a container to its lanes, lanes to the
join); `choice` and `default` edges leave a choice with their condition; `goto` edges leave a
choice branch's last step for the choice's `goto`; `catch` edges go from a step to its catch's
target; `retry` edges are a step's loop onto itself, with the policy in `detail`-like fields
(`maxAttempts`, `intervalSeconds`). Edges between steps that are not one below the other run
in a channel on the right of the list that holds both, so they cross no node of that list;
edges whose rows overlap get channels of their own, the shortest nearest the steps.

**Limits.** A definition is bounded before it gets here (256 KiB, `relayflow.limits`); a flow
of more than `MAX_GRAPH_STEPS` steps is refused with `InvalidArgument` (it would not be legible
anyway). A flow of 800 steps takes about 0.1 s and 550 KB of JSON; texts in labels and
details are cut (`MAX_LABEL`, `MAX_TEXT`), the full step being in the definition itself.
"""

from __future__ import annotations

from typing import Any

from relayflow.console.layout_geometry import layout
from relayflow.console.layout_tree import (
    END,
    MAX_LABEL,
    MAX_TEXT,
    START,
    LaneBox,
    Node,
    StepBox,
    Tree,
    build,
    escape,
)
from relayflow.errors import EngineError
from relayflow.fdl import Flow

__all__ = ["END", "MAX_GRAPH_STEPS", "MAX_LABEL", "MAX_TEXT", "START", "escape", "flow_graph"]

#: The most steps (nested ones included) a drawn flow may have.
MAX_GRAPH_STEPS = 2000


def flow_graph(flow: Flow) -> dict[str, Any]:
    """The JSON of ``flow`` drawn as a graph (the shape is in this module's docstring).

    Raises:
        EngineError: `InvalidArgument` when the flow has more than `MAX_GRAPH_STEPS` steps.
    """
    count = flow.step_count()
    if count > MAX_GRAPH_STEPS:
        raise EngineError.of(
            "InvalidArgument",
            f"the flow has {count} steps; the console draws flows of at most "
            f"{MAX_GRAPH_STEPS} (its definition and outline still show it)",
        )
    tree = build(flow)
    width, height = layout(tree)
    return {
        "width": width,
        "height": height,
        "steps": tree.steps,
        "nodes": [_node(node) for node in tree.nodes],
        "edges": [_edge_json(tree, i) for i in range(len(tree.edges))],
        "groups": list(_groups(tree.root, None)),
    }


def _node(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "type": node.type,
        "path": node.path,
        "label": node.label,
        "sublabel": node.sublabel,
        "x": round(node.x, 1),
        "y": round(node.y, 1),
        "width": node.width,
        "height": node.height,
        "group": node.group,
        "detail": node.detail,
    }


def _edge_json(tree: Tree, index: int) -> dict[str, Any]:
    edge = tree.edges[index]
    doc: dict[str, Any] = {
        "from": edge.source.id,
        "to": edge.target.id,
        "kind": edge.kind,
        "label": edge.label,
    }
    doc.update(edge.extra)
    doc["points"] = [[x, y] for x, y in edge.points]
    doc["labelAt"] = [round(edge.label_at[0], 1), round(edge.label_at[1], 1)]
    return doc


def _box(x: float, y: float, width: float, height: float) -> dict[str, float]:
    return {
        "x": round(x, 1),
        "y": round(y, 1),
        "width": round(width, 1),
        "height": round(height, 1),
    }


def _groups(lane: LaneBox, parent: str | None) -> Any:
    """The containers' boxes and their lanes, outermost first, in document order."""
    for box in lane.items:
        if not box.lanes:
            continue
        yield {
            "id": box.node.id,
            "kind": box.kind,
            "node": box.node.id,
            "label": box.label,
            "parent": parent,
            **_box(box.x, box.y, box.width, box.height),
        }
        yield from _lanes(box)


def _lanes(box: StepBox) -> Any:
    for sub in box.lanes:
        yield {
            "id": sub.id,
            "kind": sub.kind,
            "node": box.node.id,
            "label": sub.label,
            "parent": box.node.id,
            **_box(sub.x, sub.y, sub.width, sub.height),
        }
        yield from _groups(sub, sub.id)
