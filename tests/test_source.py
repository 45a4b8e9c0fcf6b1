"""Reading YAML and JSON: lines, !Ref, timestamps, duplicate keys, anchors."""

import pytest

from relayflow.fdl import DefinitionLimits
from relayflow.fdl.source import parse_quick, parse_source


def test_lines_point_at_keys_and_items():
    parsed = parse_source("a: 1\nb:\n  - x\n  - y: 2\n    z: 3\n")
    assert parsed.data == {"a": 1, "b": ["x", {"y": 2, "z": 3}]}
    assert parsed.line_of(()) == 1
    assert parsed.line_of(("a",)) == 1
    assert parsed.line_of(("b",)) == 2
    assert parsed.line_of(("b", 0)) == 3
    assert parsed.line_of(("b", 1)) == 4
    assert parsed.line_of(("b", 1, "z")) == 5
    assert parsed.line_of(("b", 1, "missing", 0)) == 4
    assert parsed.line_of(("b", 9)) == 2


def test_ref_tag_and_timestamps():
    parsed = parse_source("r: !Ref svc/fn\nt: 2019-05-02T15:04:05Z\nd: 2019-05-02\n")
    assert parsed.data == {
        "r": "acs:fc:::services/svc/functions/fn",
        "t": "2019-05-02T15:04:05Z",
        "d": "2019-05-02",
    }
    assert not parsed.problems


def test_scalar_types_are_kept():
    parsed = parse_source("a: 3\nb: true\nc: null\nd: 1.5\ne: '3'\nf: {\"x\": 1}\n")
    assert parsed.data == {"a": 3, "b": True, "c": None, "d": 1.5, "e": "3", "f": {"x": 1}}


def test_json_text():
    parsed = parse_source('{"a":1,"b":[true,null,"x\\/y"]}')
    assert parsed.data == {"a": 1, "b": [True, None, "x/y"]}


def test_anchors_and_merge_keys():
    parsed = parse_source("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
    assert parsed.data["use"] == {"x": 1, "y": 3}
    assert parsed.line_of(("use", "y")) == 4


def test_duplicate_keys_are_reported():
    parsed = parse_source("a: 1\na: 2\n", "d.yaml")
    assert [str(p) for p in parsed.problems] == [
        "d.yaml:2: a: key 'a' appears twice in this mapping"
    ]


def test_syntax_error_has_a_line():
    parsed = parse_source("a: [1, 2\nb: 3\n", "s.yaml")
    assert parsed.data is None
    assert parsed.problems[0].line is not None
    assert parsed.problems[0].message.startswith("the document does not parse")


def test_non_string_keys_become_strings():
    parsed = parse_source("1: a\ntrue: b\n")
    assert parsed.data == {"1": "a", "true": "b"}
    assert parse_source("on: 1\nyes: 2\n").data == {"on": 1, "yes": 2}


def test_control_characters_are_reported_on_one_line():
    parsed = parse_source("a: 1\nb: \x1f\n", "c.yaml")
    (problem,) = parsed.problems
    assert problem.line == 2 and "character YAML does not allow" in problem.message


@pytest.mark.parametrize(
    "text",
    [
        '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a", "end": true}]}',
        "version: v1\ntype: flow\nsteps:\n  - {type: wait, name: w, duration: 1.5}\n  - [a, 'b', 3, ~, yes]\n",
        "on: off\nt: 2019-05-02T15:04:05Z\nq: '2'\n",
    ],
)
def test_quick_reader_agrees_with_the_full_one(text):
    quick = parse_quick(text)
    assert quick is not None and quick.data == parse_source(text).data


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',  # the full reader reports the duplicate
        "a: 1\na: 2\n",
        "a: !Ref s/f\n",
        "a: &x 1\nb: *x\n",
        "base: {x: 1}\nuse:\n  <<: {y: 2}\n",
        "a: 1\n---\nb: 2\n",
        "just a string\n",
        "? [a]\n: 1\n",
        "a: [1, 2\n",
        "a: " + "[" * 64 + "]" * 64 + "\n",  # past the depth limit
        '{"a": ' + "[" * 64 + "]" * 64 + "}",
        "a: .inf\n",  # JSON has no such number
        "a: " + "1" * 4301 + "\n",
        "a: 0x" + "f" * 4000 + "\n",
        "a: 'x\ud800'\n",
    ],
)
def test_quick_reader_declines_what_it_cannot_judge(text):
    assert parse_quick(text) is None


def test_quick_reader_declines_text_past_the_size_limit():
    text = "a: " + "x" * 100 + "\n"
    assert parse_quick(text, limits=DefinitionLimits(max_bytes=len(text))) is not None
    assert parse_quick(text, limits=DefinitionLimits(max_bytes=len(text) - 1)) is None
    parsed = parse_source(text, "s.yaml", DefinitionLimits(max_bytes=len(text) - 1))
    assert parsed.data is None
    assert [str(p) for p in parsed.problems] == [
        "s.yaml: the definition is 104 bytes, more than the limit of 103 bytes"
    ]


def test_full_reader_reports_depth_where_it_is_passed():
    text = "a:\n  b: [[[1]]]\n  c: [[[[2]]]]\n"
    # The document is level 1, `a` level 2, `c` and its lists levels 3 to 6.
    assert parse_source(text, limits=DefinitionLimits(max_depth=6)).data is not None
    parsed = parse_source(text, "d.yaml", DefinitionLimits(max_depth=5))
    assert parsed.data is None
    assert [str(p) for p in parsed.problems] == [
        "d.yaml:3: a.c[0][0][0]: values nest deeper than the limit of 5 levels"
    ]


def test_aliases_share_their_anchor_value_within_the_budget():
    parsed = parse_source("a: &x [1, 2]\nb: [*x, *x]\n", limits=DefinitionLimits(max_alias_nodes=6))
    assert parsed.data == {"a": [1, 2], "b": [[1, 2], [1, 2]]}
    assert parsed.data["b"][0] is parsed.data["a"]  # shared, not copied: the budget is the bound
    parsed = parse_source("a: &x [1, 2]\nb: [*x, *x]\n", limits=DefinitionLimits(max_alias_nodes=5))
    assert parsed.data is None and parsed.problems[0].line == 2
