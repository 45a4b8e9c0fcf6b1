import pytest

from relayflow.dataflow import MISSING, ExpressionError, compile_path
from relayflow.dataflow.paths import is_path_like

DOC = {
    "a": {"b": [10, 20, {"c": "deep"}]},
    "list": [{"parts": [1, 2], "name": "x"}, {"parts": [3], "name": "y"}, {"name": "z"}],
    "with space": 1,
    "dash-key": 2,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", DOC),
        ("$input", DOC),
        ("$.a.b[0]", 10),
        ("$.a.b[-1].c", "deep"),
        ("$input.a.b[2].c", "deep"),
        ('$["with space"]', 1),
        ("$['with space']", 1),
        ("$.dash-key", 2),
        ("$.list[*].name", ["x", "y", "z"]),
        ("$.list[*].parts[*]", [1, 2, 3]),
        ("$.list[*].parts", [[1, 2], [3]]),
        ("$.a.*", [[10, 20, {"c": "deep"}]]),
        ("$.nothing[*]", []),
    ],
)
def test_select(text, expected):
    assert compile_path(text).select(DOC) == expected


@pytest.mark.parametrize("text", ["$.nope", "$.a.b[7]", "$.a.b.c", "$.list[0].missing"])
def test_missing_selects_nothing(text):
    assert compile_path(text).select(DOC) is MISSING


def test_roots():
    assert compile_path("$").root == "input"
    assert compile_path("$local[0]").root == "local"
    assert compile_path("$context.task.token").root == "context"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("$imput.x", "unknown root '$imput'"),
        ("$.a.", "no key after the '.'"),
        ("$.a[x]", "bad selector"),
        ("$.a b", "unexpected text ' b'"),
        ("input.x", "does not start with"),
    ],
)
def test_bad_paths(text, fragment):
    with pytest.raises(ExpressionError, match=None) as err:
        compile_path(text)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("text", "is_path"),
    [
        ("$input.x", True),
        ("$local", True),
        ("$", True),
        ("$.x", True),
        ("$[0]", True),
        ("$imput.x", True),
        ("$100", False),
        ("$ 5", False),
        ("$-x", False),
        ("$inputs", False),
        ("$price", False),
        ("", False),
        ("http://x/$.y", False),
    ],
)
def test_is_path_like(text, is_path):
    assert is_path_like(text) is is_path
