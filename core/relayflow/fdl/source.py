"""Read YAML or JSON text into plain data, remembering the line of every value.

PyYAML's parser (its C implementation when available) produces events, and the data is built
from them here, so that each value's path maps to its line without building a node tree first.
On the way:

- funcraft's `!Ref service/function` becomes the `acs:fc:::services/.../functions/...` ARN;
- timestamps stay strings, whether quoted or not (JSON has no date type);
- a key given twice in one mapping is reported rather than silently overwritten;
- anchors, aliases and merge keys (`<<`) work as in YAML 1.1.

Reading is bounded by `DefinitionLimits`, whatever the text: its size is checked before it is
parsed, nesting is checked as containers open, and each alias is charged for what it stands for
(an alias is kept as a reference to its anchor's value, so the data stays as small as the text,
but everything that walks it later, validation first, walks every use).
Values JSON cannot hold (integers too long to print, infinities, NaN, lone surrogates) are
problems too, since a flow's constants become execution data, which is JSON. What each scalar
means, and which values JSON cannot hold, is decided in `relayflow.fdl.scalars`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import is_
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from relayflow.fdl.limits import DEFAULT_LIMITS, DefinitionLimits
from relayflow.fdl.problems import DataPath, Problem
from relayflow.fdl.scalars import (
    PLAIN_CACHE,
    SURROGATE,
    SURROGATE_ESCAPE,
    Unreadable,
    escape_line,
    find_surrogate,
    json_constant,
    json_float,
    plain,
    surrogate_problem,
    tagged,
)

__all__ = ["ParsedSource", "parse_quick", "parse_source", "size_problem"]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml refuses the escape of a lone surrogate; PyYAML's own parser reads it.
_PARSER_READS_SURROGATES = _Loader is yaml.SafeLoader
_MERGE = "<<"

# (values, height, bytes) of a subtree, aliases expanded: what one more use of it costs.
_Weight = tuple[int, int, int]


@dataclass
class ParsedSource:
    """The data of a document, where each value sits in the text, and problems found reading it.

    Lines are kept per container (keyed by the container's id) and only turned into a line for a
    path when asked, because most documents are valid and never ask.
    """

    name: str
    data: Any = None
    problems: list[Problem] = field(default_factory=list)
    container_lines: dict[int, tuple[int, dict[Any, int]]] = field(default_factory=dict)

    def line_of(self, path: DataPath) -> int | None:
        """The line of the value at ``path``, or of its nearest ancestor that exists.

        A mapping value's line is its key's line, since block values start on the next line.
        """
        node = self.data
        entry = self.container_lines.get(id(node))
        line = entry[0] if entry else 1
        for part in path:
            if entry is None or part not in entry[1]:
                break
            line = entry[1][part]
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            entry = self.container_lines.get(id(node))
        return line


class _Stop(Exception):
    """Reading cannot go on; the reason is already a problem."""


def size_problem(size: int, limits: DefinitionLimits, name: str) -> Problem:
    """The problem of a definition larger than ``limits`` allow."""
    message = f"the definition is {size:,} bytes, more than the limit of {limits.max_bytes:,} bytes"
    return Problem(message, (), None, name)


def _measure(text: str, name: str, limits: DefinitionLimits) -> tuple[int, Problem | None]:
    """The UTF-8 size of ``text``, or the problem that stops it from being read at all."""
    if len(text) > limits.max_bytes:  # each character is at least one byte
        return len(text), size_problem(len(text), limits, name)
    if text.isascii():
        return len(text), None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, which the parser would choke on
        line = text.count("\n", 0, exc.start) + 1
        return 0, Problem(surrogate_problem(text[exc.start]), (), line, name)
    if size > limits.max_bytes:
        return size, size_problem(size, limits, name)
    return size, None


@dataclass(slots=True)
class _Frame:
    value: dict[str, Any] | list[Any]
    path: DataPath
    anchor: str | None
    lines: dict[Any, int]
    key: Any = None  # the key waiting for its value; None while a key is expected
    key_ok: bool = True
    merges: list[dict[str, Any]] | None = None
    nodes: int = 1  # values in the subtree, this container included, aliases expanded
    height: int = 1  # containers on the deepest path down, this one included
    size: int = 2  # about the bytes of the subtree written out, aliases expanded


class _Builder:
    """Builds plain data from parser events, noting the line of each value.

    It also weighs what it builds (`_Weight`), so that an alias is charged for everything it
    stands for before anything walks the data.
    """

    def __init__(self, parsed: ParsedSource, limits: DefinitionLimits, size: int) -> None:
        self.parsed = parsed
        self.limits = limits
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, _Weight]] = {}
        self.open_anchors: set[str] = set()
        self.root: Any = None
        self.documents = 0
        self.alias_nodes = 0  # values added by aliases so far
        self.expanded = size  # bytes of the text with the aliases so far written out

    def problem(self, line: int, path: DataPath, message: str) -> None:
        self.parsed.problems.append(Problem(message, path, line, self.parsed.name))

    def child_path(self) -> DataPath:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is None:
            return top.path
        return (*top.path, top.key)

    def scalar(self, event: ScalarEvent, line: int) -> Any:
        tag = event.tag
        try:
            if tag is None or tag == "!":
                return plain(event.value) if event.implicit[0] else event.value
            return tagged(tag, event.value)
        except Unreadable as exc:
            self.problem(line, self.child_path(), exc.message)
            return event.value

    def add(self, value: Any, line: int, weight: _Weight, *, is_key_candidate: bool) -> None:
        """Put a finished value into the container on top of the stack."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        nodes, height, size = weight
        top.nodes += nodes
        top.size += size
        if height >= top.height:
            top.height = height + 1
        if isinstance(top.value, list):
            top.lines[len(top.value)] = line
            top.value.append(value)
            return
        if top.key is None:  # this value is a key
            if is_key_candidate and isinstance(value, str | int | float | bool):
                key = str(value).lower() if isinstance(value, bool) else str(value)
                self.key(top, key, line)
            else:
                self.problem(line, top.path, "a mapping key must be a plain string")
                top.key, top.key_ok = "", False
            return
        key, ok = top.key, top.key_ok
        top.key = None
        if not ok:
            return
        if key == _MERGE:
            merged = value if isinstance(value, list) else [value]
            if all(isinstance(m, dict) for m in merged):
                top.merges = [*(top.merges or []), *merged]
            else:
                self.problem(line, top.path, "a merge key (<<) needs a mapping or a list of them")
            return
        assert isinstance(top.value, dict)
        top.value[key] = value

    def key(self, top: _Frame, key: str, line: int) -> None:
        top.key, top.key_ok = key, True
        top.size += len(key) + 4
        if key in top.value and key != _MERGE:
            self.problem(line, (*top.path, key), f"key '{key}' appears twice in this mapping")
        top.lines[key] = line

    def start(self, value: dict[str, Any] | list[Any], anchor: str | None, line: int) -> None:
        path = self.child_path()
        if len(self.stack) >= self.limits.max_depth:
            limit = self.limits.max_depth
            self.problem(line, path, f"values nest deeper than the limit of {limit} levels")
            raise _Stop
        if anchor is not None:
            self.open_anchors.add(anchor)
        lines: dict[Any, int] = {}
        self.stack.append(_Frame(value, path, anchor, lines))
        self.parsed.container_lines[id(value)] = (line, lines)

    def end(self, line: int) -> None:
        frame = self.stack.pop()
        value = frame.value
        start_line, lines = self.parsed.container_lines[id(value)]
        if frame.merges and isinstance(value, dict):
            merged: dict[str, Any] = {}
            for extra in reversed(frame.merges):
                merged.update(extra)
            merged.update(value)
            value = merged
            self.parsed.container_lines[id(value)] = (start_line, lines)
        weight = (frame.nodes, frame.height, frame.size)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (value, weight)
        self.add(value, start_line, weight, is_key_candidate=False)

    def alias(self, anchor: str, line: int) -> None:
        """Add the value of ``anchor`` again, charging the budget for all of it."""
        if anchor in self.open_anchors:
            self.problem(line, self.child_path(), "an alias refers to the mapping that contains it")
            raise _Stop
        value, weight = self.anchors.get(anchor, (None, (1, 0, 4)))
        nodes, height, size = weight
        self.alias_nodes += nodes
        self.expanded += size
        limits = self.limits
        message = None
        if len(self.stack) + height > limits.max_depth:
            message = f"this alias nests values deeper than the limit of {limits.max_depth} levels"
        elif self.alias_nodes > limits.max_alias_nodes:
            message = (
                "this alias brings the values added by aliases past the limit of "
                f"{limits.max_alias_nodes:,}"
            )
        elif self.expanded > limits.max_bytes:
            message = (
                "this alias brings the definition, aliases written out, past the limit of "
                f"{limits.max_bytes:,} bytes"
            )
        if message is not None:
            self.problem(line, self.child_path(), message)
            raise _Stop
        self.add(value, line, weight, is_key_candidate=True)

    def run(self, events: Iterable[Event]) -> None:
        """Consume the parser's events."""
        for event in events:
            self.feed(event)

    def feed(self, event: Event) -> None:
        """Handle one event, in full generality."""
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, ScalarEvent):
            found = SURROGATE.search(event.value) if event.style == '"' else None
            if found:  # only a pure-Python parser reads such an escape; libyaml refuses it
                self.problem(line, self.child_path(), surrogate_problem(found.group()))
                raise _Stop
            top = self.stack[-1] if self.stack else None
            if top is not None and isinstance(top.value, dict) and top.key is None:
                self.key(top, event.value, line)  # keys keep their text, whatever their tag
                return
            value = self.scalar(event, line)
            weight = (1, 0, len(event.value) + 3)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, weight)
            self.add(value, line, weight, is_key_candidate=True)
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            if event.tag not in _CONTAINER_TAGS:  # `!!python/object:...` and the like
                message = f"YAML tag {event.tag} is not supported on a mapping or a list"
                self.problem(line, self.child_path(), message)
            self.start({} if isinstance(event, MappingStartEvent) else [], event.anchor, line)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            self.end(line)
        elif isinstance(event, AliasEvent):
            self.alias(event.anchor or "", line)
        elif isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.problem(
                    line,
                    (),
                    "the file holds more than one YAML document; a flow is a single document",
                )
                raise _Stop


# Tags a mapping or list may carry: none, or one of YAML's own that still makes JSON data.
_CONTAINER_TAGS = frozenset(
    {None, "!"} | {f"tag:yaml.org,2002:{kind}" for kind in ("map", "seq", "set", "omap", "pairs")}
)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _plain_yaml(text: str, max_depth: int) -> Any:
    """Build plain YAML without lines; None unless it is one document with nothing unusual.

    Anything the full reader would report or treat specially (tags, anchors, aliases, merge
    keys, repeated keys, several documents, a scalar document, nesting past ``max_depth``,
    values JSON cannot hold) makes it give up, so that where it answers, it answers exactly
    what `parse_source` would.

    Raises:
        yaml.YAMLError: the text does not parse.
        Unreadable: a scalar has no JSON value.
    """
    stack: list[Any] = []
    keys: list[Any] = []
    no_key = keys  # a marker no key can equal
    root: Any = None
    cache = PLAIN_CACHE
    documents = 0
    ev: Any  # events are read by their class, which mypy cannot follow
    for ev in yaml.parse(text, Loader=_Loader):
        cls = ev.__class__
        if cls is ScalarEvent:
            if ev.tag is not None or ev.anchor is not None or not stack:
                return None
            top = stack[-1]
            raw = ev.value
            if top.__class__ is dict:
                key = keys[-1]
                if key is no_key:
                    if raw in top or raw == _MERGE:
                        return None
                    keys[-1] = raw
                    continue
                keys[-1] = no_key
            if ev.implicit[0]:
                value = cache.get(raw, cache)
                if value is cache:
                    value = plain(raw)
            else:
                value = raw
            if top.__class__ is dict:
                top[key] = value
            else:
                top.append(value)
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if ev.anchor is not None or ev.tag is not None or len(stack) >= max_depth:
                return None
            new: Any = {} if cls is MappingStartEvent else []
            if stack:
                top = stack[-1]
                if top.__class__ is dict:
                    key = keys[-1]
                    if key is no_key:
                        return None  # a mapping or list used as a key
                    top[key] = new
                    keys[-1] = no_key
                else:
                    top.append(new)
            else:
                root = new
            stack.append(new)
            keys.append(no_key)
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            stack.pop()
            keys.pop()
        elif cls is AliasEvent:
            return None
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                return None
    return root


def _deeper_than(data: Any, max_depth: int) -> bool:
    """Whether containers nest more than ``max_depth`` deep in ``data`` (a tree, no aliases).

    A scalar is at depth 0, `{}` and `[1]` at depth 1, as in `relayflow.jsontext.too_deep`.
    One level at a time, with every loop in C (`chain`, `map`, `compress`): a valid flow is
    walked whole, and most of its values are scalars to skip.
    """
    kind = type(data)
    dicts = [data] if kind is dict else []
    lists = [data] if kind is list else []
    depth = 0
    while dicts or lists:
        depth += 1
        if depth > max_depth:
            return True
        children = [*chain.from_iterable(map(dict.values, dicts)), *chain.from_iterable(lists)]
        kinds = list(map(type, children))
        dicts = list(compress(children, map(is_, kinds, repeat(dict))))
        lists = list(compress(children, map(is_, kinds, repeat(list))))
    return False


def _line_of_text(text: str, fragment: str) -> int | None:
    at = text.find(fragment) if fragment else -1
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _read_json(text: str, name: str, limits: DefinitionLimits) -> ParsedSource | None:
    """Read a JSON object; None when it is not plain JSON or needs the full reader."""
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=json_float,
            parse_constant=json_constant,
        )
    except Unreadable as exc:
        return ParsedSource(
            name, None, [Problem(exc.message, (), _line_of_text(text, exc.text), name)]
        )
    except (ValueError, _DuplicateKey, RecursionError):
        return None
    if SURROGATE_ESCAPE.search(text):  # JSON reads a lone surrogate's escape; refuse it here
        found = find_surrogate(data)
        if found is not None:
            path, char = found
            problem = Problem(surrogate_problem(char), path, escape_line(text), name)
            return ParsedSource(name, None, [problem])
    if _deeper_than(data, limits.max_depth):
        return None  # the full reader says where
    return ParsedSource(name, data)


def parse_quick(
    text: str, name: str = "<string>", limits: DefinitionLimits = DEFAULT_LIMITS
) -> ParsedSource | None:
    """Read a document fast, without lines; None when the full reader must do it.

    JSON objects are read by the standard library's JSON reader, other text by a YAML reader
    that keeps no lines. Both give up (return None) on anything the full reader would report
    or treat specially, and then `parse_source` reads the text. A caller that finds problems
    in what this returns asks `parse_source` for their lines; valid documents never pay for
    line tracking. The exceptions are JSON's own: a number JSON text may hold but a flow
    cannot, and a lone surrogate's escape, which the YAML reader cannot read at all; these
    come back as problems, with no data.
    """
    if _measure(text, name, limits)[1] is not None:
        return None
    if text.lstrip().startswith("{"):
        parsed = _read_json(text, name, limits)
        if parsed is not None:
            return parsed
    if _PARSER_READS_SURROGATES and "\\" in text:
        return None  # the full reader looks at each escaped string
    try:
        data = _plain_yaml(text, limits.max_depth)
    except (yaml.YAMLError, Unreadable):
        return None
    return None if data is None else ParsedSource(name, data)


def parse_source(
    text: str, name: str = "<string>", limits: DefinitionLimits = DEFAULT_LIMITS
) -> ParsedSource:
    """Parse YAML or JSON ``text``; syntax errors and exceeded limits become problems.

    Each problem has its line where it has one.
    """
    parsed = ParsedSource(name)
    size, problem = _measure(text, name, limits)
    if problem is not None:
        parsed.problems.append(problem)
        return parsed
    builder = _Builder(parsed, limits, size)
    try:
        builder.run(yaml.parse(text, Loader=_Loader))
    except _Stop:
        return parsed
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "it is not valid YAML or JSON"
        parsed.problems.append(Problem(f"the document does not parse: {what}", (), line, name))
        return parsed
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"the document contains a character YAML does not allow ({exc.character!r})"
        parsed.problems.append(Problem(message, (), line, name))
        return parsed
    except yaml.YAMLError as exc:
        message = " ".join(f"the document does not parse: {exc}".split())
        parsed.problems.append(Problem(message, (), None, name))
        return parsed
    if builder.root is None:
        parsed.problems.append(
            Problem("the document is empty; a flow needs version, type and steps", (), 1, name)
        )
        return parsed
    parsed.data = builder.root
    return parsed
