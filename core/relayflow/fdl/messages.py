"""Turn pydantic's validation errors into one sentence each, at a path of the document."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from relayflow.fdl.base import Mapping, step_types
from relayflow.fdl.flow import Flow
from relayflow.fdl.problems import DataPath
from relayflow.fdl.steps import (
    Branch,
    CatchPolicy,
    ChoiceBranch,
    ChoiceDefault,
    IterationMapping,
    RetryPolicy,
)

__all__ = ["describe_error"]

# The model that an object inside a list or under a key is validated as.
_MODEL_UNDER_KEY: dict[str, type[BaseModel]] = {
    "retry": RetryPolicy,
    "catch": CatchPolicy,
    "inputMappings": Mapping,
    "outputMappings": Mapping,
    "errorMappings": Mapping,
    "iterationMapping": IterationMapping,
    "choices": ChoiceBranch,
    "default": ChoiceDefault,
    "branches": Branch,
}

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "list": "a list",
    "dict": "an object (a mapping)",
    "model": "an object (a mapping)",
    "model_attributes": "an object (a mapping)",
}


def _data_path(raw: Any, loc: tuple[int | str, ...]) -> tuple[DataPath, Any]:
    """Map pydantic's location to a path in the document, dropping union tags.

    Returns the path and the raw value at the deepest existing node of it.
    """
    path: list[str | int] = []
    node = raw
    after_index = False
    for el in loc:
        if (
            after_index
            and isinstance(node, dict)
            and isinstance(el, str)
            and node.get("type") == el
        ):
            after_index = False
            continue  # the tag pydantic adds for a tagged union
        after_index = isinstance(el, int)
        path.append(el)
        if isinstance(node, dict) and isinstance(el, str):
            node = node.get(el)
        elif isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node):
            node = node[el]
        else:
            node = None
    return tuple(path), node


def _value_at(raw: Any, path: DataPath) -> Any:
    node = raw
    for el in path:
        if isinstance(node, dict) and isinstance(el, str):
            node = node.get(el)
        elif isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node):
            node = node[el]
        else:
            return None
    return node


def _model_at(raw: Any, path: DataPath) -> tuple[type[BaseModel] | None, str]:
    """The model the object at ``path`` is validated as, and a name for it in messages."""
    if not path:
        return Flow, "the flow"
    keys = [p for p in path if isinstance(p, str)]
    last_key = keys[-1] if keys else ""
    if last_key == "steps" and isinstance(path[-1], int):
        node = _value_at(raw, path)
        kind = node.get("type") if isinstance(node, dict) else None
        step_model = step_types().get(kind) if isinstance(kind, str) else None
        return step_model, f"{kind} step" if step_model else "step"
    model = _MODEL_UNDER_KEY.get(last_key)
    if model is not None:
        return model, f"{last_key} entry" if isinstance(path[-1], int) else last_key
    return None, "this object"


def _article(what: str) -> str:
    if what.startswith(("the ", "this ")) or not what.endswith((" step", " entry")):
        return what
    return ("an " if what[0] in "aeiou" else "a ") + what


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(raw: Any, error: ErrorDetails) -> tuple[DataPath, str]:
    """One problem: the document path it concerns and a sentence saying what is wrong."""
    path, node = _data_path(raw, tuple(error["loc"]))
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    given = error.get("input")

    if kind == "missing":
        parent = path[:-1]
        _, what = _model_at(raw, parent)
        return parent, f"{_article(what)} needs '{path[-1]}', which is missing"
    if kind == "extra_forbidden":
        model, what = _model_at(raw, path[:-1])
        key = str(path[-1])
        allowed = _allowed_keys(model) if model else []
        hint = _suggest(key, allowed)
        listed = f"{_article(what)} takes: {', '.join(allowed)}" if allowed else ""
        return path, f"unknown attribute '{key}'; {hint}{listed}".rstrip("; ")
    if kind in ("step_type", "union_tag_invalid", "union_tag_not_found"):
        names = sorted(step_types())
        step = node if isinstance(node, dict) else {}
        tag = step.get("type")
        if not isinstance(node, dict):
            return path, f"a step must be an object with a type, got {_show(node)}"
        if tag is None:
            return path, f"this step has no 'type'; use one of: {', '.join(names)}"
        hint = _suggest(str(tag), names)
        message = f"unknown step type {_show(tag)}; {hint}use one of: {', '.join(names)}"
        return (*path, "type"), message
    if kind == "literal_error":
        return (
            path,
            f"must be {ctx.get('expected', 'one of the allowed values')}, got {_show(given)}",
        )
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return path, message
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        word = "at least" if kind == "greater_than_equal" else "more than"
        return path, f"must be {word} {bound}, got {_show(given)}"
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        word = "at most" if kind == "less_than_equal" else "less than"
        return path, f"must be {word} {bound}, got {_show(given)}"
    if kind == "too_short":
        return (
            path,
            f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}",
        )
    if kind == "too_long":
        return path, f"takes at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind == "string_too_short":
        return path, "must not be empty"
    if kind == "string_pattern_mismatch" and path and path[-1] == "action":
        return path, f"action {_show(given)} must look like service:Action, e.g. fnf:StartExecution"
    if kind == "int_from_float":
        return path, f"must be a whole number, got {_show(given)}"
    base = kind.removesuffix("_type").removesuffix("_parsing")
    if base in _TYPE_NAMES:
        return path, f"must be {_TYPE_NAMES[base]}, got {_show(given)}"
    text = f"{error['msg'][:1].lower()}{error['msg'][1:]}"
    return path, text if "got" in text else f"{text}, got {_show(given)}"
