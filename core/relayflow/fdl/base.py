"""Shared pieces of the FDL models: the base model, compiled field types and the step registry.

Step types live in a registry rather than a fixed union so that a plugin can add one::

    from typing import Literal
    from relayflow.fdl import StepBase, register_step_type

    class NotifyStep(StepBase):
        type: Literal["notify"]
        channel: str

    register_step_type(NotifyStep)

Every list of steps (the flow's, a branch's, a foreach's, a choice's) is validated against the
registered types, discriminated on `type`, and the JSON Schema lists them all.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema

from relayflow.dataflow import (
    Condition,
    PathSource,
    ServiceParams,
    Source,
    compile_condition,
    compile_service_params,
    compile_source,
    compile_target,
)
from relayflow.fdl.resources import ResourceArn, parse_resource_arn

__all__ = [
    "ConditionField",
    "FdlModel",
    "MappingList",
    "PathField",
    "ResourceArnField",
    "ServiceParamsField",
    "SourceField",
    "Step",
    "StepBase",
    "TargetField",
    "register_step_type",
    "step_types",
    "unregister_step_type",
]


class FdlModel(BaseModel):
    """Base of every FDL model: camelCase names as in FDL, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
        arbitrary_types_allowed=True,
    )


def _compile_source(value: Any) -> Source:
    return compile_source(value)


SourceField = Annotated[
    Source,
    PlainValidator(_compile_source),
    PlainSerializer(lambda s: s.raw),
    WithJsonSchema(
        {
            "description": "A path ($input..., $local..., $context..., $.x) or a constant "
            "of any JSON type."
        }
    ),
]


def _compile_path_source(value: Any) -> PathSource:
    source = compile_source(value)
    if not isinstance(source, PathSource):
        raise ValueError(f"expected a path such as $.items, got the constant {value!r}")
    if source.path.root != "input":
        raise ValueError(f"'{value}' must read the step's input, like $.items or $input.items")
    return source


PathField = Annotated[
    PathSource,
    PlainValidator(_compile_path_source),
    PlainSerializer(lambda s: s.raw),
    WithJsonSchema({"type": "string", "pattern": r"^\$", "description": "A path such as $.items."}),
]

TargetField = Annotated[
    tuple[str, ...],
    PlainValidator(compile_target),
    PlainSerializer(lambda t: ".".join(t)),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "description": "A key, or a dotted path a.b."}
    ),
]

ConditionField = Annotated[
    Condition,
    PlainValidator(compile_condition),
    PlainSerializer(lambda c: c.text),
    WithJsonSchema(
        {
            "type": ["string", "boolean"],
            "description": 'A condition such as $.status == "ready" && !$.cancelled.',
        }
    ),
]


def _parse_arn(value: Any) -> ResourceArn:
    return parse_resource_arn(value)


ResourceArnField = Annotated[
    ResourceArn,
    PlainValidator(_parse_arn),
    PlainSerializer(lambda r: r.raw),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(acs:[a-z0-9][a-z0-9\-]*:|[A-Za-z0-9_][\w.\-]*/[A-Za-z0-9_][\w.\-]*$)",
            "description": "acs:fc:{region}:{account}:services/{service}/functions/{function}, "
            "acs:mns:::/queues/{queue}/messages, acs:mns:::/topics/{topic}/messages, "
            "acs:fnf:::flow/{flow}, acs:{service}:{region}:{account}:{resource} for a service "
            "an installed integration registered, or funcraft's !Ref service/function.",
        }
    ),
]


def _compile_params(value: Any) -> ServiceParams:
    if not isinstance(value, dict):
        raise ValueError(f"serviceParams must be an object, got {type(value).__name__}")
    return compile_service_params(value)


ServiceParamsField = Annotated[
    ServiceParams,
    PlainValidator(_compile_params),
    PlainSerializer(lambda p: dict(p.raw)),
    WithJsonSchema(
        {
            "type": "object",
            "description": "Parameters for the integrated service; $ is the whole mapped "
            "input and $.key one field of it.",
        }
    ),
]


class Mapping(FdlModel):
    """One `{target, source}` pair of inputMappings, outputMappings or errorMappings.

    It is a compiled rule already: pass a list of them to `relayflow.dataflow` functions.
    """

    target: TargetField
    source: SourceField


MappingList = list[Mapping]


class StepBase(FdlModel):
    """Attributes every step type has. Subclasses fix `type` with a `Literal`."""

    type: str
    name: str = Field(min_length=1)
    input_mappings: MappingList | None = None
    output_mappings: MappingList | None = None

    #: Whether the default output of this step type is empty (parallel, foreach).
    empty_default_output: ClassVar[bool] = False

    def child_step_lists(self) -> list[tuple[tuple[str | int, ...], list[StepBase]]]:
        """The serial step lists nested in this step, each with its path below the step."""
        return []


_REGISTRY: dict[str, type[StepBase]] = {}
_DEPENDENTS: list[type[BaseModel]] = []


class _StepUnion:
    """Builds a tagged union of the registered step types when pydantic asks for a schema."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        if not _REGISTRY:
            raise RuntimeError("no step types are registered; import relayflow.fdl")
        choices: dict[Any, CoreSchema] = {
            name: handler.generate_schema(model) for name, model in _REGISTRY.items()
        }
        return core_schema.tagged_union_schema(
            choices,
            discriminator="type",
            custom_error_type="step_type",
            custom_error_message="unknown step type",
            ref="Step",
        )


Step = Annotated[StepBase, _StepUnion]


def step_types() -> dict[str, type[StepBase]]:
    """The registered step types by their `type` name."""
    return dict(_REGISTRY)


def register_step_type(model: type[StepBase], *, contains_steps: bool = False) -> None:
    """Register a step type so that step lists accept it.

    Args:
        model: a `StepBase` subclass whose `type` field is a `Literal` of one name.
        contains_steps: whether the model itself holds step lists (so that it is rebuilt
            when later types are registered).
    """
    annotation = model.model_fields["type"].annotation
    names: tuple[object, ...] = getattr(annotation, "__args__", ())
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{model.__name__}.type must be a Literal of exactly one name")
    name = names[0]
    if name in _REGISTRY and _REGISTRY[name] is not model:
        raise ValueError(f"step type '{name}' is already registered by {_REGISTRY[name]!r}")
    _REGISTRY[name] = model
    if contains_steps:
        _DEPENDENTS.append(model)
    for dependent in _DEPENDENTS:
        if dependent.__pydantic_complete__:
            dependent.model_rebuild(force=True)


def unregister_step_type(name: str) -> None:
    """Remove a registered step type (for plugins being unloaded, and tests)."""
    model = _REGISTRY.pop(name, None)
    if model in _DEPENDENTS:
        _DEPENDENTS.remove(model)
    for dependent in _DEPENDENTS:
        if dependent.__pydantic_complete__:
            dependent.model_rebuild(force=True)


def register_step_container(model: type[BaseModel]) -> None:
    """Record a model that holds step lists but is not a step (the flow, a branch)."""
    _DEPENDENTS.append(model)
