"""What an integration's outcome becomes: a command, held to the limits a worker's report is."""

from __future__ import annotations

from relayflow import jsontext
from relayflow.engine.integration import Submitted, Succeeded, TaskOutcome
from relayflow.engine.model import (
    ERROR_DATA_LIMIT,
    Command,
    Limits,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
)

__all__ = ["MAX_CAUSE_CHARS", "MAX_ERROR_CHARS", "outcome_command"]

#: Serverless Workflow's lengths for a task's or an execution's Error and Cause.
MAX_ERROR_CHARS = 128
MAX_CAUSE_CHARS = 4096


def _cut(text: str, top: int) -> str:
    return text if len(text) <= top else text[: top - 1] + "…"


def outcome_command(task_id: int, outcome: TaskOutcome, limits: Limits) -> Command:
    """The command for an integration's outcome, held to the limits a worker's report is.

    Integrations pass on what remote services answer, so their results are input like any
    other: too deep a result fails the task, and error names and causes are cut to the
    service's lengths.
    """
    depth = limits.max_json_depth
    if isinstance(outcome, Succeeded):
        if jsontext.too_deep(outcome.output, depth):
            return TaskFailed(
                task_id,
                ERROR_DATA_LIMIT,
                f"the task's result nests objects and arrays more than {depth} levels deep "
                "(engine.max_json_depth)",
            )
        return TaskSucceeded(task_id, outcome.output)
    if isinstance(outcome, Submitted):
        detail = outcome.detail
        if jsontext.too_deep(detail, depth) or (jsontext.size(detail) > limits.max_step_data_bytes):
            detail = {"omitted": "the integration's detail was over the engine's limits"}
        return TaskSubmitted(task_id, detail)
    return TaskFailed(
        task_id,
        _cut(str(outcome.error), MAX_ERROR_CHARS),
        _cut(str(outcome.cause), MAX_CAUSE_CHARS),
    )
