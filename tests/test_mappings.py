import pytest

from relayflow.dataflow import (
    ConstantSource,
    ExpressionError,
    MappingRule,
    PathSource,
    compile_service_params,
    compile_source,
    compile_target,
    default_input,
    evaluate_mappings,
    iteration_input,
    merge_outputs,
    step_input,
    step_output,
)


def rules(*pairs):
    return [MappingRule(compile_target(t), compile_source(s)) for t, s in pairs]


CONTEXT = {"task": {"token": "tok"}, "execution": {"name": "run1"}, "flow": {"name": "f"}}


def test_sources_read_their_roots():
    out = evaluate_mappings(
        rules(
            ("a", "$input.a"),
            ("b", "$local.b"),
            ("token", "$context.task.token"),
            ("flow", "$context.flow.name"),
            ("same", "$.a"),
            ("whole", "$input"),
            ("all_local", "$local"),
        ),
        input={"a": 1},
        local={"b": 2},
        context=CONTEXT,
    )
    assert out == {
        "a": 1,
        "b": 2,
        "token": "tok",
        "flow": "f",
        "same": 1,
        "whole": {"a": 1},
        "all_local": {"b": 2},
    }


@pytest.mark.parametrize(
    "constant",
    [
        "",
        "POST",
        "http://httpbin.org/post",
        "/",
        100,
        52428800,
        1.5,
        True,
        False,
        None,
        {"a": "b", "c": 1},
        [1, 2],
        "$100",
        "$price",
        "SubflowError",
    ],
)
def test_constants(constant):
    source = compile_source(constant)
    assert isinstance(source, ConstantSource)
    assert evaluate_mappings([MappingRule(("x",), source)], input={}, local={}) == {"x": constant}


def test_path_sources_compile_once():
    source = compile_source("$input.key_info[0]")
    assert isinstance(source, PathSource)
    assert source.evaluate({"input": {"key_info": ["k", 3]}}) == "k"


def test_missing_source_gives_null():
    assert evaluate_mappings(rules(("x", "$input.nope.deeper")), input={}, local={}) == {"x": None}


def test_wildcards_flatten():
    local = [{"parts": [1, 2], "result": "a"}, {"parts": [3], "result": "b"}]
    out = evaluate_mappings(
        rules(("parts", "$local[*].parts[*]"), ("result", "$local[*].result")),
        input={},
        local=local,
    )
    assert out == {"parts": [1, 2, 3], "result": ["a", "b"]}


def test_dotted_targets_nest_and_merge():
    out = evaluate_mappings(
        rules(("current.env", "prod"), ("current.region", "$input.r"), ("top", 1)),
        input={"r": "cn"},
        local={},
    )
    assert out == {"current": {"env": "prod", "region": "cn"}, "top": 1}


def test_later_rule_wins_and_replaces_non_objects():
    out = evaluate_mappings(rules(("a", 1), ("a", 2), ("b", 3), ("b.c", 4)), input={}, local={})
    assert out == {"a": 2, "b": {"c": 4}}


@pytest.mark.parametrize("target", ["", "a..b", ".a", "a.", None, 3])
def test_bad_targets(target):
    with pytest.raises(ExpressionError):
        compile_target(target)


def test_default_input_local_wins():
    assert default_input({"a": 1, "b": 1}, {"b": 2, "c": 3}) == {"a": 1, "b": 2, "c": 3}


def test_step_input_with_and_without_mappings():
    parent_input, parent_local = {"a": 1}, {"b": 2}
    assert step_input(None, parent_input=parent_input, parent_local=parent_local) == {
        "a": 1,
        "b": 2,
    }
    mapped = step_input(
        rules(("x", "$local.b"), ("t", "$context.task.token")),
        parent_input=parent_input,
        parent_local=parent_local,
        context=CONTEXT,
    )
    assert mapped == {"x": 2, "t": "tok"}


def test_step_output_defaults():
    assert step_output(None, input={"a": 1}, local={"r": 1}) == {"r": 1}
    assert step_output(None, input={"a": 1}, local=[{"r": 1}], empty_by_default=True) == {}
    assert step_output(None, input={"a": 1}, local=None) == {}
    mapped = step_output(
        rules(("r", "$local[*].r"), ("a", "$input.a")),
        input={"a": 1},
        local=[{"r": 1}, {"r": 2}],
        empty_by_default=True,
    )
    assert mapped == {"r": [1, 2], "a": 1}


def test_default_output_is_a_copy():
    local = {"r": 1}
    out = step_output(None, input={}, local=local)
    out["r"] = 2
    assert local == {"r": 1}


def test_merge_outputs_later_wins():
    assert merge_outputs([{"a": 1, "b": 1}, {}, {"b": 2}]) == {"a": 1, "b": 2}


def test_iteration_input():
    assert iteration_input({"keys": [1], "x": 0}, "key", "k1", "i", 3) == {
        "keys": [1],
        "x": 0,
        "key": "k1",
        "i": 3,
    }
    assert iteration_input({"x": 0}, "key", "k1", None, 3) == {"x": 0, "key": "k1"}


def test_error_mappings_read_error_and_cause():
    out = evaluate_mappings(
        rules(("errMsg", "$local.cause"), ("errCode", "$local.error")),
        input={},
        local={"error": "E", "cause": "because"},
    )
    assert out == {"errMsg": "because", "errCode": "E"}


def test_service_params():
    params = compile_service_params(
        {
            "MessageBody": "$",
            "Priority": 1,
            "FlowName": "$.flow_name",
            "Nested": {"a": "$.x", "list": ["$.x", "const"]},
            "Plain": "hello",
        }
    )
    mapped = {"flow_name": "child", "x": 7}
    assert params.resolve(mapped) == {
        "MessageBody": mapped,
        "Priority": 1,
        "FlowName": "child",
        "Nested": {"a": 7, "list": [7, "const"]},
        "Plain": "hello",
    }
    assert params.resolve({})["FlowName"] is None


@pytest.mark.parametrize("value", ["$input.x", "$local.x", "$context.task.token"])
def test_service_params_only_read_the_mapped_input(value):
    with pytest.raises(ExpressionError, match=r"map .* in inputMappings first"):
        compile_service_params({"Input": value})
