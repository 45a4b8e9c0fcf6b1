"""The eight built-in step types of FDL and the policies they carry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from relayflow.dataflow import PathSource, compile_source
from relayflow.fdl.base import (
    ConditionField,
    FdlModel,
    MappingList,
    PathField,
    ResourceArnField,
    ServiceParamsField,
    Step,
    StepBase,
    _add_step_type,
    register_step_container,
)
from relayflow.fdl.timestamps import parse_rfc3339

__all__ = [
    "Branch",
    "CatchPolicy",
    "ChoiceBranch",
    "ChoiceDefault",
    "ChoiceStep",
    "FailStep",
    "ForeachStep",
    "IterationMapping",
    "ParallelStep",
    "PassStep",
    "RetryPolicy",
    "SucceedStep",
    "TaskStep",
    "WaitStep",
]

Pattern = Literal["requestResponse", "sync", "waitForCallback"]
MAX_INTERVAL_SECONDS = 86400
MAX_BRANCHES = 100


class RetryPolicy(FdlModel):
    """Retry a failed step whose error matches one of `errors` (matched in order, before catch).

    `maxAttempts` counts retries after the first attempt; the n-th retry waits
    `min(intervalSeconds * multiplier**(n-1), maxIntervalSeconds)` seconds.
    """

    errors: list[str] = Field(min_length=1)
    interval_seconds: int = Field(default=1, ge=1, le=MAX_INTERVAL_SECONDS)
    max_interval_seconds: int = Field(default=MAX_INTERVAL_SECONDS, ge=1, le=MAX_INTERVAL_SECONDS)
    max_attempts: int = Field(default=3, ge=0, le=1000)
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0)

    @field_validator("errors")
    @classmethod
    def _error_names(cls, value: list[str]) -> list[str]:
        return _check_error_names(value)

    @model_validator(mode="after")
    def _interval_order(self) -> RetryPolicy:
        if self.max_interval_seconds < self.interval_seconds:
            raise ValueError(
                f"maxIntervalSeconds ({self.max_interval_seconds}) is smaller than "
                f"intervalSeconds ({self.interval_seconds}); the cap must not be below the start"
            )
        return self

    def delay(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        grown = self.interval_seconds * self.multiplier ** (retry - 1)
        return float(min(grown, self.max_interval_seconds))


class CatchPolicy(FdlModel):
    """After retries are exhausted, go to the sibling step `goto` when the error matches."""

    errors: list[str] = Field(min_length=1)
    goto: str = Field(min_length=1)

    @field_validator("errors")
    @classmethod
    def _error_names(cls, value: list[str]) -> list[str]:
        return _check_error_names(value)


def _check_error_names(value: list[str]) -> list[str]:
    for name in value:
        if not name.strip():
            raise ValueError("an error name must not be empty; use FnF.ALL to match every error")
    return value


class _Recovers(FdlModel):
    """Retry, catch and errorMappings, shared by task, parallel and foreach steps."""

    retry: list[RetryPolicy] | None = None
    catch: list[CatchPolicy] | None = None
    error_mappings: MappingList | None = None


def _compile_correlation_key(value: Any) -> PathSource:
    if not isinstance(value, str) or not value.startswith("$"):
        raise ValueError(
            f"correlationKey must be a path of the task's input, like $.orderId, got {value!r}"
        )
    source = compile_source(value, what="correlationKey")
    if not isinstance(source, PathSource) or source.path.root != "input":
        raise ValueError(
            f"correlationKey '{value}' must read the task's input (after inputMappings), "
            "like $.orderId or $input.orderId"
        )
    if source.path.has_wildcard:
        raise ValueError(f"correlationKey '{value}' must select one value; it has a wildcard")
    return source


# relayflow's own: the key that reports by FlowName and CorrelationKey reach a waiting task by.
CorrelationKeyField = Annotated[
    PathSource,
    PlainValidator(_compile_correlation_key),
    PlainSerializer(lambda s: s.raw),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\$",
            "description": "relayflow's own, waitForCallback only: a path of the task's input "
            "(after inputMappings), such as $.orderId, whose value (a string or an integer, at "
            "most 128 characters) lets a report name the waiting task by FlowName and "
            "CorrelationKey instead of its token.",
        }
    ),
]


class TaskStep(StepBase, _Recovers):
    """Hand work to a service integration, named by `resourceArn` or `action`.

    `correlationKey` is relayflow's own (`relayflow.engine.correlation`): only with
    `pattern: waitForCallback`.
    """

    type: Literal["task"]
    resource_arn: ResourceArnField | None = None
    action: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*:[A-Za-z]\w*$")
    pattern: Pattern = "requestResponse"
    # No task outlives the longest execution (a year).
    timeout_seconds: int | None = Field(default=None, ge=1, le=365 * 24 * 3600)
    service_params: ServiceParamsField | None = None
    correlation_key: CorrelationKeyField | None = None
    end: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> TaskStep:
        if (self.resource_arn is None) == (self.action is None):
            raise ValueError(
                "a task needs exactly one of resourceArn and action"
                + ("; it has both" if self.action is not None else "")
            )
        return self

    @field_validator("correlation_key")
    @classmethod
    def _waits_for_callback(
        cls, value: PathSource | None, info: ValidationInfo
    ) -> PathSource | None:
        pattern = info.data.get("pattern", "waitForCallback")  # absent: its own error says so
        if value is not None and pattern != "waitForCallback":
            raise ValueError(
                "correlationKey needs pattern: waitForCallback (only a task that waits for a "
                f"report can be reached by its key); this task's pattern is {pattern}"
            )
        return value


class PassStep(StepBase):
    """Do nothing but map: seed constants or reshape the input."""

    type: Literal["pass"]
    end: bool = False


def _wait_value(value: Any, what: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        source = compile_source(value, what=what)
        if not isinstance(source, PathSource) or source.path.root != "input":
            raise ValueError(f"{what} '{value}' must be a number or a path of the input, like $.x")
        return source
    return value


class WaitStep(StepBase):
    """Pause for `duration` seconds or until the RFC 3339 `timestamp`; exactly one is given."""

    type: Literal["wait"]
    duration: int | float | str | None = None
    timestamp: str | None = None
    end: bool = False

    @field_validator("duration", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                f"duration must be a number of seconds or a path like $.seconds, got {value}"
            )
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int | float | str | None) -> int | float | str | None:
        if isinstance(value, str) and not value.startswith("$"):
            try:
                value = float(value) if "." in value else int(value)
            except ValueError:
                raise ValueError(
                    f"duration '{value}' must be a number of seconds or a path like $.seconds"
                ) from None
        if isinstance(value, int | float) and value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        if isinstance(value, str):
            _wait_value(value, "duration")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is None or value.startswith("$"):
            if value is not None:
                _wait_value(value, "timestamp")
            return value
        parse_rfc3339(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitStep:
        if (self.duration is None) == (self.timestamp is None):
            which = "both" if self.duration is not None else "neither"
            raise ValueError(
                f"a wait step needs exactly one of duration and timestamp; it has {which}"
            )
        return self


class ChoiceBranch(FdlModel):
    """One `choices[]` entry: when `condition` holds, run `steps`, then go to `goto`."""

    condition: ConditionField
    steps: list[Step] | None = None
    goto: str | None = Field(default=None, min_length=1)


class ChoiceDefault(FdlModel):
    """What a choice does when no condition holds."""

    steps: list[Step] | None = None
    goto: str | None = Field(default=None, min_length=1)


class ChoiceStep(StepBase):
    """Run the first branch whose condition holds, else the default, else nothing."""

    type: Literal["choice"]
    choices: list[ChoiceBranch] = Field(min_length=1)
    default: ChoiceDefault | None = None
    end: bool = False

    def child_step_lists(self) -> list[tuple[tuple[str | int, ...], list[StepBase]]]:
        """The steps of each choice branch and of the default."""
        lists: list[tuple[tuple[str | int, ...], list[StepBase]]] = [
            (("choices", i, "steps"), list(c.steps)) for i, c in enumerate(self.choices) if c.steps
        ]
        if self.default is not None and self.default.steps:
            lists.append((("default", "steps"), list(self.default.steps)))
        return lists


class Branch(FdlModel):
    """One branch of a parallel step: a serial list of steps."""

    steps: list[Step] = Field(min_length=1)


class ParallelStep(StepBase, _Recovers):
    """Run every branch at once; the local is the list of the branches' outputs."""

    type: Literal["parallel"]
    branches: list[Branch] = Field(min_length=1, max_length=MAX_BRANCHES)
    end: bool = False

    empty_default_output = True

    def child_step_lists(self) -> list[tuple[tuple[str | int, ...], list[StepBase]]]:
        """The steps of each branch."""
        return [(("branches", i, "steps"), list(b.steps)) for i, b in enumerate(self.branches)]


class IterationMapping(FdlModel):
    """Where a foreach finds its collection and the names it gives the element and index."""

    collection: PathField
    item: str = Field(min_length=1)
    index: str | None = Field(default=None, min_length=1)


class ForeachStep(StepBase, _Recovers):
    """Run `steps` once per element of a collection, concurrently; results keep the order."""

    type: Literal["foreach"]
    iteration_mapping: IterationMapping
    steps: list[Step] = Field(min_length=1)
    end: bool = False

    empty_default_output = True

    def child_step_lists(self) -> list[tuple[tuple[str | int, ...], list[StepBase]]]:
        """The iteration's steps."""
        return [(("steps",), list(self.steps))]


class SucceedStep(StepBase):
    """End the enclosing serial list successfully, like `return`."""

    type: Literal["succeed"]


class FailStep(StepBase):
    """Fail with `error` and `cause`; the failure propagates up unless a catch takes it."""

    type: Literal["fail"]
    error: str | None = None
    cause: str | None = None


def _register_builtins() -> None:
    for container in (ChoiceBranch, ChoiceDefault, Branch):
        register_step_container(container)
    leaves: tuple[type[StepBase], ...] = (TaskStep, PassStep, WaitStep, SucceedStep, FailStep)
    for step in leaves:
        _add_step_type(step)  # the engine runs the built-in types itself: no handler
    for step in (ChoiceStep, ParallelStep, ForeachStep):
        _add_step_type(step, contains_steps=True)


_register_builtins()
