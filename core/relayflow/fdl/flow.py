"""The flow: the top-level object of an FDL document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from relayflow.fdl.base import FdlModel, MappingList, Step, StepBase, register_step_container

__all__ = ["SUPPORTED_VERSIONS", "Flow"]

SUPPORTED_VERSIONS = ("v1", "v1beta1", "v1.0")
"""The FDL `version`s a definition may declare."""
#: An execution lasts at most a year, as in Serverless Workflow.
MAX_EXECUTION_SECONDS = 365 * 24 * 3600


class Flow(FdlModel):
    """An FDL flow: a serial list of steps plus the flow's own mappings and timeout."""

    version: Literal["v1", "v1beta1", "v1.0"]
    type: Literal["flow"]
    steps: list[Step] = Field(min_length=1)
    input_mappings: MappingList | None = None
    output_mappings: MappingList | None = None
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_EXECUTION_SECONDS)
    schema_uri: str | None = Field(
        default=None,
        alias="$schema",
        description="Ignored by relayflow; lets editors find the JSON Schema of a JSON flow.",
    )

    def walk(self) -> Iterator[tuple[tuple[str | int, ...], StepBase]]:
        """Every step in document order, with its path (`("steps", 2, "branches", 0, ...)`)."""
        yield from _walk(("steps",), self.steps)

    def step_count(self) -> int:
        """How many steps the flow has, nested ones included."""
        return sum(1 for _ in self.walk())


def _walk(
    prefix: tuple[str | int, ...], steps: list[StepBase]
) -> Iterator[tuple[tuple[str | int, ...], StepBase]]:
    for i, step in enumerate(steps):
        path = (*prefix, i)
        yield path, step
        for sub, children in step.child_step_lists():
            yield from _walk(path + sub, children)


register_step_container(Flow)
