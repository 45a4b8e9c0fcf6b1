"""Hypothesis strategies for hostile API requests and hostile flow definitions.

A request is a `FuzzRequest`: an action, its parameters, the role whose key signs it and how it
travels. Parameter values are text, or placeholders that the test fills in with the live
objects of its server at send time (`Ref`: the flow under test, its running or finished
execution, a real task token; `Garbled`: a real value altered; `Forged`: a token built from
parts), or `Raw` bytes that are percent-encoded as they are (and may not be UTF-8). Strategies
stay independent of the server: the same example means the same kind of request whatever the
names of the objects of the day.

Sizes straddle the limits of the shared test server (a 65,536-byte body, names of 128
characters, Error 128 and Cause 4,096 characters, JSON 64 levels deep, definitions 64 levels
deep with 10,000 values added by aliases), and big values are built by repetition rather
than drawn character by character, so examples stay cheap to generate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "ACTIONS",
    "ROLE_ACTIONS",
    "Forged",
    "FuzzRequest",
    "Garbled",
    "Raw",
    "Ref",
    "condition_flow",
    "definitions",
    "expression_flows",
    "expressions",
    "hostile_ints",
    "hostile_names",
    "hostile_texts",
    "json_texts",
    "raw_values",
    "requests",
    "resolve",
    "task_flow",
    "task_tokens",
    "wait_seconds",
]

QUEUE_ARN = "acs:mns:::/queues/jobs/messages"  # the test server's queue (tests.api_server)

# -- placeholders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A live value, filled in when the request is sent.

    `flow`: the flow under test; `running` / `finished`: its execution that waits for a task
    report / that has ended; `fresh`: a valid name no object has (one per example); `token`:
    the running execution's task token; `done_token`: a token whose task has its result.
    """

    name: str


@dataclass(frozen=True)
class Garbled:
    """A live value altered: `op` applied at position `at` (taken modulo its length)."""

    base: Ref
    op: str
    at: int = 0
    text: str = ""


@dataclass(frozen=True)
class Forged:
    """A task token built from parts: `base64("<version>#<flow>#<execution>#<task>#" + mac)`."""

    version: str
    flow: str | Ref
    execution: str | Ref
    task: str
    mac: bytes
    extra: str = ""  # more `#` fields, or text after the MAC


@dataclass(frozen=True)
class Raw:
    """Bytes sent percent-encoded as they are: they need not be UTF-8."""

    data: bytes


Value = str | Ref | Garbled | Forged | Raw


@dataclass(frozen=True)
class FuzzRequest:
    """One hostile request.

    Attributes:
        action: the Action parameter (None: left out).
        params: the other parameters; the test adds the signature's.
        role: whose key signs it: admin, worker or reader; "unsigned" sends no signature,
            "tampered" changes a parameter after signing.
        transport: "form" (a POST form body), "query" (a POST with the parameters in the query
            string), "split" (every other parameter in the query string, the rest in the
            body), "get" (GET, signed for GET) or "text" (a form body sent as text/plain).
    """

    action: str | None
    params: Mapping[str, Value] = field(default_factory=dict)
    role: str = "admin"
    transport: str = "form"

    def __repr__(self) -> str:  # short enough for hypothesis's report of a failing example
        shown = {k: _short(v) for k, v in self.params.items()}
        return f"FuzzRequest({self.action!r}, {shown}, role={self.role!r}, {self.transport!r})"


def _short(value: Value) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:200]}...<{len(text)} chars>...{text[-60:]}"


def resolve(value: Value, live: Mapping[str, str]) -> str | bytes:
    """The text (or, for `Raw`, the bytes) of ``value`` given the live values by `Ref` name."""
    if isinstance(value, str):
        return value
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Ref):
        return live[value.name]
    if isinstance(value, Garbled):
        return _garble(live[value.base.name], value)
    parts = [
        value.version,
        _text(value.flow, live),
        _text(value.execution, live),
        value.task,
        base64.b64encode(value.mac).decode() + value.extra,
    ]
    return base64.b64encode("#".join(parts).encode()).decode()


def _text(value: str | Ref, live: Mapping[str, str]) -> str:
    return live[value.name] if isinstance(value, Ref) else value


def _garble(real: str, how: Garbled) -> str:
    at = how.at % (len(real) + 1)
    if how.op == "flip":  # one character changed for another of the base64 alphabet
        i = min(at, len(real) - 1)
        return real[:i] + ("A" if real[i] != "A" else "B") + real[i + 1 :]
    if how.op == "truncate":
        return real[:at]
    if how.op == "insert":
        return real[:at] + how.text + real[at:]
    if how.op == "urlsafe":
        return real.replace("+", "-").replace("/", "_")
    if how.op == "unpadded":
        return real.rstrip("=")
    if how.op == "twice":
        return real + real
    # The token's own fields, re-encoded with one of them changed (its MAC no longer fits).
    fields = base64.b64decode(real).decode().split("#")
    index = {"rename-flow": 1, "rename-execution": 2, "retask": 3, "remac": 4}[how.op]
    fields[index] = how.text
    return base64.b64encode("#".join(fields).encode()).decode()


# -- texts ------------------------------------------------------------------------------------

_ODD = [
    "\x00",
    "\u202e",  # right-to-left override
    "\u200f\u05d0",  # right-to-left mark, Hebrew alef
    "\ufeff",  # byte order mark
    "\u0301",  # a combining accent with nothing to combine with
    "\U0001f600",
    "\ufffd",
    "\uffff",  # a non-character
    "\U0010ffff",
    "\u2028",  # line separator
    "\x85",  # next line
    "\r\n",
    "\t",
    "%",
    "%25",
    "%FF",  # sent encoded: the server must see these three characters
    "+",
    "&",
    "=",
    "#",
    "'",
    '"',
    "\\",
    "_",
    "*",
    "' OR '1'='1",
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "ａ",  # fullwidth
    "٣",  # an Arabic-Indic digit: int() takes it
]

# Boundary texts for names: the service's rule is 1-128 of [A-Za-z0-9_-], starting with a
# letter or _.
_NAMES = [
    "",
    "a",
    "_",
    "-",
    "9a",
    "-a",
    "a" * 128,
    "a" * 129,
    "A" * 4096,
    "a b",
    "a.b",
    "a/b",
    "a\x00",
    "\x00a",
    "a\u202e",
    "é",
    "a" * 127 + "é",
    "\U0001f600",
    "NULL",
    "null",
    "None",
    "undefined",
    "0",
    "-1",
    "true",
    "a%",
    "%",
    "a_",
    "aa*",
    "a\n",
    " a",
]

_INTS = [
    "",
    "0",
    "1",
    "-1",
    "-0",
    "+1",
    " 1",
    "1 ",
    "1_0",
    "0x10",
    "1e3",
    "1.0",
    "1.5",
    "nan",
    "inf",
    "-inf",
    "59",
    "60",
    "61",
    "98",
    "99",
    "100",
    "998",
    "999",
    "1000",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "9999999999999999999",
    "99999999999999999999999999999999",
    "1" + "0" * 4299,
    "1" + "0" * 4300,
    "٣",
    "１",
    "\x00",
    "1\x00",
    "½",
]

_TIMES = [
    "",
    "2020-01-01T00:00:00Z",
    "2020-01-01T00:00:00.123456789Z",
    "2020-01-01T00:00:00+14:00",
    "2020-01-01T00:00:00-23:59",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "2020-13-01T00:00:00Z",
    "2020-02-30T00:00:00Z",
    "2020-01-01T24:00:00Z",
    "2020-01-01",
    "20200101T000000Z",
    "1577836800",
    "-1",
    "now",
    "2020-01-01T00:00:00ZZ",
    "2020-01-01T00:00:00\x00",
]


def _repeated(units: list[str], top: int) -> st.SearchStrategy[str]:
    """A unit repeated up to ``top`` times (lengths near 0, the limits and the body size)."""
    counts = st.one_of(
        st.integers(0, 300),
        st.sampled_from([127, 128, 129, 4095, 4096, 4097, 30000, 65536, 70000]),
        st.integers(0, top),
    )
    return st.builds(lambda unit, n: unit * n, st.sampled_from(units), counts)


def hostile_texts(top: int = 70000) -> st.SearchStrategy[str]:
    """Text for free-form parameters: boundary lengths, odd characters, random Unicode."""
    return st.one_of(
        st.sampled_from(_NAMES + _ODD),
        st.text(max_size=40),
        st.lists(st.sampled_from([*_ODD, "a", "b", "1"]), max_size=30).map("".join),
        _repeated(["a", "é", "\U0001f600", "\x00", "\u202e", "%", "+", " "], top),
    )


def hostile_names() -> st.SearchStrategy[Value]:
    """Flow and execution names: the live ones, fresh ones and boundary texts."""
    return st.one_of(
        st.sampled_from([Ref("flow"), Ref("running"), Ref("finished"), Ref("fresh")]),
        st.sampled_from(_NAMES),
        st.text(max_size=20),
        st.builds(
            lambda odd, at: "abcdef"[:at] + odd + "ghi", st.sampled_from(_ODD), st.integers(0, 6)
        ),
        _repeated(["a", "é", "_"], 70000),
    )


def hostile_ints() -> st.SearchStrategy[str]:
    """Whole-number parameters (Limit, WaitTimeSeconds, NextToken) at and past every bound."""
    return st.one_of(st.sampled_from(_INTS), st.integers(-(2**70), 2**70).map(str))


def wait_seconds(value: str) -> int:
    """What the server makes of a WaitTimeSeconds value (-1 when it is not a whole number).

    Long polls are left out of the strategies: a wait of a second or two is a real wait.
    """
    try:
        return int(value)
    except ValueError:
        return -1


def _json_nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"a":' * (depth // 2) + "[]" + "}]" * (depth // 2)  # alternating


_DEPTHS = st.one_of(
    st.integers(1, 10),
    st.integers(60, 70),
    st.integers(120, 130),
    st.integers(195, 260),
    st.integers(990, 1100),
    st.sampled_from([5000, 40000]),
)

_ODD_JSON = [
    "",
    "{}",
    "[]",
    "null",
    "0",
    '"text"',
    "true",
    "{",
    "}",
    '{"a":1,}',
    "{'a': 1}",
    '{"a": 1} trailing',
    '{"a": 1}{"b": 2}',
    '{"a": NaN}',
    '{"a": Infinity, "b": -Infinity}',
    '{"a": 1e400}',
    '{"a": -1e400}',
    '{"a": 1e-400}',
    '{"a": -0}',
    '{"a": 0.1e1, "b": 1E+2}',
    '{"a": 01}',
    '{"a": ' + "9" * 4300 + "}",
    '{"a": ' + "9" * 4301 + "}",
    '{"a": 1.' + "5" * 5000 + "}",
    '{"a": 1, "a": 2}',
    '{"a": "\\u0000"}',
    '{"\\u0000": 1}',
    '{"a": "\\ud800"}',
    '{"a": "\\udfff\\ud800"}',
    '{"a": "\\ud83d\\ude00"}',
    '{"a": "\\u202e"}',
    '{"a": "\\x41"}',
    '{"a": "\x01"}',
    "\ufeff{}",
    ' \t\n{"a": 1}\n ',
    '{"a": /* comment */ 1}',
    '{"__proto__": {"polluted": 1}, "constructor": {"prototype": {}}}',
    '{"$": {"$.a": "$input"}, "$local": 1, "$context": {"task": {"token": "x"}}}',
    '{"taskToken": "forged"}',
]


def json_texts(top: int = 70000) -> st.SearchStrategy[str]:
    """JSON text for Input and Output: odd documents, deep ones, large ones, random ones."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    random_docs = st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            scalars,
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=5,
    ).map(json.dumps)
    nested = st.builds(
        lambda depth, kind, wrap: (
            ('{"k":' + _json_nested(depth, kind) + "}") if wrap else _json_nested(depth, kind)
        ),
        _DEPTHS,
        st.sampled_from(["array", "object", "mixed"]),
        st.booleans(),
    )
    wide = st.builds(
        lambda n, kind: (
            "{" + ",".join(f'"k{i}":{i}' for i in range(n)) + "}"
            if kind == "keys"
            else '{"items":[' + ",".join(["0"] * n) + "]}"
            if kind == "array"
            else '{"a":"' + "x" * n + '"}'
        ),
        st.one_of(st.integers(0, 100), st.integers(4000, 8000), st.integers(20000, 34000)),
        st.sampled_from(["keys", "array", "string"]),
    )
    return st.one_of(st.sampled_from(_ODD_JSON), nested, wide, random_docs, hostile_texts(top))


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def task_tokens() -> st.SearchStrategy[Value]:
    """Task tokens: real, garbled real ones, forged ones and plain garbage."""
    garbled = st.builds(
        Garbled,
        st.sampled_from([Ref("token"), Ref("done_token")]),
        st.sampled_from(["flip", "truncate", "insert", "urlsafe", "unpadded", "twice"]),
        st.integers(0, 400),
        st.sampled_from(["", "=", "A", "\n", " ", "#", "%", "\x00", "é", "====", "AAAA"]),
    )
    refielded = st.builds(
        Garbled,
        st.sampled_from([Ref("token"), Ref("done_token")]),
        st.sampled_from(["rename-flow", "rename-execution", "retask", "remac"]),
        st.just(0),
        st.one_of(st.sampled_from(_INTS), st.sampled_from(_NAMES), st.text(max_size=8)),
    )
    forged = st.builds(
        Forged,
        st.sampled_from(["v1", "v1", "v0", "v2", "", "V1"]),
        st.one_of(st.sampled_from([Ref("flow")]), st.sampled_from(_NAMES)),
        st.one_of(
            st.sampled_from([Ref("running"), Ref("finished"), Ref("fresh")]),
            st.sampled_from(_NAMES),
        ),
        st.sampled_from(_INTS),
        st.one_of(
            st.sampled_from([0, 19, 20, 21, 39, 40, 41, 400]).map(bytes),
            st.binary(min_size=40, max_size=40),
        ),
        st.sampled_from(["", "#", "#x", "=", "AA"]),
    )
    garbage = st.one_of(
        st.sampled_from(["", "x", "=", "====", "v1#a#b#1#", "djE=", "dg==", "\x00", "é"]),
        st.text(alphabet=_B64, max_size=200),
        st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
        _repeated(["A", "QUFB", "é", "#"], 70000),
    )
    return st.one_of(
        st.sampled_from([Ref("token"), Ref("done_token")]), garbled, refielded, forged, garbage
    )


_BAD_BYTES = [
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc0\xaf",  # an overlong "/"
    b"\xed\xa0\x80",  # a surrogate, as CESU-8 writes it
    b"\xed\xb2\x80\xed\xa0\x80",
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xe2\x82",  # cut short
    b"\xf0\x9f\x98",
    b"a\xffb",
    b"\x00\xff",
]


def raw_values() -> st.SearchStrategy[Raw]:
    """Bytes that are not UTF-8, alone or inside valid text."""
    return st.builds(
        lambda bad, before, after: Raw(before.encode() + bad + after.encode()),
        st.sampled_from(_BAD_BYTES),
        st.sampled_from(["", "a", "flow", '{"a": "']),
        st.sampled_from(["", "b", '"}']),
    )


# -- definitions ------------------------------------------------------------------------------

_HEAD = "version: v1\ntype: flow\nsteps:\n"


def task_flow(service_params: str = "", extra: str = "") -> str:
    """A flow of one callback task on the test queue, with serviceParams lines indented 6."""
    text = (
        f"{_HEAD}  - type: task\n    name: job\n    resourceArn: {QUEUE_ARN}\n"
        "    pattern: waitForCallback\n"
        "    inputMappings:\n      - target: taskToken\n        source: $context.task.token\n"
    )
    if service_params:
        text += "    serviceParams:\n" + service_params
    return text + extra


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)
    ]
    return task_flow(_indent("\n".join(lines), 6))


def _alias_string(size: int, copies: int) -> str:
    params = f'big: &s "{"x" * size}"\ncopies: [' + ", ".join(["*s"] * copies) + "]"
    return task_flow(_indent(params, 6))


def _merge_bomb(levels: int, width: int) -> str:
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: {j}" for j in range(width)) + "}"]
    for i in range(1, levels + 1):
        merged = ", ".join([f"*m{i - 1}"] * width)
        lines.append(f"m{i}: &m{i} {{<<: [{merged}], v{i}: [{', '.join([f'*m{i - 1}'] * width)}]}}")
    return task_flow(_indent("\n".join(lines), 6))


def _deep_flow_style(depth: int, kind: str) -> str:
    inner = "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth
    return task_flow(f"      deep: {inner}\n")


def _deep_block_style(depth: int) -> str:
    lines = "".join(" " * (6 + 2 * i) + f"k{i}:\n" for i in range(depth))
    return task_flow(lines + " " * (6 + 2 * depth) + "leaf: 1\n")


def _nested_steps(depth: int, kind: str) -> str:
    step: dict[str, Any] = {"type": "pass", "name": "leaf"}
    for i in range(depth):
        if kind == "parallel":
            step = {"type": "parallel", "name": f"p{i}", "branches": [{"steps": [step]}]}
        elif kind == "foreach":
            step = {
                "type": "foreach",
                "name": f"f{i}",
                "iterationMapping": {"collection": "$.items", "item": "item"},
                "steps": [step],
            }
        else:
            step = {
                "type": "choice",
                "name": f"c{i}",
                "choices": [{"condition": "$.x == 1", "steps": [step]}],
                "default": {"steps": [{"type": "pass", "name": f"d{i}"}]},
            }
    return json.dumps({"version": "v1", "type": "flow", "steps": [step]})


def condition_flow(condition: str) -> str:
    """A flow whose one choice step has ``condition``."""
    return _constant("'" + condition.replace("'", "''") + "'", "condition")


def _many_steps(count: int, name_length: int) -> str:
    body = "".join(f"  - type: pass\n    name: {'s' * name_length}{i}\n" for i in range(count))
    return _HEAD + body


def _constant(value: str, where: str) -> str:
    """A flow with ``value`` (a YAML scalar or flow collection) as a constant."""
    if where == "service":
        return task_flow(f"      value: {value}\n")
    if where == "mapping":
        return (
            f"{_HEAD}  - type: pass\n    name: p\n    outputMappings:\n"
            f"      - target: value\n        source: {value}\n"
        )
    if where == "duration":
        return f"{_HEAD}  - type: wait\n    name: w\n    duration: {value}\n"
    if where == "timestamp":
        return f"{_HEAD}  - type: wait\n    name: w\n    timestamp: {value}\n"
    if where == "timeout":
        return task_flow(extra=f"    timeoutSeconds: {value}\n")
    if where == "retry":
        return task_flow(
            extra="    retry:\n      - errors: [FnF.ALL]\n"
            f"        intervalSeconds: {value}\n        maxAttempts: {value}\n"
        )
    if where == "condition":
        return (
            f"{_HEAD}  - type: choice\n    name: c\n    choices:\n"
            f"      - condition: {value}\n        steps:\n          - type: pass\n"
            "            name: then\n    default:\n      steps:\n        - type: pass\n"
            "          name: otherwise\n"
        )
    if where == "collection":
        return (
            f"{_HEAD}  - type: foreach\n    name: f\n    iterationMapping:\n"
            f"      collection: {value}\n      item: x\n    steps:\n      - type: pass\n"
            "        name: each\n"
        )
    return f"{_HEAD}  - type: pass\n    name: {value}\n"  # "name"


_YAML_CONSTANTS = [
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "-0",
    "0x1F",
    "0o17",
    "1_000",
    "99999999999999999999",
    "9" * 4300,
    "9" * 4301,
    "-1",
    "0",
    "2147483648",
    "'1e400'",
    '"\\0"',
    '"\\ud800"',
    '"\\udfff"',
    '"\\U0010FFFF"',
    '"\\u202e"',
    '"\\x85"',
    '"\\N"',
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!custom 1",
    "!!int abc",
    "!!float x",
    "!!timestamp 2020-01-01",
    "2020-01-01T00:00:00Z",
    "'9999-12-31T23:59:59Z'",
    "'0001-01-01T00:00:00Z'",
    "yes",
    "~",
    "[]",
    "{}",
    "''",
    "$input",
    "$.a[999999999999999999999]",
    "$.a[-1]",
    "$local[*][*][*]",
    "$context.task.token",
    "$.",
    "$..a",
    "$['a']['b']",
    "'$.a == 1 && $.b'",
    "'" + "(" * 300 + "$.a" + ")" * 300 + "'",
    "'" + "(" * 3000 + "$.a" + ")" * 3000 + "'",
    "'" + " && ".join(["$.a == 1"] * 2000) + "'",
    "'" + "!" * 5000 + "$.a'",
    "'" + "$.a" + "[0]" * 2000 + "'",
    "'" + "$" + ".a" * 5000 + "'",
    "'" + "-" * 3000 + "1'",
]


def _expression(kind: str, n: int) -> str:
    """A condition or path that nests, or repeats, ``n`` times."""
    if kind == "parentheses":
        return "(" * n + "$.a == 1" + ")" * n
    if kind == "unclosed":
        return "(" * n + "$.a"
    if kind == "negations":
        return "!" * n + "$.a"
    if kind == "minus":
        return "-" * n + "1 == $.a"
    if kind == "and":
        return " && ".join(["$.a == 1"] * max(n, 1))
    if kind == "or":
        return " || ".join(["!$.a"] * max(n, 1))
    if kind == "compare":
        return " == ".join(["$.a"] * max(n, 1))
    if kind == "brackets":
        return "$.a" + "[0]" * n
    if kind == "open-brackets":
        return "$.a" + "[" * n
    if kind == "dots":
        return "$" + ".a" * n
    if kind == "wildcards":
        return "$.a" + "[*]" * n
    return "$.a == " + json.dumps("x" * n)  # "string"


def expressions() -> st.SearchStrategy[str]:
    """Conditions and paths: deep nesting and long repetition, as YAML single-quoted scalars."""
    kinds = [
        "parentheses",
        "unclosed",
        "negations",
        "minus",
        "and",
        "or",
        "compare",
        "brackets",
        "open-brackets",
        "dots",
        "wildcards",
        "string",
    ]
    return st.builds(
        lambda kind, n: "'" + _expression(kind, n).replace("'", "''") + "'",
        st.sampled_from(kinds),
        _DEPTHS.filter(lambda n: n < 40000),
    )


def expression_flows() -> st.SearchStrategy[str]:
    """Flows with a hostile expression as a choice's condition (most often) or as a path."""
    places = ["condition"] * 3 + ["collection", "mapping", "duration", "timestamp", "service"]
    return st.builds(_constant, expressions(), st.sampled_from(places))


_YAML_GARBAGE = [
    "",
    "\n",
    "# only a comment\n",
    "---\n---\n",
    "version: v1\ntype: flow\nsteps:\n",
    "version: v1\ntype: flow\nsteps: []\n",
    "version: v2\ntype: flow\nsteps:\n  - type: pass\n    name: a\n",
    "- a\n- b\n",
    "version: v1\nversion: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n",
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n  - type: pass\n    name: a\n",
    "version: v1\ntype: flow\nsteps:\n\t- type: pass\n",
    "\ufeffversion: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n",
    "version: v1\r\ntype: flow\r\nsteps:\r\n  - type: pass\r\n    name: a\r\n",
    "version: v1\rtype: flow\rsteps:\r  - type: pass\r    name: a\r",
    "{version: v1, type: flow, steps: [{type: pass, name: a}]}",
    '{"version": "v1", "type": "flow", "steps": [{"type": "pass", "name": "a"}]}',
    "version: v1\ntype: flow\nsteps:\n  - &s {type: pass, name: a}\n  - *s\n",
    "version: v1\ntype: flow\nsteps:\n  - *undefined\n",
    "version: v1\ntype: flow\nsteps: &x\n  - type: parallel\n    name: p\n    branches:\n"
    "      - steps: *x\n",
    "? [a, b]\n: c\n",
    "%YAML 1.1\n---\nversion: v1\n",
    "%TAG ! tag:evil.example,2000:\n---\nversion: !x v1\n",
    "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: a\n...\ngarbage: [\n",
]


def definitions(top: int = 70000) -> st.SearchStrategy[Value]:
    """Hostile definitions: aliases, depth, size, odd Unicode and numbers, JSON, garbage."""
    bombs = st.one_of(
        st.builds(_alias_bomb, st.integers(1, 9), st.integers(2, 10)),
        st.builds(_alias_string, st.sampled_from([10, 1000, 10000, 30000]), st.integers(1, 400)),
        st.builds(_merge_bomb, st.integers(1, 6), st.integers(2, 8)),
    )
    deep = st.one_of(
        st.builds(
            _deep_flow_style, _DEPTHS.filter(lambda d: d < 40000), st.sampled_from(["list", "map"])
        ),
        st.builds(
            _deep_block_style,
            st.one_of(st.integers(1, 10), st.integers(58, 70), st.integers(190, 250)),
        ),
        st.builds(
            _nested_steps,
            st.one_of(
                st.integers(1, 8), st.integers(14, 22), st.integers(60, 70), st.integers(190, 230)
            ),
            st.sampled_from(["parallel", "foreach", "choice"]),
        ),
    )
    big = st.one_of(
        st.builds(
            _many_steps,
            st.one_of(st.integers(1, 50), st.integers(1000, 2200)),
            st.sampled_from([1, 20]),
        ),
        st.builds(
            lambda n: _constant('"' + "x" * n + '"', "service"),
            st.sampled_from([1000, 30000, 60000, 66000]),
        ),
        st.builds(lambda n: _constant("s" * n, "name"), st.sampled_from([127, 128, 129, 10000])),
    )
    odd_constants = st.builds(
        _constant,
        st.one_of(st.sampled_from(_YAML_CONSTANTS), st.sampled_from(_ODD).map(json.dumps)),
        st.sampled_from(
            [
                "service",
                "mapping",
                "duration",
                "timestamp",
                "timeout",
                "retry",
                "condition",
                "collection",
                "name",
            ]
        ),
    )
    odd_expressions = expression_flows()
    odd_text = st.builds(
        lambda base, odd, at: base[: at % len(base)] + odd + base[at % len(base) :],
        st.sampled_from([task_flow(), _many_steps(2, 1)]),
        st.sampled_from(
            [
                *_ODD,
                "\x01",
                "\x7f",
                "\ud7ff",
                "\ue000",
                "\t",
                "\r",
                "---",
                "&a",
                "*a",
                "!!",
                "{",
                "[",
            ]
        ),
        st.integers(0, 400),
    )
    return st.one_of(
        bombs,
        deep,
        big,
        odd_constants,
        odd_expressions,
        odd_text,
        st.sampled_from(_YAML_GARBAGE),
        st.text(max_size=100),
        raw_values(),
        _repeated(["a", "[", "{", "- ", "&a ", "*a "], top),
    )


# -- requests ---------------------------------------------------------------------------------

NAME, TEXT, INT, WAIT, TIME, JSON, TOKEN, DEFINITION = (
    "name",
    "text",
    "int",
    "wait",
    "time",
    "json",
    "token",
    "definition",
)

#: Each action's parameters and their kinds.
ACTIONS: dict[str, dict[str, str]] = {
    "CreateFlow": {
        "Name": NAME,
        "Definition": DEFINITION,
        "Description": TEXT,
        "Type": TEXT,
        "RoleArn": TEXT,
    },
    "UpdateFlow": {"Name": NAME, "Definition": DEFINITION, "Description": TEXT, "RoleArn": TEXT},
    "DescribeFlow": {"Name": NAME},
    "ListFlows": {"Limit": INT, "NextToken": TEXT},
    "DeleteFlow": {"Name": NAME},
    "StartExecution": {
        "FlowName": NAME,
        "ExecutionName": NAME,
        "Input": JSON,
        "CallbackFnFTaskToken": TOKEN,
    },
    "DescribeExecution": {"FlowName": NAME, "ExecutionName": NAME, "WaitTimeSeconds": WAIT},
    "StopExecution": {"FlowName": NAME, "ExecutionName": NAME, "Error": TEXT, "Cause": TEXT},
    "ListExecutions": {
        "FlowName": NAME,
        "Status": TEXT,
        "ExecutionNamePrefix": TEXT,
        "StartedTimeBegin": TIME,
        "StartedTimeEnd": TIME,
        "Limit": INT,
        "NextToken": TEXT,
    },
    "GetExecutionHistory": {
        "FlowName": NAME,
        "ExecutionName": NAME,
        "Limit": INT,
        "NextToken": INT,
    },
    "ReportTaskSucceeded": {"TaskToken": TOKEN, "Output": JSON},
    "ReportTaskFailed": {"TaskToken": TOKEN, "Error": TEXT, "Cause": TEXT},
}

#: The role whose key may call each action (admin may call all).
ROLE_ACTIONS: dict[str, str] = {
    **dict.fromkeys(["ReportTaskSucceeded", "ReportTaskFailed"], "worker"),
    **dict.fromkeys(
        ["DescribeFlow", "ListFlows", "DescribeExecution", "ListExecutions", "GetExecutionHistory"],
        "reader",
    ),
}

# Valid values too, so that requests get past the first check and reach the deeper ones.
_VALID: dict[str, list[Value]] = {
    NAME: [Ref("flow"), Ref("running"), Ref("finished"), Ref("fresh")],
    TEXT: ["", "x", "Running", "Succeeded", "a", "FDL", "MyError"],
    INT: ["", "1", "2", "60", "99"],
    WAIT: ["", "0", "1"],
    TIME: ["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"],
    JSON: ["{}", '{"a": 1}', '{"a": [1, 2, {"b": null}]}'],
    TOKEN: [Ref("token"), Ref("done_token"), ""],
    DEFINITION: [task_flow(), _many_steps(1, 1)],
}

_BY_KIND: dict[str, Callable[[], st.SearchStrategy[Value]]] = {
    NAME: hostile_names,
    TEXT: hostile_texts,
    INT: hostile_ints,
    WAIT: lambda: hostile_ints().filter(lambda v: not 1 < wait_seconds(v) <= 60),
    TIME: lambda: st.one_of(st.sampled_from(_TIMES), hostile_texts(5000)),
    JSON: json_texts,
    TOKEN: task_tokens,
    DEFINITION: definitions,
}


def _value(kind: str) -> st.SearchStrategy[Value]:
    return st.one_of(st.sampled_from(_VALID[kind]), _BY_KIND[kind]())


def _often(draw: st.DrawFn, times_in_eight: int) -> bool:
    return draw(st.sampled_from([True] * times_in_eight + [False] * (8 - times_in_eight)))


@st.composite
def _params(draw: st.DrawFn, action: str) -> dict[str, Value]:
    params: dict[str, Value] = {}
    for name, kind in ACTIONS[action].items():
        if _often(draw, 7):  # most often given, so that requests get past the first checks
            params[name] = draw(_value(kind))
    if params and not _often(draw, 7):  # one of them not UTF-8
        params[draw(st.sampled_from(sorted(params)))] = draw(raw_values())
    if not _often(draw, 7):  # an unknown parameter, perhaps with a hostile name
        key = draw(
            st.one_of(
                st.sampled_from(["", "X", "Action ", "action", "\x00", "é"]), st.text(max_size=8)
            )
        )
        if key not in ("Action", "Signature") and key not in params:
            params[key] = draw(hostile_texts(1000))
    return params


@st.composite
def requests(draw: st.DrawFn, actions: list[str] | None = None) -> FuzzRequest:
    """Any action, or one of ``actions``, with random and boundary parameters."""
    action = draw(st.sampled_from(actions or sorted(ACTIONS)))
    params = draw(_params(action))
    allowed = ROLE_ACTIONS.get(action, "admin")
    # Mostly a key that may call the action, sometimes one that may not, or no signature.
    role = draw(
        st.sampled_from(
            [allowed] * 6 + ["admin"] * 6 + ["worker", "reader", "unsigned", "tampered"]
        )
    )
    transport = draw(st.sampled_from(["form"] * 8 + ["query", "split", "get", "text"]))
    named: str | None = action
    if not _often(draw, 7):  # the action itself, odd
        named = draw(
            st.sampled_from([None, "", "createflow", "CreateFlow ", "Nope", "\x00", "é" * 200])
        )
    if not _often(draw, 7):
        version = draw(st.sampled_from(["", "2019-03-15 ", "2017-03-15", "\x00"]))
        params = {**params, "Version": version}
    return FuzzRequest(named, params, role, transport)
