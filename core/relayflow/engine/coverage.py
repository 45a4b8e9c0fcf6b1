"""`relayflow validate --strict`: every task step served, by integrations whose settings work.

`settings_problems` asks each integration (`Integration.problems`) what in its settings cannot
work: an FC handler module that does not import, a broker URL whose transport kombu does not
know. `integration_problems` adds those of the integrations a flow uses to the flow's own
problems; the server's start and `relayflow config show` use `settings_problems` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from relayflow.engine.integration import Integration
from relayflow.fdl import Flow, Problem, TaskStep
from relayflow.fdl.limits import DEFAULT_LIMITS, DefinitionLimits
from relayflow.fdl.source import parse_source

__all__ = ["integration_problems", "settings_problems"]


def integration_problems(
    flow: Flow,
    integrations: Sequence[Integration],
    text: str,
    source: str,
    limits: DefinitionLimits = DEFAULT_LIMITS,
) -> list[Problem]:
    """One problem per task step that no integration claims, or whose pattern it lacks.

    Then one (without a line: they are about the configuration) per settings problem of each
    integration that serves a step of the flow (see `settings_problems`).
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    owners: dict[int, Integration] = {}
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
            continue
        owners.setdefault(id(owner), owner)
        if step.pattern not in owner.patterns:
            supported = ", ".join(sorted(owner.patterns))
            found.append(
                (
                    (*path, "pattern"),
                    f"integration {owner.name} does not support "
                    f"pattern {step.pattern}; it supports {supported}",
                )
            )
    settings = [
        Problem(message, (), None, source) for message in settings_problems(owners.values())
    ]
    if not found:
        return settings
    located = parse_source(text, source, limits)
    steps = [Problem(message, path, located.line_of(path), source) for path, message in found]
    return steps + settings


def settings_problems(integrations: Iterable[Integration]) -> list[str]:
    """What cannot work in the settings of ``integrations``: one sentence each, naming it.

    Each integration's `Integration.problems` answers for it; one that fails to answer is a
    problem too, so that a broken check never hides a broken setting.
    """
    found: list[str] = []
    for integration in integrations:
        try:
            found.extend(integration.problems())
        except Exception as exc:  # a plugin's bug must not pass for "no problems"
            found.append(
                f"integration {integration.name}: checking its settings failed: "
                f"{type(exc).__name__}: {exc}"
            )
    return found
