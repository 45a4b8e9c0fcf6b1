import pytest

from relayflow.dataflow import ExpressionError, compile_condition, truthy

INPUT = {
    "status": "ready",
    "audited": "true",
    "n": 5,
    "f": 2.5,
    "zero": 0,
    "yes": True,
    "no": False,
    "none": None,
    "empty": "",
    "items": [1],
    "obj": {"k": "v"},
    "total_size": 10,
    "small_file_limit": 50,
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('$.status == "ready"', True),
        ("$.status == 'ready'", True),
        ('$.status != "ready"', False),
        ('$.audited == "true"', True),
        ("$.audited == true", False),  # no coercion between strings and booleans
        ("$.n == 5", True),
        ("$.n == 5.0", True),
        ('$.n == "5"', False),
        ("$.yes == 1", False),  # booleans are not numbers
        ("$.n > 4 && $.n <= 5", True),
        ("$.n >= 6 || $.f < 3", True),
        ("$.total_size <= $.small_file_limit", True),
        ('$.status < "s"', True),  # strings order lexicographically
        ('$.n < "9"', False),  # mixed types never order
        ("$.none < 1", False),
        ("$.missing > 0", False),
        ("$.missing == null", True),
        ("$.none == null", True),
        ("!$.missing", True),
        ("!!$.yes", True),
        ("$.yes", True),
        ("$.no", False),
        ("$.zero", False),
        ("$.empty", False),
        ("$.items", True),
        ("$.obj", True),
        ('$.obj.k == "v"', True),
        ("!($.n > 1 && $.no)", True),
        ("$.yes && ($.no || $.n == 5)", True),
        ("$.no || $.zero || $.empty", False),
        ("true", True),
        ("null", False),
        ("-1 < $.zero", True),
        ("1e1 == 10", True),
        ('"a\\"b" == "a\\"b"', True),
    ],
)
def test_evaluate(condition, expected):
    assert compile_condition(condition).evaluate(INPUT) is expected


def test_corpus_condition():
    cond = compile_condition(
        "$.has_more && ($.event_id >= 4000 || $.total_group_count >= $.total_group_threshold)"
    )
    base = {"has_more": True, "event_id": 10, "total_group_count": 1, "total_group_threshold": 5}
    assert cond.evaluate(base) is False
    assert cond.evaluate({**base, "event_id": 4000}) is True
    assert cond.evaluate({**base, "total_group_count": 5}) is True
    assert cond.evaluate({**base, "has_more": False, "event_id": 9999}) is False


def test_input_root_and_context():
    cond = compile_condition('$input.n == 5 && $context.execution.name == "run1"')
    assert cond.evaluate(INPUT, {"execution": {"name": "run1"}}) is True
    assert cond.evaluate(INPUT, {"execution": {"name": "other"}}) is False
    assert [p.text for p in cond.paths] == ["$input.n", "$context.execution.name"]


def test_and_binds_tighter_than_or():
    assert compile_condition("$.yes || $.no && $.no").evaluate(INPUT) is True
    assert compile_condition("($.yes || $.no) && $.no").evaluate(INPUT) is False


def test_yaml_boolean_condition():
    assert compile_condition(True).evaluate({}) is True


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("", "is empty"),
        ("$.a ==", "ends where a value was expected"),
        ("$.a = 1", "column 5: unexpected character '='"),
        ("ready", "unknown word 'ready'"),
        ("($.a", "missing ')'"),
        ("$.a)", "unexpected ')'"),
        ("$.a == 1 2", "unexpected '2'"),
        ("$local.x > 1", "$local is not available"),
        ("$imput.x", "unknown root '$imput'"),
        ('$.a == "x\\q"', "bad escape"),
        ("$.a # 1", "unexpected character '#'"),
        ("== 1", "unexpected '=='"),
    ],
)
def test_syntax_errors(condition, fragment):
    with pytest.raises(ExpressionError) as err:
        compile_condition(condition)
    assert fragment in str(err.value)


def test_non_string_condition_is_rejected():
    with pytest.raises(ExpressionError, match="must be a string"):
        compile_condition(42)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (1, True),
        ("0", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthiness(value, expected):
    assert truthy(value) is expected


def test_nesting_and_long_numbers_are_bounded():
    """Found by fuzzing: deep parentheses or negations overflowed the parser's recursion."""
    from relayflow.dataflow.conditions import MAX_NESTING

    assert compile_condition("(" * MAX_NESTING + "$.a" + ")" * MAX_NESTING).evaluate({"a": 1})
    for text in (
        "(" * (MAX_NESTING + 1) + "$.a" + ")" * (MAX_NESTING + 1),
        "!" * 1000 + "$.a",
        "(" * 5000,
    ):
        with pytest.raises(ExpressionError, match="more than 64 levels"):
            compile_condition(text)
    with pytest.raises(ExpressionError, match="too long"):
        compile_condition("$.a == " + "9" * 5000)
