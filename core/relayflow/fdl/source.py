"""Read YAML or JSON text into plain data, remembering the line of every value.

PyYAML's parser (its C implementation when available) produces events, and the data is built
from them here, so that each value's path maps to its line without building a node tree first.
On the way:

- funcraft's `!Ref service/function` becomes the `acs:fc:::services/.../functions/...` ARN;
- timestamps stay strings, whether quoted or not (JSON has no date type);
- a key given twice in one mapping is reported rather than silently overwritten;
- anchors, aliases and merge keys (`<<`) work as in YAML 1.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
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
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from relayflow.fdl.problems import DataPath, Problem
from relayflow.fdl.resources import fc_ref_arn

__all__ = ["ParsedSource", "parse_quick", "parse_source"]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "<<"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONSTRUCTOR = SafeConstructor()
_RESOLVER = Resolver()
# Plain scalars repeat a lot in flows (keys, error names, paths); resolving one costs
# microseconds, so results are kept. Only immutable values are cached.
_PLAIN_CACHE: dict[str, Any] = {}
_PLAIN_CACHE_LIMIT = 20000


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


@dataclass(slots=True)
class _Frame:
    value: dict[str, Any] | list[Any]
    path: DataPath
    anchor: str | None
    lines: dict[Any, int]
    key: Any = None  # the key waiting for its value; None while a key is expected
    key_ok: bool = True
    merges: list[dict[str, Any]] | None = None


def _plain(value: str) -> Any:
    cached = _PLAIN_CACHE.get(value, _PLAIN_CACHE)
    if cached is not _PLAIN_CACHE:
        return cached
    tag = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    result: Any = value
    if tag not in (_STR, _TIMESTAMP, _MERGE_TAG):
        try:
            result = _CONSTRUCTOR.construct_object(ScalarNode(tag, value), deep=True)
        except ConstructorError:  # a YAML 1.1 type without a meaning here, such as `=`
            result = value
    if len(_PLAIN_CACHE) < _PLAIN_CACHE_LIMIT:
        _PLAIN_CACHE[value] = result
    return result


class _Builder:
    """Builds plain data from parser events, noting the line of each value."""

    def __init__(self, parsed: ParsedSource) -> None:
        self.parsed = parsed
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        self.open_anchors: set[str] = set()
        self.root: Any = None
        self.documents = 0

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
        if tag is None or tag == "!":
            return _plain(event.value) if event.implicit[0] else event.value
        if tag == "!Ref":
            try:
                return fc_ref_arn(event.value)
            except ValueError as exc:
                self.problem(line, self.child_path(), str(exc))
                return event.value
        if tag.startswith("!") and not tag.startswith("!!"):
            message = f"YAML tag {tag} is not supported; only !Ref service/function is"
            self.problem(line, self.child_path(), message)
            return event.value
        if tag in (_STR, _TIMESTAMP):
            return event.value
        try:
            return _CONSTRUCTOR.construct_object(ScalarNode(tag, event.value), deep=True)
        except ConstructorError as exc:
            self.problem(line, self.child_path(), f"cannot read this value: {exc.problem}")
            return event.value

    def add(self, value: Any, line: int, *, is_key_candidate: bool) -> None:
        """Put a finished value into the container on top of the stack."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
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
        if key in top.value and key != _MERGE:
            self.problem(line, (*top.path, key), f"key '{key}' appears twice in this mapping")
        top.lines[key] = line

    def start(self, value: dict[str, Any] | list[Any], anchor: str | None, line: int) -> None:
        path = self.child_path()
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
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = value
        self.add(value, start_line, is_key_candidate=False)

    def run(self, events: Iterable[Event]) -> None:
        """Consume the parser's events."""
        for event in events:
            self.feed(event)

    def feed(self, event: Event) -> None:
        """Handle one event, in full generality."""
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, ScalarEvent):
            top = self.stack[-1] if self.stack else None
            if top is not None and isinstance(top.value, dict) and top.key is None:
                self.key(top, event.value, line)  # keys keep their text, whatever their tag
                return
            value = self.scalar(event, line)
            if event.anchor is not None:
                self.anchors[event.anchor] = value
            self.add(value, line, is_key_candidate=True)
        elif isinstance(event, MappingStartEvent):
            self.start({}, event.anchor, line)
        elif isinstance(event, SequenceStartEvent):
            self.start([], event.anchor, line)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            self.end(line)
        elif isinstance(event, AliasEvent):
            if event.anchor in self.open_anchors:
                self.problem(
                    line, self.child_path(), "an alias refers to the mapping that contains it"
                )
                raise _Stop
            self.add(self.anchors.get(event.anchor or ""), line, is_key_candidate=True)
        elif isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.problem(
                    line,
                    (),
                    "the file holds more than one YAML document; a flow is a single document",
                )
                raise _Stop


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _plain_yaml(text: str) -> Any:
    """Build plain YAML without lines; None unless it is one document with nothing unusual.

    Anything the full reader would report or treat specially (tags, anchors, aliases, merge
    keys, repeated keys, several documents, a scalar document) makes it give up, so that where
    it answers, it answers exactly what `parse_source` would.
    """
    stack: list[Any] = []
    keys: list[Any] = []
    no_key = keys  # a marker no key can equal
    root: Any = None
    cache = _PLAIN_CACHE
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
                    value = _plain(raw)
            else:
                value = raw
            if top.__class__ is dict:
                top[key] = value
            else:
                top.append(value)
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if ev.anchor is not None or ev.tag is not None:
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


def parse_quick(text: str, name: str = "<string>") -> ParsedSource | None:
    """Read a document fast, without lines; None when the full reader must do it.

    JSON objects are read by the standard library's JSON reader, other text by a YAML reader
    that keeps no lines. Both give up (return None) on anything the full reader would report
    or treat specially, and then `parse_source` reads the text. A caller that finds problems
    in what this returns asks `parse_source` for their lines; valid documents never pay for
    line tracking.
    """
    if text.lstrip().startswith("{"):
        try:
            return ParsedSource(name, json.loads(text, object_pairs_hook=_no_duplicates))
        except (ValueError, _DuplicateKey, RecursionError):
            pass
    try:
        data = _plain_yaml(text)
    except yaml.YAMLError:
        return None
    return None if data is None else ParsedSource(name, data)


def parse_source(text: str, name: str = "<string>") -> ParsedSource:
    """Parse YAML or JSON ``text``; syntax errors become problems with their line."""
    parsed = ParsedSource(name)
    builder = _Builder(parsed)
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
