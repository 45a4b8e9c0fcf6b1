"""The engine's limits and a definition's reading budgets: plain dataclasses, a leaf module.

`relayflow.config` builds both from `[engine]` without loading the engine or the FDL models;
`relayflow.engine.Limits` and `relayflow.fdl.DefinitionLimits` are these same classes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DEFAULT_LIMITS", "DefinitionLimits", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Engine limits, with the defaults of Serverless Workflow.

    Attributes:
        max_events: history events one execution may record (5,000).
        max_step_data_bytes: size of a step's input, output, local or resolved serviceParams
            as JSON (32 KiB).
        max_json_depth: how deeply objects and arrays may nest in any JSON value that enters
            the engine or that a step produces (64; relayflow's own limit).
        max_wait_seconds: the longest a wait step may wait (2 days).
        foreach_concurrency: iterations of one foreach running at once (100).
        steps_per_transition: steps run in one transition before the runtime commits and
            comes back for more, so that a long run of pass steps cannot hold the store.
        default_callback_timeout_seconds: the timeout of a `waitForCallback` task that sets
            no `timeoutSeconds` (7 days; 0: none), so that a lost token ends in
            `FnF.TaskTimeout` rather than a wait as long as the execution's.
    """

    max_events: int = 5000
    max_step_data_bytes: int = 32 * 1024
    max_json_depth: int = 64
    max_wait_seconds: float = 2 * 24 * 3600
    foreach_concurrency: int = 100
    steps_per_transition: int = 2000
    default_callback_timeout_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class DefinitionLimits:
    """How large, how deep and how alias-expanded a definition may be.

    A definition is read (and then validated) in time and memory proportional to its text,
    its aliases expanded: these limits keep that small and predictable.

    Attributes:
        max_bytes: the UTF-8 size of the text, and also of the text with every alias replaced
            by what it stands for (a few aliases of a long string would otherwise make
            gigabytes). The largest flow in the public corpus is under 10 KiB.
        max_depth: how deeply values may nest, counting each mapping and list (the document
            itself is level 1; a task's serviceParams are level 4). Constants in mappings and
            serviceParams become execution data, which the engine holds to the same depth.
        max_alias_nodes: how many values aliases may add in all: each use of an alias adds
            every value of what its anchor marks, so nested anchors multiply.
        max_problems: how many problems a report lists (then a note says there are more): a
            256 KiB list of wrong steps has 100,000 of them, megabytes of text to send back.
    """

    max_bytes: int = 256 * 1024
    max_depth: int = 64
    max_alias_nodes: int = 10_000
    max_problems: int = 100

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = DefinitionLimits()
"""The limits a definition is checked against when none are given."""
