"""A readable tree of a flow's steps, for `relayflow outline` and the demo."""

from __future__ import annotations

from relayflow.fdl.base import StepBase
from relayflow.fdl.flow import Flow
from relayflow.fdl.steps import (
    ChoiceStep,
    FailStep,
    ForeachStep,
    ParallelStep,
    TaskStep,
    WaitStep,
)

__all__ = ["outline"]


def _describe(step: StepBase) -> str:
    parts: list[str] = []
    if isinstance(step, TaskStep):
        parts.append(str(step.resource_arn or step.action))
        parts.append(f"[{step.pattern}]")
        if step.timeout_seconds:
            parts.append(f"timeout {step.timeout_seconds}s")
        if step.retry:
            parts.append(f"retry x{len(step.retry)}")
    elif isinstance(step, WaitStep):
        parts.append(
            f"for {step.duration}s" if step.duration is not None else f"until {step.timestamp}"
        )
    elif isinstance(step, ForeachStep):
        parts.append(
            f"over {step.iteration_mapping.collection.raw} as {step.iteration_mapping.item}"
        )
    elif isinstance(step, FailStep):
        parts.append(f"error {step.error or '-'}")
    if isinstance(step, TaskStep | ParallelStep | ForeachStep) and step.catch:
        parts.append("catch → " + ", ".join(c.goto for c in step.catch))
    if getattr(step, "end", False):
        parts.append("(end)")
    return " ".join(parts)


def _lines(steps: list[StepBase], indent: str) -> list[str]:
    out: list[str] = []
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        branch, child_indent = ("└─ ", "   ") if last else ("├─ ", "│  ")
        detail = _describe(step)
        out.append(
            f"{indent}{branch}{step.type:<8} {step.name}" + (f"  {detail}" if detail else "")
        )
        inner = indent + child_indent
        if isinstance(step, ChoiceStep):
            for c in step.choices:
                goto = f" → {c.goto}" if c.goto else ""
                out.append(f"{inner}when {c.condition.text}{goto}")
                out.extend(_lines(list(c.steps or []), inner + "   "))
            if step.default is not None:
                goto = f" → {step.default.goto}" if step.default.goto else ""
                out.append(f"{inner}otherwise{goto}")
                out.extend(_lines(list(step.default.steps or []), inner + "   "))
        elif isinstance(step, ParallelStep):
            for b, br in enumerate(step.branches):
                out.append(f"{inner}branch {b}")
                out.extend(_lines(list(br.steps), inner + "   "))
        else:
            for _, children in step.child_step_lists():
                out.extend(_lines(children, inner))
    return out


def outline(flow: Flow, title: str = "flow") -> str:
    """The flow as an indented tree, one step a line."""
    head = f"{title}  (FDL {flow.version}, {flow.step_count()} steps"
    if flow.timeout_seconds:
        head += f", timeout {flow.timeout_seconds}s"
    return "\n".join([head + ")", *_lines(list(flow.steps), "")])
