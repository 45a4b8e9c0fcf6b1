"""What a node says about its step: a short line under its name, and the step's settings."""

from __future__ import annotations

from typing import Any

from relayflow.fdl import (
    ChoiceStep,
    FailStep,
    ForeachStep,
    ParallelStep,
    StepBase,
    TaskStep,
    WaitStep,
)

__all__ = ["MAX_LABEL", "MAX_TEXT", "cut", "step_detail"]

#: The longest label a node shows; the full name is in `name`.
MAX_LABEL = 28
#: The longest text in a node's detail or an edge's label (conditions, causes, resources).
MAX_TEXT = 200


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_detail(step: StepBase) -> tuple[str, dict[str, Any]]:
    """The short line a node shows under its name, and the node's detail."""
    detail: dict[str, Any] = {}
    sub = ""
    if isinstance(step, TaskStep):
        resource = str(step.resource_arn) if step.resource_arn is not None else step.action or ""
        detail.update(resource=cut(resource, MAX_TEXT), pattern=step.pattern)
        short = resource.rsplit(":", 1)[-1].replace("services/", "").replace("/functions/", "/")
        sub = short if step.pattern == "requestResponse" else f"{short} ({step.pattern})"
        if step.timeout_seconds:
            detail["timeoutSeconds"] = step.timeout_seconds
        if step.correlation_key is not None:
            detail["correlationKey"] = cut(step.correlation_key.raw, MAX_TEXT)
    elif isinstance(step, WaitStep):
        if step.duration is not None:
            detail["duration"] = step.duration
            sub = f"for {step.duration}s" if not isinstance(step.duration, str) else "for "
            sub += step.duration if isinstance(step.duration, str) else ""
        else:
            detail["timestamp"] = step.timestamp
            sub = f"until {step.timestamp}"
    elif isinstance(step, ChoiceStep):
        detail["choices"] = [
            {
                "condition": cut(c.condition.text, MAX_TEXT),
                "goto": c.goto,
                "steps": len(c.steps or []),
            }
            for c in step.choices
        ]
        if step.default is not None:
            detail["default"] = {"goto": step.default.goto, "steps": len(step.default.steps or [])}
        sub = f"{len(step.choices)} condition" + ("s" if len(step.choices) > 1 else "")
    elif isinstance(step, ParallelStep):
        detail["branches"] = len(step.branches)
        sub = f"{len(step.branches)} branches"
    elif isinstance(step, ForeachStep):
        it = step.iteration_mapping
        detail.update(collection=it.collection.raw, item=it.item)
        if it.index:
            detail["index"] = it.index
        sub = f"each {it.item} in {it.collection.raw}"
    elif isinstance(step, FailStep):
        detail.update(error=cut(step.error or "", MAX_TEXT), cause=cut(step.cause or "", MAX_TEXT))
        sub = step.error or ""
    for attr in ("retry", "catch"):
        policies = getattr(step, attr, None)
        if policies:
            detail[attr] = [p.model_dump(by_alias=True, exclude_none=True) for p in policies]
    if getattr(step, "end", False):
        detail["end"] = True
    return cut(sub, MAX_LABEL + 8), detail
