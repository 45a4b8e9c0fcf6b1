"""JSONPath as FDL uses it: a root (`$input`, `$local`, `$context` or `$`) and a few selectors.

Supported selectors are `.key`, `["key"]` / `['key']`, `[n]` (negative counts from the end),
`[*]` and `.*`. A path without a wildcard selects one value (or nothing); a path with one or more
wildcards selects a flat list of every match, so `$local[*].parts[*]` flattens the parts of every
element into one list, as the FDL samples rely on.

Paths are compiled once, when a definition loads, and evaluated many times by the engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from relayflow.errors import RelayflowError

__all__ = [
    "MISSING",
    "ROOTS",
    "ExpressionError",
    "Path",
    "Wildcard",
    "compile_path",
    "is_path_like",
    "parse_path",
]

#: The roots a path may start with. `$` alone is an alias of `$input`.
ROOTS: Final = ("input", "local", "context")


class ExpressionError(RelayflowError, ValueError):
    """A mapping source, path or condition that does not parse.

    The message is one sentence meant for the author of the flow.
    """


class _Missing:
    """Marker for 'this path selects nothing'; distinct from a JSON null."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class Wildcard:
    """The `[*]` selector: every element of a list, or every value of an object."""

    def __repr__(self) -> str:
        return "[*]"


_WILDCARD: Final = Wildcard()
Segment = str | int | Wildcard

# A bare key after a dot ends at whitespace or at a character that has a meaning in paths or
# conditions, so `$.a==1` and `$.a && $.b` split where a reader expects.
_KEY = re.compile(r"[^\s.\[\]()=!<>&|,'\"]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_WILD = re.compile(r"\[\s*\*\s*\]|\.\*")
_QUOTED = re.compile(r"""\[\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\]""")
_ROOT = re.compile(r"\$(input|local|context)?(?![A-Za-z0-9_])")
_PATH_START = re.compile(r"\$(?:(?:input|local|context)(?![A-Za-z0-9_])|(?=[.\[]|$))")
_LOOKS_LIKE_ROOT = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)(?=[.\[])")


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled path: its root, its selectors and the text it came from."""

    text: str
    root: str
    segments: tuple[Segment, ...]
    has_wildcard: bool

    def select(self, value: Any) -> Any:
        """Apply the selectors to ``value`` (the root's value).

        Returns the selected value, `MISSING` when a path without wildcards selects nothing,
        or a list of every match when the path has a wildcard.
        """
        if not self.has_wildcard:
            return _select_one(value, self.segments)
        matches = [value]
        for seg in self.segments:
            found: list[Any] = []
            for item in matches:
                if isinstance(seg, Wildcard):
                    if isinstance(item, list):
                        found.extend(item)
                    elif isinstance(item, dict):
                        found.extend(item.values())
                else:
                    picked = _step(item, seg)
                    if picked is not MISSING:
                        found.append(picked)
            matches = found
        return matches

    def __str__(self) -> str:
        return self.text


def _step(value: Any, seg: str | int) -> Any:
    if isinstance(seg, str):
        if isinstance(value, dict):
            return value.get(seg, MISSING)
        return MISSING
    if isinstance(value, list) and -len(value) <= seg < len(value):
        return value[seg]
    return MISSING


def _select_one(value: Any, segments: Sequence[Segment]) -> Any:
    for seg in segments:
        if isinstance(seg, Wildcard):  # pragma: no cover - callers send wildcard-free paths
            raise TypeError("wildcard in a single-value path")
        value = _step(value, seg)
        if value is MISSING:
            return MISSING
    return value


def is_path_like(text: str) -> bool:
    """Say whether ``text`` is meant as a path rather than a constant.

    FDL treats a source that does not start with `$input`, `$local` or `$context` as a constant.
    `$` followed by `.`, `[` or nothing is a path of the step input too; `$ 5` or `$-x` are
    constants. A string such as
    `$imput.x` looks like a path with a misspelt root: it counts as a path here so that it is
    reported instead of silently becoming a constant.
    """
    if not text.startswith("$"):
        return False
    return bool(_PATH_START.match(text)) or bool(_LOOKS_LIKE_ROOT.match(text))


def parse_path(text: str, start: int = 0, *, what: str = "path") -> tuple[Path, int]:
    """Parse a path that starts at ``text[start]``; return it and the index just past it.

    Raises:
        ExpressionError: the text at ``start`` is not a well-formed path.
    """
    m = _ROOT.match(text, start)
    if not m:
        bad = _LOOKS_LIKE_ROOT.match(text, start)
        if bad:
            raise ExpressionError(
                f"unknown root '${bad.group(1)}' in {what} '{text}'; "
                "paths start with $input, $local, $context or $"
            )
        raise ExpressionError(f"{what} '{text}' does not start with $input, $local, $context or $")
    root = m.group(1) or "input"
    pos = m.end()
    segments: list[Segment] = []
    wildcard = False
    while pos < len(text):
        ch = text[pos]
        if ch == ".":
            if (w := _WILD.match(text, pos)) is not None:
                segments.append(_WILDCARD)
                wildcard = True
                pos = w.end()
                continue
            key = _KEY.match(text, pos + 1)
            if key is None:
                raise ExpressionError(
                    f"{what} '{text}' has no key after the '.' at column {pos + 1}"
                )
            segments.append(key.group(0))
            pos = key.end()
        elif ch == "[":
            if (w := _WILD.match(text, pos)) is not None:
                segments.append(_WILDCARD)
                wildcard = True
                pos = w.end()
            elif (i := _INDEX.match(text, pos)) is not None:
                segments.append(int(i.group(1)))
                pos = i.end()
            elif (q := _QUOTED.match(text, pos)) is not None:
                raw = q.group(1) if q.group(1) is not None else q.group(2)
                segments.append(re.sub(r"\\(.)", r"\1", raw))
                pos = q.end()
            else:
                raise ExpressionError(
                    f"{what} '{text}' has a bad selector at column {pos + 1}; "
                    'use [n], [*] or ["key"]'
                )
        else:
            break
    path = Path(text[start:pos], root, tuple(segments), wildcard)
    return path, pos


def compile_path(text: str, *, what: str = "path") -> Path:
    """Parse ``text`` as one whole path, with nothing after it."""
    path, end = parse_path(text, 0, what=what)
    if end != len(text):
        raise ExpressionError(
            f"{what} '{text}' has unexpected text '{text[end:]}' at column {end + 1}"
        )
    return path
