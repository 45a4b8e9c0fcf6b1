"""Hostile definitions: alias bombs, deep nesting, huge texts, odd numbers and odd Unicode.

Whatever the text, `load_flow` returns a flow or raises `DefinitionError`, and the work it does
is bounded by `DefinitionLimits`: the text's size, its nesting depth, and what its aliases add.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayflow.fdl import DefinitionError, DefinitionLimits, Flow, load_flow, load_flow_file
from relayflow.fdl.source import parse_source
from relayflow.testing import fdl

SETTINGS = settings(
    max_examples=int(os.environ.get("RELAYFLOW_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = DefinitionLimits()
# A generous bound: loading the largest allowed definition takes well under a second.
WAIT_SECONDS = 60.0


def task_with_params(params: str) -> str:
    """A flow whose one task has ``params`` (YAML lines, indented 6) as its serviceParams."""
    return (
        "version: v1\ntype: flow\nsteps:\n"
        "  - type: task\n    name: t\n    resourceArn: acs:mns:::/queues/q/messages\n"
        "    serviceParams:\n" + params
    )


def alias_bomb(levels: int, width: int = 10) -> str:
    """The audit's bomb: each level is a list of ``width`` aliases of the level below."""
    lines = ["      a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return task_with_params("\n".join(lines) + "\n")


def problems_of(text: str | bytes, limits: DefinitionLimits = LIMITS) -> list[Any]:
    with pytest.raises(DefinitionError) as err:
        load_flow(text, "f.yaml", limits=limits)
    for problem in err.value.problems:
        str(problem).encode("utf-8")  # every problem can be shown and sent as it is
    return err.value.problems


def load_within_bound(text: str | bytes) -> Flow | DefinitionError:
    """Load in a daemon thread, waiting a bounded time: a hang fails the test, not the run."""
    outcome: list[Flow | BaseException] = []

    def run() -> None:
        try:
            outcome.append(load_flow(text, "f.yaml"))
        except BaseException as exc:  # reported below, whatever it is
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_SECONDS)
    assert outcome, f"load_flow still ran after {WAIT_SECONDS} s"
    result = outcome[0]
    if isinstance(result, DefinitionError):
        for problem in result.problems:
            assert problem.message and "\n" not in str(problem)
            str(problem).encode("utf-8")
        return result
    assert isinstance(result, Flow), f"load_flow raised {result!r}"
    return result


def expanded_values(value: Any, bound: int) -> int:
    """How many values ``value`` holds once shared parts are counted at each use (up to bound)."""
    count = 0
    stack = [value]
    while stack and count <= bound:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


# -- aliases ----------------------------------------------------------------------------------


def test_alias_bomb_is_refused_at_the_alias_that_passes_the_budget():
    # Five levels of ten expand to 111,111 values; the third level passes 10,000.
    text = alias_bomb(5)
    (problem,) = problems_of(text)
    assert (
        problem.line
        == text.splitlines().index("      a3: &a3 [" + ", ".join(["*a2"] * 10) + "]") + 1
    )
    assert "alias" in problem.message and "10,000" in problem.message
    assert str(problem).startswith(f"f.yaml:{problem.line}: steps[0].serviceParams.a3[")


def test_the_audits_nine_level_bomb_is_refused_in_bounded_time():
    result = load_within_bound(alias_bomb(9))
    assert isinstance(result, DefinitionError)
    assert "alias" in result.problems[0].message


def test_alias_budget_is_a_parameter():
    text = alias_bomb(2)  # aliases add 10 * 11 + 10 * 111 = 1,220 values
    assert "alias" in problems_of(text, DefinitionLimits(max_alias_nodes=1000))[0].message
    flow = load_flow(text, limits=DefinitionLimits(max_alias_nodes=2000))
    assert flow.steps[0].name == "t"


def test_aliases_of_a_long_string_count_its_size():
    # Few values, but each alias stands for 100 KB of text: 40 of them would make 4 MB.
    params = (
        '      big: &s "' + "x" * 100_000 + '"\n      copies: [' + ", ".join(["*s"] * 40) + "]\n"
    )
    (problem,) = problems_of(task_with_params(params))
    assert problem.line == 9
    assert "alias" in problem.message and "262,144 bytes" in problem.message


def test_shared_policies_through_anchors_still_load():
    text = fdl(
        """
        - type: task
          name: a
          resourceArn: acs:mns:::/queues/q/messages
          retry: &retry
            - errors: [FnF.TaskTimeout]
              intervalSeconds: 2
              maxAttempts: 3
          catch: &catch
            - errors: [FnF.ALL]
              goto: failed
        - type: task
          name: b
          resourceArn: acs:mns:::/queues/q/messages
          retry: *retry
          catch: *catch
        - type: fail
          name: failed
          error: Failed
        """
    )
    flow = load_flow(text)
    assert flow.steps[1].retry == flow.steps[0].retry


def test_parsed_data_stays_within_the_alias_budget():
    # One level of ten aliases of an 11-value list: aliases add 110 values.
    parsed = parse_source(alias_bomb(1), "f.yaml", DefinitionLimits(max_alias_nodes=110))
    assert not parsed.problems
    assert expanded_values(parsed.data, 10**6) < 200
    parsed = parse_source(alias_bomb(1), "f.yaml", DefinitionLimits(max_alias_nodes=109))
    assert parsed.data is None and "alias" in parsed.problems[0].message


# -- size -------------------------------------------------------------------------------------


def big_flow(steps: int) -> str:
    return fdl("".join(f"- type: pass\n  name: step{i:06d}\n" for i in range(steps)))


def test_a_definition_past_the_size_limit_is_refused_before_it_is_read():
    text = big_flow(9000)  # about 300 KiB
    assert len(text) > 256 * 1024
    (problem,) = problems_of(text)
    assert problem.message == (
        f"the definition is {len(text):,} bytes, more than the limit of 262,144 bytes"
    )
    assert len(problem.path) == 0
    flow = load_flow(text, limits=DefinitionLimits(max_bytes=1024 * 1024))
    assert flow.step_count() == 9000


def test_size_counts_utf8_bytes_not_characters():
    text = fdl("- type: pass\n  name: a\n  outputMappings:\n    - target: x\n      source: 'é'\n")
    limit = len(text)  # characters; é is two bytes
    assert "bytes" in problems_of(text, DefinitionLimits(max_bytes=limit))[0].message
    assert load_flow(text, limits=DefinitionLimits(max_bytes=limit + 1)).steps[0].name == "a"


def test_a_large_file_is_refused_with_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(big_flow(9000))
    with pytest.raises(DefinitionError) as err:
        load_flow_file(path)
    assert "more than the limit of 262,144 bytes" in str(err.value)
    assert load_flow_file(path, limits=DefinitionLimits(max_bytes=1 << 20)).step_count() == 9000


def test_bytes_are_read_as_utf8():
    text = fdl("- type: pass\n  name: a\n")
    assert load_flow(text.encode()).steps[0].name == "a"
    (problem,) = problems_of(text.encode() + b"\xff\n")
    assert problem.line == 6 and "UTF-8" in problem.message


def test_a_report_lists_a_bounded_number_of_problems():
    # 250 KiB of wrong steps would make 130,000 problems, megabytes of report.
    text = "version: v1\ntype: flow\nsteps: [" + ",".join(["1"] * 125_000) + "]\n"
    problems = problems_of(text)
    assert len(problems) == 101
    assert [p.line for p in problems[:100]] == [3] * 100
    assert problems[-1].message == "more problems are not listed; a report lists at most 100"
    problems = problems_of(text, DefinitionLimits(max_problems=3))
    assert [p.path for p in problems] == [("steps", 0), ("steps", 1), ("steps", 2), ()]


# -- depth ------------------------------------------------------------------------------------


def nested_params(levels: int) -> str:
    """serviceParams whose value nests ``levels`` lists; the document is 4 deeper than that."""
    return task_with_params("      deep: " + "[" * levels + "]" * levels + "\n")


def test_depth_at_the_limit_loads_and_past_it_is_refused():
    # root mapping, steps, the step, serviceParams: 4 levels before the constant's own.
    assert load_flow(nested_params(60)).steps[0].name == "t"
    (problem,) = problems_of(nested_params(61))
    assert problem.line == 8
    assert problem.message == "values nest deeper than the limit of 64 levels"
    assert str(problem) == f"f.yaml:8: steps[0].serviceParams.deep{'[0]' * 60}: {problem.message}"


def test_json_definitions_have_the_same_depth_limit():
    # root, steps, the step, outputMappings, the mapping: 5 levels before the constant's own.
    doc: Any = []
    for _ in range(58):
        doc = [doc]
    flow = {"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a"}]}
    flow["steps"][0]["outputMappings"] = [{"target": "x", "source": doc}]
    assert load_flow(json.dumps(flow)).steps[0].name == "a"
    flow["steps"][0]["outputMappings"] = [{"target": "x", "source": [doc]}]
    (problem,) = problems_of(json.dumps(flow, indent=1))
    assert "64 levels" in problem.message and problem.line is not None
    assert str(problem).startswith(f"f.yaml:{problem.line}: steps[0].outputMappings[0].source")


def test_depth_counts_what_aliases_bring():
    params = "      inner: &d " + "[" * 40 + "]" * 40 + "\n      outer: " + "[" * 30
    params += "*d" + "]" * 30 + "\n"
    (problem,) = problems_of(task_with_params(params))
    assert problem.line == 9 and "64 levels" in problem.message


def test_depth_limit_is_a_parameter():
    assert load_flow(nested_params(80), limits=DefinitionLimits(max_depth=100))
    assert "10 levels" in problems_of(nested_params(7), DefinitionLimits(max_depth=10))[0].message


def test_nesting_far_past_the_limit_is_a_problem_not_a_crash():
    for text in ["[" * 100_000 + "]" * 100_000, '{"a": ' * 5000 + "1" + "}" * 5000]:
        (problem,) = problems_of(text, DefinitionLimits(max_bytes=1 << 20))
        assert problem.line == 1


# -- numbers ----------------------------------------------------------------------------------


def constant(text: str) -> str:
    return fdl(
        f"- type: pass\n  name: a\n  outputMappings:\n    - target: x\n      source: {text}\n"
    )


@pytest.mark.parametrize("digits", ["1" * 5000, "-" + "9" * 4301])
def test_integers_too_long_to_read_are_problems(digits):
    (problem,) = problems_of(constant(digits))
    assert problem.line == 8 and "4,300 digits" in problem.message
    json_text = (
        '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a",\n'
        f'"outputMappings": [{{"target": "x", "source": {digits}}}]}}]}}'
    )
    (problem,) = problems_of(json_text)
    assert problem.line == 2 and "4,300 digits" in problem.message


def test_long_integers_within_the_limit_load():
    flow = load_flow(constant("1" * 4300))
    assert flow.steps[0].output_mappings


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "1.0e+999", "!!float 1e400"])
def test_numbers_json_cannot_hold_are_refused_in_yaml(text):
    (problem,) = problems_of(constant(text))
    assert problem.line == 8 and "finite" in problem.message


@pytest.mark.parametrize("number", ["1e999", "-1e999", "Infinity", "NaN"])
def test_numbers_json_cannot_hold_are_refused_in_json(number):
    text = (
        '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a",\n'
        f'"outputMappings": [{{"target": "x", "source": {number}}}]}}]}}'
    )
    (problem,) = problems_of(text)
    assert problem.line == 2 and "finite" in problem.message


@pytest.mark.parametrize(
    "tag", ["!!bool", "!!int", "!!float", "!!null", "!!binary", "!!set", "!!omap", "!!seq", "!!map"]
)
@pytest.mark.parametrize("value", ["maybe", "x", "", "[1]", "{a: 1}"])
def test_explicit_tags_on_odd_values_load_or_explain(tag, value):
    try:
        flow = load_flow(constant(f"{tag} {value}"))
    except DefinitionError as err:
        assert all(p.line == 8 for p in err.problems), err
    else:
        assert flow.steps[0].name == "a"


# -- Unicode ----------------------------------------------------------------------------------


def test_a_lone_surrogate_in_the_text_is_a_problem():
    (problem,) = problems_of(constant("'a\ud800'"))
    assert problem.line == 8 and "U+D800" in problem.message


@pytest.mark.parametrize(
    ("fragment", "path"),
    [
        ('"source": "\\ud800"', "steps[0].outputMappings[0].source"),
        ('"source": {"\\udfff": 1}', "steps[0].outputMappings[0].source"),
        ('"source": ["ok", "x\\ud83d"]', "steps[0].outputMappings[0].source[1]"),
    ],
)
def test_escaped_lone_surrogates_are_problems(fragment, path):
    text = (
        '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a",\n'
        f'"outputMappings": [{{"target": "x",\n{fragment}}}]}}]}}'
    )
    (problem,) = problems_of(text)
    assert problem.line == 3 and "surrogate" in problem.message
    assert str(problem).startswith(f"f.yaml:3: {path}:")


@pytest.mark.parametrize(
    "steps",
    [
        '- type: pass\n  name: a\n  "x\\ny\\u2028\\0": 1\n',
        '- type: pass\n  name: "a\\nb"\n- type: pass\n  name: "a\\nb"\n',
        '- type: choice\n  name: c\n  choices:\n    - condition: "$.a ==\\r\\n 1 &&"\n      goto: c\n',
    ],
)
def test_problems_stay_on_one_line_whatever_the_names(steps):
    # A key or name with a line break could otherwise forge a line of the report.
    (problem,) = problems_of(fdl(steps))
    assert "\n" not in str(problem) and "\r" not in str(problem) and "\u2028" not in str(problem)
    assert "\\n" in str(problem)


def test_escaped_surrogate_pairs_are_characters():
    text = (
        '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a",'
        ' "outputMappings": [{"target": "x", "source": "\\ud83d\\ude00"}]}]}'
    )
    assert load_flow(text).steps[0].name == "a"


# -- limits themselves ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_bytes", "max_depth", "max_alias_nodes", "max_problems"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        DefinitionLimits(**{field: 0})


# -- properties -------------------------------------------------------------------------------

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates included
SCALARS = st.one_of(
    st.sampled_from(
        [
            "x",
            "1",
            "-0",
            "1" * 5000,
            "1.0e+999",
            ".inf",
            ".nan",
            "0x1F",
            "0b101",
            "1:20:30",
            "~",
            "yes",
            "2019-05-02",
            "'\ud800'",
            '"\\ud800"',
            '"\\U0001F600"',
            '"\\0"',
            "!Ref s/f",
            "!Bad x",
            "!!int x",
            "!!bool maybe",
            "!!float abc",
            "!!binary %%",
            "!!set x",
            "!!timestamp x",
            "!!python/object x",
            "\u2028",
            "\ufeff",
            "\x85",
        ]
    ),
    st.text(ANY_CHAR, max_size=8).map(json.dumps),
    st.integers().map(str),
)


@st.composite
def hostile_yaml(draw: st.DrawFn) -> str:
    """Flow-style YAML with anchors, aliases (defined or not), deep nesting and odd scalars."""
    anchors: list[str] = []
    budget = [60]  # values left to draw, so that examples stay small

    def node(depth: int) -> str:
        budget[0] -= 1
        kind = draw(st.sampled_from(["scalar", "list", "map", "alias", "deep"]))
        if kind == "alias" and anchors:
            return "*" + draw(st.sampled_from([*anchors, "nowhere"]))
        if kind == "deep":
            n = draw(st.integers(1, 300))
            return "[" * n + draw(SCALARS) + "]" * n
        if kind in ("scalar", "alias") or depth > 6 or budget[0] <= 0:
            return draw(SCALARS)
        width = draw(st.integers(0, 12))
        items = [node(depth + 1) for _ in range(width)]
        if kind == "list":
            body = "[" + ", ".join(items) + "]"
        else:
            keys = [draw(st.sampled_from(["a", "b", "<<", "type", "\ud800", "1"])) for _ in items]
            pairs = (f"{json.dumps(k)}: {v}" for k, v in zip(keys, items, strict=True))
            body = "{" + ", ".join(pairs) + "}"
        if draw(st.booleans()):
            anchor = f"a{len(anchors)}"
            anchors.append(anchor)
            return f"&{anchor} {body}"
        return body

    value = node(0)
    where = draw(st.sampled_from(["params", "steps", "document"]))
    if where == "params":
        return task_with_params(f"      p: {value}\n")
    if where == "steps":
        return f"version: v1\ntype: flow\nsteps: {value}\n"
    return value


@st.composite
def bombs(draw: st.DrawFn) -> str:
    """Alias bombs of every shape: lists or mappings, any width, any depth."""
    levels = draw(st.integers(1, 14))
    width = draw(st.integers(2, 16))
    as_map = draw(st.booleans())
    lines = ["      l0: &l0 " + draw(SCALARS)]
    for i in range(1, levels + 1):
        refs = [f"*l{i - 1}"] * width
        if as_map:
            body = "{" + ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) + "}"
        else:
            body = "[" + ", ".join(refs) + "]"
        lines.append(f"      l{i}: &l{i} {body}")
    return task_with_params("\n".join(lines) + "\n")


@SETTINGS
@given(st.text(ANY_CHAR, max_size=400))
def test_arbitrary_text_loads_or_explains(text):
    load_within_bound(text)


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_load_or_explain(data):
    load_within_bound(data)
    load_within_bound(data.decode("utf-8", "surrogateescape"))


@SETTINGS
@given(hostile_yaml())
def test_hostile_yaml_loads_or_explains(text):
    load_within_bound(text)


@SETTINGS
@given(bombs())
def test_bombs_stay_within_the_budget(text):
    load_within_bound(text)
    parsed = parse_source(text, "f.yaml")
    if parsed.data is not None:
        budget = LIMITS.max_alias_nodes + text.count("\n") * 20 + 100
        assert expanded_values(parsed.data, budget) <= budget


def test_engine_and_validate_take_the_budgets_from_the_configuration(tmp_path):
    """`[engine] max_definition_*` reach CreateFlow and `relayflow validate --config`."""
    import asyncio
    import subprocess
    import sys
    from pathlib import Path

    from relayflow.config import load_config
    from relayflow.engine import Engine
    from relayflow.errors import EngineError

    steps = "".join(f"  - type: pass\n    name: p{i}\n" for i in range(60))
    text = "version: v1\ntype: flow\nsteps:\n" + steps
    assert 1024 < len(text) < 4096
    (tmp_path / "flow.yaml").write_text(text)
    (tmp_path / "relayflow.toml").write_text(
        '[engine]\nstore = "memory://"\nmax_definition_bytes = 1024\n'
    )
    exe = str(Path(sys.executable).with_name("relayflow"))
    plain = subprocess.run([exe, "validate", "flow.yaml"], cwd=tmp_path, capture_output=True)
    assert plain.returncode == 0, plain.stderr
    tight = subprocess.run(
        [exe, "validate", "flow.yaml", "--config", "relayflow.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert tight.returncode == 2
    assert "more than the limit of 1,024 bytes" in tight.stderr

    async def create() -> str:
        config = load_config(str(tmp_path / "relayflow.toml"))
        async with Engine.from_config(config, integrations=[]) as eng:
            try:
                await eng.create_flow("f", text)
            except EngineError as exc:
                return exc.code
            return "created"

    assert asyncio.run(create()) == "InvalidDefinition"


def test_a_binary_constant_is_refused():
    """Found by fuzzing: `!!binary` made bytes, which no execution data can hold."""
    text = fdl("""
    - type: pass
      name: p
      inputMappings:
        - target: blob
          source: !!binary aGVsbG8=
    """)
    with pytest.raises(DefinitionError, match="binary value has no JSON form"):
        load_flow(text)


def test_a_task_timeout_is_at_most_a_year():
    """Found by fuzzing: a task's timeoutSeconds had no upper bound, unlike the flow's."""
    for seconds, ok in ((31536000, True), (31536001, False), (99999999999999999999, False)):
        text = fdl(f"""
        - type: task
          name: t
          resourceArn: acs:mns:::/queues/q/messages
          timeoutSeconds: {seconds}
        """)
        if ok:
            load_flow(text)
        else:
            with pytest.raises(DefinitionError, match="timeoutSeconds"):
                load_flow(text)


def test_tags_on_mappings_and_lists_are_yamls_own_or_refused():
    """Found by fuzzing: `!!python/object/apply:...` on a list was silently read as a list."""
    for tag, refused in (
        ("!!python/object/apply:os.system", True),
        ("!Foo", True),
        ("!!map", False),
    ):
        text = fdl(f"""
        - type: pass
          name: p
          inputMappings:
            - target: y
              source: {tag} {{a: 1}}
        """)
        if refused:
            with pytest.raises(DefinitionError, match="not supported on a mapping or a list"):
                load_flow(text)
        else:
            load_flow(text)
