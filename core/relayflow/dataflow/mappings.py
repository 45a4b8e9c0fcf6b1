"""Mappings and the default data-flow rules of FDL. Pure functions, no I/O.

A mapping is `{target, source}`. The source is a path (`$input...`, `$local...`, `$context...`,
or `$` / `$.x`, which read the input) or a constant of any JSON type. The target is a key, or a
dotted key path (`current.env`) that creates nested objects.

Which values `$input` and `$local` stand for depends on where a mapping sits:

================  =========================  ==========================
mapping list      `$input`                   `$local`
================  =========================  ==========================
inputMappings     the parent's input         the parent's local
outputMappings    the step's own input       the step's own local
errorMappings     the step's own input       `{"error", "cause"}`
================  =========================  ==========================
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from relayflow.dataflow.paths import MISSING, ExpressionError, Path, compile_path, is_path_like

__all__ = [
    "ConstantSource",
    "MappingRule",
    "PathSource",
    "Rule",
    "ServiceParams",
    "Source",
    "compile_service_params",
    "compile_source",
    "compile_target",
    "default_input",
    "evaluate_mappings",
    "iteration_input",
    "merge_outputs",
    "step_input",
    "step_output",
]

JSONObject = dict[str, Any]


class Source(Protocol):
    """A compiled mapping source."""

    @property
    def raw(self) -> Any:
        """The source as written in the definition."""

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Value of the source; ``scope`` maps `input`, `local` and `context` to values."""


@dataclass(frozen=True, slots=True)
class PathSource:
    """A source that reads a path; a path that selects nothing gives null."""

    raw: str
    path: Path

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Select the path from its root in ``scope``."""
        value = self.path.select(scope.get(self.path.root))
        return None if value is MISSING else value


@dataclass(frozen=True, slots=True)
class ConstantSource:
    """A source that is its own value: a string, number, boolean, null, list or object."""

    raw: Any

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Return the constant (the same object every time; callers must not mutate it)."""
        return self.raw


@functools.lru_cache(maxsize=4096)
def _compile_path_source(raw: str, what: str) -> PathSource:
    return PathSource(raw, compile_path(raw, what=what))


def compile_source(raw: Any, *, what: str = "source") -> Source:
    """Compile a mapping source; a string that is not a path is a constant.

    Raises:
        ExpressionError: ``raw`` looks like a path but does not parse.
    """
    if isinstance(raw, str) and is_path_like(raw):
        return _compile_path_source(raw, what)  # sources repeat; compiled ones are immutable
    return ConstantSource(raw)


@functools.lru_cache(maxsize=4096)
def _split_target(raw: str) -> tuple[str, ...]:
    parts = tuple(raw.split("."))
    if "" in parts:
        raise ExpressionError(f"target '{raw}' has an empty key; write keys as 'a' or 'a.b'")
    return parts


def compile_target(raw: Any) -> tuple[str, ...]:
    """Split a target into its keys: `a.b` → ("a", "b").

    Raises:
        ExpressionError: the target is not a non-empty string of non-empty keys.
    """
    if not isinstance(raw, str) or not raw:
        raise ExpressionError(f"a target must be a non-empty key such as 'name', got {raw!r}")
    return _split_target(raw)


class Rule(Protocol):
    """Anything with a compiled target and source; the FDL `Mapping` model is one."""

    @property
    def target(self) -> tuple[str, ...]:
        """The keys of the target, `("a", "b")` for `a.b`."""

    @property
    def source(self) -> Source:
        """The compiled source."""


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One compiled `{target, source}` pair, for use without the FDL models."""

    target: tuple[str, ...]
    source: Source


def _set(result: JSONObject, keys: Sequence[str], value: Any) -> None:
    node = result
    for key in keys[:-1]:
        child = node.get(key)
        # Copy on the way down: an object placed here by an earlier rule may be the source's
        # own object, and writing into it would change the input it was read from.
        child = dict(child) if isinstance(child, dict) else {}
        node[key] = child
        node = child
    node[keys[-1]] = value


def evaluate_mappings(
    rules: Iterable[Rule], *, input: Any, local: Any, context: Any = None
) -> JSONObject:
    """Build the object that a mapping list describes. Later rules win on the same target."""
    scope = {"input": input, "local": local, "context": context}
    result: JSONObject = {}
    for rule in rules:
        value = rule.source.evaluate(scope)
        if len(rule.target) == 1:
            result[rule.target[0]] = value
        else:
            _set(result, rule.target, value)
    return result


def default_input(parent_input: Mapping[str, Any], parent_local: Mapping[str, Any]) -> JSONObject:
    """A step's input when it has no inputMappings: parent input merged with parent local.

    The local wins on a key present in both.
    """
    return {**parent_input, **parent_local}


def merge_outputs(outputs: Iterable[Mapping[str, Any]]) -> JSONObject:
    """A parent's local: the union of its children's outputs, a later child winning on a key."""
    merged: JSONObject = {}
    for output in outputs:
        merged.update(output)
    return merged


def step_input(
    rules: Sequence[Rule] | None,
    *,
    parent_input: Mapping[str, Any],
    parent_local: Mapping[str, Any],
    context: Any = None,
) -> JSONObject:
    """A step's input: its inputMappings over the parent's input and local, or the default."""
    if rules is None:
        return default_input(parent_input, parent_local)
    # A copy: the parent's local is updated in place when this step ends, and a `$local`
    # placed whole inside this step's data would otherwise come to contain itself.
    return evaluate_mappings(rules, input=parent_input, local=dict(parent_local), context=context)


def step_output(
    rules: Sequence[Rule] | None,
    *,
    input: Mapping[str, Any],
    local: Any,
    context: Any = None,
    empty_by_default: bool = False,
) -> JSONObject:
    """A step's output: its outputMappings over its input and local, or the default.

    The default is the local itself, except for parallel and foreach steps (whose local is a
    list): pass ``empty_by_default=True`` for those and the default output is empty.
    """
    if rules is not None:
        return evaluate_mappings(rules, input=input, local=local, context=context)
    if empty_by_default or local is None:
        return {}
    return dict(local)


def iteration_input(
    foreach_input: Mapping[str, Any], item_key: str, item: Any, index_key: str | None, index: int
) -> JSONObject:
    """The input of one foreach iteration: the foreach's input plus the element (and index)."""
    result = dict(foreach_input)
    result[item_key] = item
    if index_key is not None:
        result[index_key] = index
    return result


_WHOLE_INPUT: Final = "$"


@dataclass(frozen=True, slots=True)
class _ParamPath:
    path: Path | None  # None: the whole mapped input

    def resolve(self, mapped_input: Any) -> Any:
        if self.path is None:
            return mapped_input
        value = self.path.select(mapped_input)
        return None if value is MISSING else value


@dataclass(frozen=True, slots=True)
class ServiceParams:
    """Compiled serviceParams: `$` is the whole mapped input, `$.key` one field of it.

    Any other value is a constant; objects and lists are resolved element by element.
    """

    raw: Mapping[str, Any]
    _compiled: Mapping[str, Any]

    def resolve(self, mapped_input: Any) -> JSONObject:
        """The parameters for one task invocation, given the step's mapped input."""
        return {key: _resolve(value, mapped_input) for key, value in self._compiled.items()}


def _resolve(value: Any, mapped_input: Any) -> Any:
    if isinstance(value, _ParamPath):
        return value.resolve(mapped_input)
    if isinstance(value, dict):
        return {k: _resolve(v, mapped_input) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, mapped_input) for v in value]
    return value


def _compile_param(value: Any, where: str) -> Any:
    if isinstance(value, str) and is_path_like(value):
        if value == _WHOLE_INPUT:
            return _ParamPath(None)
        path = compile_path(value, what=f"serviceParams value {where}")
        if path.root != "input" or value.startswith("$input"):
            raise ExpressionError(
                f"serviceParams value {where} '{value}' must read the mapped input with $ or "
                f"$.key; map {value} in inputMappings first"
            )
        return _ParamPath(path)
    if isinstance(value, dict):
        return {k: _compile_param(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_param(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def compile_service_params(raw: Mapping[str, Any]) -> ServiceParams:
    """Compile a serviceParams object.

    Raises:
        ExpressionError: a value reads something other than the mapped input, or a path
            does not parse.
    """
    compiled = {key: _compile_param(value, str(key)) for key, value in raw.items()}
    return ServiceParams(dict(raw), compiled)
