"""Checks that need a step's siblings: unique names and `goto` targets.

They run on the plain data, not on the models, so that they report even when other parts of
the document fail schema validation.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from relayflow.fdl.problems import DataPath, format_path

__all__ = ["check_siblings"]


def _step_lists(steps: Any, path: DataPath) -> Iterator[tuple[DataPath, list[Any]]]:
    if not isinstance(steps, list):
        return
    yield path, steps
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        here = (*path, i)
        kind = step.get("type")
        if kind == "parallel" and isinstance(step.get("branches"), list):
            for b, branch in enumerate(step["branches"]):
                if isinstance(branch, dict):
                    yield from _step_lists(branch.get("steps"), (*here, "branches", b, "steps"))
        elif kind == "foreach":
            yield from _step_lists(step.get("steps"), (*here, "steps"))
        elif kind == "choice":
            choices = step.get("choices")
            if isinstance(choices, list):
                for c, choice in enumerate(choices):
                    if isinstance(choice, dict):
                        yield from _step_lists(choice.get("steps"), (*here, "choices", c, "steps"))
            default = step.get("default")
            if isinstance(default, dict):
                yield from _step_lists(default.get("steps"), (*here, "default", "steps"))


def _gotos(step: dict[str, Any], path: DataPath) -> Iterator[tuple[DataPath, Any]]:
    choices = step.get("choices")
    if step.get("type") == "choice" and isinstance(choices, list):
        for c, choice in enumerate(choices):
            if isinstance(choice, dict) and "goto" in choice:
                yield (*path, "choices", c, "goto"), choice["goto"]
        default = step.get("default")
        if isinstance(default, dict) and "goto" in default:
            yield (*path, "default", "goto"), default["goto"]
    catch = step.get("catch")
    if isinstance(catch, list):
        for c, policy in enumerate(catch):
            if isinstance(policy, dict) and "goto" in policy:
                yield (*path, "catch", c, "goto"), policy["goto"]


def _no_sibling(target: str, names: list[str]) -> str:
    close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"no sibling step named '{target}'; {hint}siblings are: {', '.join(names)}"


def check_siblings(data: Any) -> list[tuple[DataPath, str]]:
    """Problems with step names and gotos anywhere in the document, as (path, message)."""
    if not isinstance(data, dict):
        return []
    problems: list[tuple[DataPath, str]] = []
    for path, steps in _step_lists(data.get("steps"), ("steps",)):
        seen: dict[str, int] = {}
        for i, step in enumerate(steps):
            name = step.get("name") if isinstance(step, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(
                    (
                        (*path, i, "name"),
                        f"step name '{name}' is already used by {_fmt(path, seen[name])}; "
                        "names must be unique among sibling steps",
                    )
                )
            else:
                seen[name] = i
        names = list(seen)
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            for goto_path, target in _gotos(step, (*path, i)):
                if isinstance(target, str) and target and target not in seen:
                    problems.append((goto_path, _no_sibling(target, names)))
    return problems


def _fmt(path: DataPath, index: int) -> str:
    return format_path((*path, index))
