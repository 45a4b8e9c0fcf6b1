"""The console's flow graph: every corpus flow and a 100-step flow laid out legibly."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any, Literal

import pytest
import yaml

from relayflow.console.graph import MAX_GRAPH_STEPS, flow_graph
from relayflow.errors import EngineError
from relayflow.fdl import (
    Flow,
    StepBase,
    load_flow,
    load_flow_file,
    register_step_type,
    unregister_step_type,
)
from relayflow.testing import fdl
from tests.helpers import EXAMPLES, corpus_files

FLOWS = corpus_files() + sorted(EXAMPLES.glob("*.yaml"))


def big_flow(blocks: int = 10) -> dict[str, Any]:
    """A flow of 10 steps per block: tasks with retry and catch, a choice with a lane and a
    goto, a parallel of two branches, a foreach holding a choice, and a wait."""
    steps: list[dict[str, Any]] = []
    for b in range(blocks):
        p = f"b{b}"
        steps += [
            {
                "type": "task",
                "name": f"{p}_fetch",
                "resourceArn": f"acs:fc:::services/s/functions/fetch{b}",
                "retry": [{"errors": ["FC.Unknown"], "maxAttempts": 2}],
                "catch": [{"errors": ["FnF.ALL"], "goto": f"{p}_recover"}],
            },
            {
                "type": "choice",
                "name": f"{p}_route",
                "choices": [
                    {
                        "condition": f"$.n > {b}",
                        "steps": [{"type": "pass", "name": "big"}],
                    },
                    {"condition": "$.skip == true", "goto": f"{p}_wait"},
                ],
                "default": {"steps": [{"type": "pass", "name": "small"}]},
            },
            {
                "type": "parallel",
                "name": f"{p}_fan",
                "branches": [
                    {
                        "steps": [
                            {"type": "pass", "name": "left"},
                            {
                                "type": "task",
                                "name": "call",
                                "resourceArn": "acs:fc:::services/s/functions/f",
                            },
                        ]
                    },
                    {"steps": [{"type": "pass", "name": "right"}]},
                ],
            },
            {
                "type": "foreach",
                "name": f"{p}_each",
                "iterationMapping": {"collection": "$.items", "item": "it"},
                "steps": [
                    {
                        "type": "choice",
                        "name": "pick",
                        "choices": [{"condition": "$.it > 1", "goto": "odd"}],
                        "default": {"goto": "odd"},
                    },
                    {"type": "pass", "name": "odd"},
                ],
            },
            {"type": "pass", "name": f"{p}_recover"},
            {"type": "wait", "name": f"{p}_wait", "duration": 1},
        ]
    steps.append({"type": "succeed", "name": "done"})
    return {"version": "v1", "type": "flow", "steps": steps}


def overlapping(nodes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of node boxes that share any area (a sweep over x)."""
    boxes = sorted(nodes, key=lambda n: n["x"])
    found: list[tuple[str, str]] = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if b["x"] >= a["x"] + a["width"]:
                break
            if b["y"] < a["y"] + a["height"] and a["y"] < b["y"] + b["height"]:
                found.append((a["id"], b["id"]))
    return found


def crossed(graph: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(from, to, node) for each edge segment that runs through a node not its own end."""
    found: list[tuple[str, str, str]] = []
    for edge in graph["edges"]:
        points = edge["points"]
        for (ax, ay), (bx, by) in pairwise(points):
            assert ax == bx or ay == by, f"edge segments are vertical or horizontal: {edge}"
            for n in graph["nodes"]:
                if n["id"] in (edge["from"], edge["to"]):
                    continue
                x0, y0 = n["x"], n["y"]
                x1, y1 = x0 + n["width"], y0 + n["height"]
                lo_x, hi_x = sorted((ax, bx))
                lo_y, hi_y = sorted((ay, by))
                if lo_x < x1 and hi_x > x0 and lo_y < y1 and hi_y > y0:
                    found.append((edge["from"], edge["to"], n["id"]))
    return found


def check_graph(flow: Flow, graph: dict[str, Any]) -> None:
    """What every drawing must satisfy."""
    nodes = graph["nodes"]
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)), "node ids are unique"
    steps = [n for n in nodes if n["type"] not in ("start", "end", "join")]
    assert len(steps) == flow.step_count() == graph["steps"]
    assert {n["path"] for n in steps} == {".".join(map(str, path)) for path, _ in flow.walk()}, (
        "every step is drawn once, at its place in the definition"
    )
    assert overlapping(nodes) == []
    assert crossed(graph) == [], "edges go around nodes"
    known = set(ids)
    for edge in graph["edges"]:
        assert edge["from"] in known and edge["to"] in known, edge
        assert len(edge["points"]) >= 2, edge
    groups = {g["id"]: g for g in graph["groups"]}
    for node in nodes:
        assert node["x"] >= 0 and node["x"] + node["width"] <= graph["width"], node
        assert node["y"] >= 0 and node["y"] + node["height"] <= graph["height"], node
        if node["group"] is not None:  # a node lies inside its group's box
            g = groups[node["group"]]
            assert g["x"] <= node["x"] and node["x"] + node["width"] <= g["x"] + g["width"]
            assert g["y"] <= node["y"] and node["y"] + node["height"] <= g["y"] + g["height"]
    for g in graph["groups"]:
        if g["parent"] is not None:  # groups nest inside their parents
            p = groups[g["parent"]]
            assert p["x"] <= g["x"] and g["x"] + g["width"] <= p["x"] + p["width"], g
            assert p["y"] <= g["y"] and g["y"] + g["height"] <= p["y"] + p["height"], g
    json.dumps(graph)  # plain JSON


@pytest.mark.parametrize("path", FLOWS, ids=[p.name for p in FLOWS])
def test_corpus_flows_are_laid_out(path):
    flow = load_flow_file(path)
    graph = flow_graph(flow)
    check_graph(flow, graph)
    assert flow_graph(load_flow_file(path)) == graph, "the layout is deterministic"


def test_a_hundred_step_flow_is_laid_out_legibly():
    flow = load_flow(json.dumps(big_flow()))
    assert flow.step_count() >= 100
    graph = flow_graph(flow)
    check_graph(flow, graph)
    # Serial steps keep one column: the top level's nodes share a centre line.
    top = [n for n in graph["nodes"] if n["group"] is None and n["type"] != "join"]
    assert len({n["x"] + n["width"] / 2 for n in top}) == 1
    # Bounded: the lanes stand side by side, not one per step.
    assert graph["width"] < 1000 and graph["height"] < 20000
    kinds = {e["kind"] for e in graph["edges"]}
    assert kinds == {"next", "choice", "default", "catch", "retry"}


def edges_of(graph: dict[str, Any], source: str) -> list[tuple[str, str, str]]:
    return [(e["to"], e["kind"], e["label"]) for e in graph["edges"] if e["from"] == source]


def test_ids_follow_step_paths_and_edges_follow_the_language():
    flow = load_flow(json.dumps(big_flow(1)))
    graph = flow_graph(flow)
    ids = {n["id"] for n in graph["nodes"]}
    assert {
        "~start",
        "~end",
        "b0_route/choices.0/big",
        "b0_route/default/small",
        "b0_fan/branches.0/left",
        "b0_fan/branches.0/call",
        "b0_fan/branches.1/right",
        "b0_each/pick",
        "b0_each/odd",
        "b0_fan/~join",
    } <= ids
    assert "b0_each/~join" in ids and "b0_route/~join" in ids
    assert sorted(edges_of(graph, "b0_fetch")) == [
        ("b0_fetch", "retry", "retry ×2"),
        ("b0_recover", "catch", "FnF.ALL"),
        ("b0_route", "next", ""),
    ]
    assert sorted(edges_of(graph, "b0_route")) == [
        ("b0_route/choices.0/big", "choice", "$.n > 0"),
        ("b0_route/default/small", "default", "otherwise"),
        ("b0_wait", "choice", "$.skip == true"),
    ]
    assert edges_of(graph, "b0_route/choices.0/big") == [("b0_route/~join", "next", "")]
    assert edges_of(graph, "b0_route/~join") == [("b0_fan", "next", "")]
    # A choice whose every branch leaves by a goto has no join, and flows on only by them.
    assert sorted(edges_of(graph, "b0_each/pick")) == [
        ("b0_each/odd", "choice", "$.it > 1"),
        ("b0_each/odd", "default", "otherwise"),
    ]
    assert "b0_each/pick/~join" not in ids
    groups = {g["id"]: g["kind"] for g in graph["groups"]}
    assert groups["b0_fan"] == "parallel" and groups["b0_fan/branches.1"] == "branch"
    assert groups["b0_each/~lane"] == "iteration" and groups["b0_route/default"] == "default"


def test_a_branch_goto_and_an_early_end_leave_their_lane():
    text = yaml.safe_dump(
        {
            "version": "v1",
            "type": "flow",
            "steps": [
                {
                    "type": "choice",
                    "name": "c",
                    "choices": [
                        {
                            "condition": "$.a",
                            "steps": [
                                {"type": "pass", "name": "x", "end": True},
                                {"type": "pass", "name": "y"},
                            ],
                            "goto": "z",
                        }
                    ],
                },
                {"type": "pass", "name": "w", "end": True},
                {"type": "pass", "name": "z"},
            ],
        }
    )
    graph = flow_graph(load_flow(text))
    check_graph(load_flow(text), graph)
    assert edges_of(graph, "c/choices.0/y") == [("z", "goto", "goto z")]
    assert edges_of(graph, "c/choices.0/x") == [("z", "goto", "goto z")]
    assert edges_of(graph, "w") == [("~end", "next", "")]
    assert edges_of(graph, "c/~join") == [("w", "next", "")]  # through the empty default
    assert edges_of(graph, "c")[-1] == ("c/~join", "default", "otherwise")


def test_names_with_slashes_and_tildes_keep_ids_apart():
    text = json.dumps(
        {
            "version": "v1",
            "type": "flow",
            "steps": [
                {
                    "type": "foreach",
                    "name": "a/b",
                    "iterationMapping": {"collection": "$.xs", "item": "x"},
                    "steps": [{"type": "pass", "name": "~c"}],
                },
                {"type": "pass", "name": "a"},
            ],
        }
    )
    ids = {n["id"] for n in flow_graph(load_flow(text))["nodes"]}
    assert {"a~1b", "a~1b/~0c", "a", "a~1b/~join"} <= ids


def test_a_flow_too_large_to_draw_is_refused_in_a_sentence():
    steps = [{"type": "pass", "name": f"s{i}"} for i in range(MAX_GRAPH_STEPS + 1)]
    flow = load_flow(json.dumps({"version": "v1", "type": "flow", "steps": steps}))
    with pytest.raises(EngineError) as caught:
        flow_graph(flow)
    assert caught.value.code == "InvalidArgument"
    assert f"at most {MAX_GRAPH_STEPS}" in caught.value.message


class NotifyStep(StepBase):
    """A plugin's step type: drawn like any other step, under its own type name."""

    type: Literal["notify"]
    channel: str
    end: bool = False


def test_a_plugin_step_type_is_drawn_in_place():
    load_flow("version: v1\ntype: flow\nsteps: [{type: pass, name: warm}]\n")
    register_step_type(NotifyStep, handler=lambda step, data, context: {})
    try:
        text = fdl("""
        - type: parallel
          name: p
          branches:
            - steps:
                - {type: notify, name: deep, channel: pager, end: true}
                - {type: pass, name: never}
        """)
        flow = load_flow(text)
        graph = flow_graph(flow)
        check_graph(flow, graph)
        (deep,) = [n for n in graph["nodes"] if n["id"] == "p/branches.0/deep"]
        assert deep["type"] == "notify" and deep["detail"] == {"end": True}
        assert edges_of(graph, "p/branches.0/deep") == [("p/~join", "next", "")]
    finally:
        unregister_step_type("notify")
