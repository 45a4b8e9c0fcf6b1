"""A flow's step lists by key, so that running state can name a list with a short string."""

from __future__ import annotations

from dataclasses import dataclass

from relayflow.fdl import Flow, StepBase

__all__ = ["ROOT", "FlowIndex"]

ROOT = "steps"


@dataclass(frozen=True)
class FlowIndex:
    """Every serial step list of a flow, keyed by its path (`steps.3.branches.0.steps`)."""

    flow: Flow
    lists: dict[str, list[StepBase]]
    positions: dict[str, dict[str, int]]  # list key → step name → index

    @classmethod
    def build(cls, flow: Flow) -> FlowIndex:
        """Index ``flow``'s step lists."""
        lists: dict[str, list[StepBase]] = {ROOT: list(flow.steps)}
        for path, step in flow.walk():
            base = ".".join(str(p) for p in path)
            for sub, children in step.child_step_lists():
                lists[base + "." + ".".join(str(p) for p in sub)] = children
        positions = {key: {s.name: i for i, s in enumerate(steps)} for key, steps in lists.items()}
        return cls(flow, lists, positions)

    @staticmethod
    def child_key(key: str, index: int, *sub: str | int) -> str:
        """The key of a list nested in step ``index`` of list ``key``."""
        return f"{key}.{index}." + ".".join(str(s) for s in sub)
