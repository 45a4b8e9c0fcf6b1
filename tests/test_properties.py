"""Property-based tests: whatever the input, loading gives a flow or problems, never a crash."""

import json
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayflow.dataflow import ExpressionError, compile_condition, compile_source
from relayflow.fdl import Flow, check_flow
from relayflow.fdl.source import parse_quick, parse_source
from tests.helpers import EXAMPLES, corpus_files

SETTINGS = settings(
    max_examples=int(os.environ.get("RELAYFLOW_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

KEYS = [
    "version",
    "type",
    "steps",
    "name",
    "resourceArn",
    "action",
    "pattern",
    "inputMappings",
    "outputMappings",
    "errorMappings",
    "serviceParams",
    "retry",
    "catch",
    "errors",
    "goto",
    "choices",
    "condition",
    "default",
    "branches",
    "iterationMapping",
    "collection",
    "item",
    "index",
    "duration",
    "timestamp",
    "error",
    "cause",
    "end",
    "target",
    "source",
    "timeoutSeconds",
    "maxAttempts",
    "intervalSeconds",
    "multiplier",
    "x",
]
STEP_TYPES = ["task", "pass", "wait", "choice", "parallel", "foreach", "succeed", "fail", "flow"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            *STEP_TYPES,
            "$.a",
            "$input.b",
            "$local[*].c",
            "$",
            "$.a == 1 &&",
            "acs:fc:::services/s/functions/f",
            "acs:mns:::/queues/q/messages",
            "v1",
            "FnF.ALL",
        ]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=30,
)


def assert_outcome(text: str) -> None:
    flow, problems = check_flow(text, "prop.yaml")
    if flow is None:
        assert problems, "an invalid document must say why"
        for problem in problems:
            assert isinstance(problem.message, str) and problem.message
            assert "\n" not in str(problem)
    else:
        assert isinstance(flow, Flow) and problems == []


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    assert_outcome(text)


@SETTINGS
@given(JSONISH)
def test_arbitrary_yaml_documents(data):
    assert_outcome(yaml.safe_dump(data))


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=6))
def test_arbitrary_flow_like_documents(extra):
    doc = {"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a"}], **extra}
    assert_outcome(json.dumps(doc))


BASES = [
    parse_source(p.read_text()).data for p in [*corpus_files(), *sorted(EXAMPLES.glob("*.yaml"))]
]


def _nodes(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _nodes(child, (*path, i))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def _delete(value, path):
    parent_path, last = path[:-1], path[-1]
    parent = dict(_nodes(value))[parent_path]
    if isinstance(parent, dict):
        pruned = {k: v for k, v in parent.items() if k != last}
    else:
        pruned = [v for i, v in enumerate(parent) if i != last]
    return _replace(value, parent_path, pruned)


@st.composite
def mutated_flows(draw):
    doc = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(doc))
        path, _ = draw(st.sampled_from(nodes))
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "delete" and path:
            doc = _delete(doc, path)
        elif action == "duplicate" and path and isinstance(path[-1], int):
            parent = dict(_nodes(doc))[path[:-1]]
            doc = _replace(doc, path[:-1], [*parent, parent[path[-1]]])
        else:
            doc = _replace(doc, path, draw(JSONISH))
    return doc


@SETTINGS
@given(mutated_flows())
def test_mutated_corpus_flows(doc):
    assert_outcome(yaml.safe_dump(doc, sort_keys=False))


@SETTINGS
@given(JSONISH, st.booleans())
def test_quick_reader_agrees_or_declines(data, flow_style):
    text = yaml.safe_dump(data, default_flow_style=flow_style)
    quick = parse_quick(text)
    if quick is not None:
        assert quick.data == parse_source(text).data


@SETTINGS
@given(st.text(max_size=60))
def test_conditions_parse_or_explain(text):
    try:
        condition = compile_condition(text)
    except ExpressionError as exc:
        assert str(exc).startswith("condition ")
    else:
        assert condition.evaluate({"a": 1}) in (True, False)


@SETTINGS
@given(st.text(max_size=60), JSONISH)
def test_sources_compile_or_explain(text, scope_value):
    try:
        source = compile_source(text)
    except ExpressionError:
        return
    source.evaluate({"input": scope_value, "local": scope_value, "context": scope_value})
