"""`relayflow validate --strict`: does an installed integration serve every task step?"""

from __future__ import annotations

from collections.abc import Sequence

from relayflow.engine.integration import Integration
from relayflow.fdl import Flow, Problem, TaskStep
from relayflow.fdl.limits import DEFAULT_LIMITS, DefinitionLimits
from relayflow.fdl.source import parse_source

__all__ = ["integration_problems"]


def integration_problems(
    flow: Flow,
    integrations: Sequence[Integration],
    text: str,
    source: str,
    limits: DefinitionLimits = DEFAULT_LIMITS,
) -> list[Problem]:
    """One problem per task step that no integration claims, or whose pattern it lacks."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    names = ", ".join(i.name for i in integrations) or "none"
    for path, step in flow.walk():
        if not isinstance(step, TaskStep):
            continue
        resource = str(step.resource_arn) if step.resource_arn is not None else step.action or ""
        where = "resourceArn" if step.resource_arn is not None else "action"
        owner = next((i for i in integrations if i.claims(resource)), None)
        if owner is None:
            found.append(
                (
                    (*path, where),
                    f"no installed integration serves {resource} "
                    f"(installed: {names}); install or configure the plugin for it",
                )
            )
        elif step.pattern not in owner.patterns:
            supported = ", ".join(sorted(owner.patterns))
            found.append(
                (
                    (*path, "pattern"),
                    f"integration {owner.name} does not support "
                    f"pattern {step.pattern}; it supports {supported}",
                )
            )
    if not found:
        return []
    located = parse_source(text, source, limits)
    return [Problem(message, path, located.line_of(path), source) for path, message in found]
