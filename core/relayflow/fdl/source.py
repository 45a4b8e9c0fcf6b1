"""Read YAML or JSON text into plain data, remembering the line of every node.

The document is composed into nodes by PyYAML (its C parser when available) and then built
into dicts, lists and scalars here, so that each value's path maps to its line. On the way:

- funcraft's `!Ref service/function` becomes the `acs:fc:::services/.../functions/...` ARN;
- timestamps stay strings, whether quoted or not (JSON has no date type);
- a key given twice in one mapping is reported rather than silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from relayflow.fdl.problems import DataPath, Problem
from relayflow.fdl.resources import fc_ref_arn

__all__ = ["ParsedSource", "parse_source"]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class ParsedSource:
    """The data of a document, the line of each path in it, and problems found while reading."""

    name: str
    data: Any = None
    lines: dict[DataPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: DataPath) -> int | None:
        """The line of the node at ``path``, or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class _Builder:
    def __init__(self, parsed: ParsedSource) -> None:
        self.parsed = parsed
        self.scalars = SafeConstructor()
        self.active: set[int] = set()

    def problem(self, node: Node, path: DataPath, message: str) -> None:
        self.parsed.problems.append(
            Problem(message, path, node.start_mark.line + 1, self.parsed.name)
        )

    def build(self, node: Node, path: DataPath) -> Any:
        self.parsed.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problem(node, path, "an alias refers to the mapping that contains it")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(node, path, "this YAML node is not supported")  # pragma: no cover
        return None  # pragma: no cover

    def mapping(self, node: MappingNode, path: DataPath) -> dict[Any, Any]:
        if any(k.tag == _MERGE for k, _ in node.value):
            try:
                self.scalars.flatten_mapping(node)
            except ConstructorError as exc:
                self.problem(node, path, f"bad merge key: {exc.problem}")
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, path) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problem(key_node, path, "a mapping key must be a plain string")
                continue
            if isinstance(key, bool | int | float):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            child = (*path, key)
            if key in result:
                self.problem(key_node, child, f"key '{key}' appears twice in this mapping")
            # A value's line is its key's line: block values start on the line below.
            self.parsed.lines[child] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, child)
        return result

    def scalar(self, node: ScalarNode, path: DataPath) -> Any:
        if node.tag == _STR:
            return node.value
        if node.tag == "!Ref":
            try:
                return fc_ref_arn(node.value)
            except ValueError as exc:
                self.problem(node, path, str(exc))
                return node.value
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag.startswith("!"):
            self.problem(
                node, path, f"YAML tag {node.tag} is not supported; only !Ref service/function is"
            )
            return node.value
        try:
            return self.scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.problem(node, path, f"cannot read this value: {exc.problem}")
            return node.value


def parse_source(text: str, name: str = "<string>") -> ParsedSource:
    """Parse YAML or JSON ``text``; syntax errors become problems with their line."""
    parsed = ParsedSource(name)
    try:
        node = yaml.compose(text, Loader=_Loader)
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
    if node is None:
        parsed.problems.append(
            Problem("the document is empty; a flow needs version, type and steps", (), 1, name)
        )
        return parsed
    parsed.data = _Builder(parsed).build(node, ())
    return parsed
