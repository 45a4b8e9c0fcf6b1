"""Budgets that bound the work of reading one definition, whatever its text."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DEFAULT_LIMITS", "DefinitionLimits"]


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
