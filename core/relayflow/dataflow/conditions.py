"""The condition language of choice steps, parsed by hand and never passed to `eval`.

Grammar, loosest binding first::

    or      := and ("||" and)*
    and     := not ("&&" not)*
    not     := "!" not | compare
    compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand := path | string | number | "true" | "false" | "null" | "(" or ")"

Paths read the step's input (`$`, `$input`) or the context (`$context`). Semantics, chosen to
match what FDL authors write and documented in docs/fdl.md:

- a path that selects nothing is null;
- `==` and `!=` compare JSON values exactly: no coercion between strings, numbers and booleans;
- `<`, `<=`, `>`, `>=` compare two numbers or two strings; any other pair is false;
- a bare operand is true unless it is null, false, 0, "", an empty list or an empty object.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from relayflow.dataflow.paths import MISSING, ExpressionError, Path, parse_path

__all__ = ["MAX_NESTING", "Condition", "compile_condition", "truthy"]

#: How deeply parentheses and `!` may nest in one condition.
MAX_NESTING: Final = 64

Scope = Mapping[str, Any]
_Eval = Callable[[Scope], Any]

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()])
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<path>\$)
    """,
    re.VERBOSE,
)
_LITERAL_WORDS: Final = {"true": True, "false": False, "null": None}


def truthy(value: Any) -> bool:
    """Truth of a bare operand: null, false, 0, "", [] and {} are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | str | list | dict):
        return bool(value)
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
            return test(a, b)
        return False

    return compare


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int
    value: Any = None


@dataclass(frozen=True)
class Condition:
    """A compiled condition. Call `evaluate` with the step input and the context."""

    text: str
    paths: tuple[Path, ...]
    _fn: _Eval = field(repr=False, compare=False)

    def evaluate(self, step_input: Any, context: Any = None) -> bool:
        """Evaluate against the step's input (and `$context`), giving a boolean."""
        return truthy(self._fn({"input": step_input, "context": context}))

    def __str__(self) -> str:
        return self.text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.i = 0
        self.paths: list[Path] = []
        self.depth = 0  # open parentheses and negations: the parser recurses through them

    def _fail(self, message: str, pos: int | None = None) -> ExpressionError:
        where = f", column {pos + 1}" if pos is not None else ""
        return ExpressionError(f"condition '{self.text}'{where}: {message}")

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self._fail(f"unexpected character '{text[pos]}'", pos)
            kind = m.lastgroup or ""
            if kind == "path":
                try:
                    path, end = parse_path(text, pos, what="path")
                except ExpressionError as exc:
                    raise self._fail(str(exc)) from None
                if path.root == "local":
                    raise self._fail(
                        "$local is not available in a condition; read the step's input "
                        "with $ or $input",
                        pos,
                    )
                tokens.append(_Token("path", path.text, pos, path))
                pos = end
                continue
            if kind == "word" and m.group(0) not in _LITERAL_WORDS:
                raise self._fail(
                    f"unknown word '{m.group(0)}'; quote strings (\"{m.group(0)}\") and "
                    "start paths with $",
                    pos,
                )
            if kind == "string":
                try:
                    tokens.append(_Token(kind, m.group(0), pos, _unquote(m.group(0))))
                except ValueError:
                    raise self._fail("bad escape in string", pos) from None
            elif kind != "space":
                tokens.append(_Token(kind, m.group(0), pos))
            pos = m.end()
        return tokens

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, text: str) -> bool:
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text == text:
            self.i += 1
            return True
        return False

    def parse(self) -> _Eval:
        if not self.tokens:
            raise self._fail("is empty")
        fn = self._or()
        tok = self._peek()
        if tok is not None:
            raise self._fail(f"unexpected '{tok.text}'", tok.pos)
        return fn

    def _or(self) -> _Eval:
        parts = [self._and()]
        while self._take("||"):
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda s: any(truthy(p(s)) for p in parts)

    def _and(self) -> _Eval:
        parts = [self._not()]
        while self._take("&&"):
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda s: all(truthy(p(s)) for p in parts)

    def _nest(self, pos: int | None) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self._fail(
                f"nests parentheses and negations more than {MAX_NESTING} levels deep", pos
            )

    def _not(self) -> _Eval:
        tok = self._peek()
        if self._take("!"):
            self._nest(tok.pos if tok else None)
            inner = self._not()
            self.depth -= 1
            return lambda s: not truthy(inner(s))
        return self._compare()

    def _compare(self) -> _Eval:
        left = self._operand()
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text in _COMPARE:
            self.i += 1
            right = self._operand()
            test = _COMPARE[tok.text]
            return lambda s: test(left(s), right(s))
        return left

    def _operand(self) -> _Eval:
        tok = self._peek()
        if tok is None:
            raise self._fail("ends where a value was expected")
        self.i += 1
        if tok.kind == "op" and tok.text == "(":
            self._nest(tok.pos)
            inner = self._or()
            if not self._take(")"):
                nxt = self._peek()
                raise self._fail("missing ')'", nxt.pos if nxt else None)
            self.depth -= 1
            return inner
        if tok.kind == "path":
            path: Path = tok.value
            self.paths.append(path)
            root = "input" if path.root == "input" else "context"

            def read(s: Scope) -> Any:
                value = path.select(s[root])
                return None if value is MISSING else value

            return read
        if tok.kind == "number":
            try:
                number = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            except ValueError:  # Python reads at most 4,300 digits into an int
                raise self._fail("this number is too long", tok.pos) from None
            return lambda s: number
        if tok.kind == "string":
            text: str = tok.value
            return lambda s: text
        if tok.kind == "word":
            literal = _LITERAL_WORDS[tok.text]
            return lambda s: literal
        raise self._fail(f"unexpected '{tok.text}'", tok.pos)


def _unquote(quoted: str) -> str:
    if quoted.startswith('"'):
        result: str = json.loads(quoted)
        return result
    body = quoted[1:-1].replace("\\'", "'").replace('"', '\\"')
    result_single: str = json.loads('"' + body + '"')
    return result_single


@functools.lru_cache(maxsize=1024)
def _compile_text(text: str) -> Condition:
    return _compile_text(text)  # conditions repeat; compiled ones are immutable


def compile_condition(text: Any) -> Condition:
    """Compile a condition string.

    Raises:
        ExpressionError: the condition does not parse; the message names the column.
    """
    if not isinstance(text, str):
        if isinstance(text, bool):
            return Condition(str(text).lower(), (), lambda s: text)
        raise ExpressionError(
            f"a condition must be a string such as '$.ready == true', got {text!r}"
        )
    parser = _Parser(text)
    fn = parser.parse()
    return Condition(text, tuple(parser.paths), fn)
