"""Shared pieces of the FDL models: the base model, compiled field types and the step registry.

Step types live in a registry rather than a fixed union so that a plugin can add one, with the
handler that runs it::

    from typing import Literal
    from relayflow.fdl import StepBase, register_step_type

    class StampStep(StepBase):
        type: Literal["stamp"]
        label: str

    def stamp(step: StampStep, input: dict, context: dict) -> dict:
        return {"label": step.label}

    register_step_type(StampStep, handler=stamp)

Every list of steps (the flow's, a branch's, a foreach's, a choice's) is validated against the
registered types, discriminated on `type`, and the JSON Schema lists them all. The engine runs
the built-in types itself and a plugin's type with its handler; a type without one is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Protocol

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
from relayflow.errors import RelayflowError
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
    "StepFailed",
    "StepHandler",
    "TargetField",
    "register_step_type",
    "step_handler",
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
"""Any step: validated as the registered step type its `type` names."""


def step_types() -> dict[str, type[StepBase]]:
    """The registered step types by their `type` name."""
    return dict(_REGISTRY)


class StepHandler(Protocol):
    """Runs a plugin's step type: ``handler(step, input, context)`` gives the step's `$local`.

    The engine calls it when the step begins (and again for each retry), inside a transition:
    it must be quick, deterministic and free of I/O, like the rest of the interpreter (work
    that talks to a service belongs in an integration, reached by a task step). ``step`` is
    the validated step model, ``input`` a copy of the step's mapped input, and ``context`` what
    `$context` reads (`flow.name`, `execution.name`). It returns a JSON object, which
    outputMappings then read as `$local`, or raises `StepFailed` to fail the step, so that its
    retry and catch policies (if the model has those fields) apply. Any other exception fails
    the step with `FnF.RuntimeError`.
    """

    def __call__(self, step: Any, input: dict[str, Any], context: dict[str, Any]) -> Any:
        """Run ``step`` on ``input``; its `$local`."""


class StepFailed(RelayflowError):
    """Raised by a `StepHandler`: the step fails with the error name `error` and `cause`."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


_HANDLERS: dict[str, StepHandler] = {}


def register_step_type(model: type[StepBase], *, handler: StepHandler | None = None) -> None:
    """Register a step type, and the handler that runs it, so that step lists accept it.

    Args:
        model: a `StepBase` subclass whose `type` field is a `Literal` of one name.
        handler: runs the step (see `StepHandler`); required, so that a flow that validates
            also runs.

    Raises:
        TypeError: `type` is not a single `Literal`, or there is no handler.
        ValueError: another model has that type name already.
    """
    name = _type_name(model)
    if handler is None or not callable(handler):
        raise TypeError(
            f"register_step_type({model.__name__}) needs handler=, the function that runs a "
            f"'{name}' step: the engine cannot run a step type without one"
        )
    _add_step_type(model)
    _HANDLERS[name] = handler


def step_handler(name: str) -> StepHandler | None:
    """The handler a plugin registered for step type ``name`` (None for the built-in types)."""
    return _HANDLERS.get(name)


def _type_name(model: type[StepBase]) -> str:
    annotation = model.model_fields["type"].annotation
    names: tuple[object, ...] = getattr(annotation, "__args__", ())
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{model.__name__}.type must be a Literal of exactly one name")
    return names[0]


def _add_step_type(model: type[StepBase], *, contains_steps: bool = False) -> None:
    """Add a step model to the union of step lists (the built-in types come this way).

    ``contains_steps``: the model itself holds step lists, so it is rebuilt when later types
    are registered.
    """
    name = _type_name(model)
    if name in _REGISTRY and _REGISTRY[name] is not model:
        raise ValueError(f"step type '{name}' is already registered by {_REGISTRY[name]!r}")
    _REGISTRY[name] = model
    if contains_steps:
        _DEPENDENTS.append(model)
    for dependent in _DEPENDENTS:
        if dependent.__pydantic_complete__:
            dependent.model_rebuild(force=True)


def unregister_step_type(name: str) -> None:
    """Remove a registered step type and its handler (for plugins being unloaded, and tests)."""
    model = _REGISTRY.pop(name, None)
    _HANDLERS.pop(name, None)
    if model in _DEPENDENTS:
        _DEPENDENTS.remove(model)
    for dependent in _DEPENDENTS:
        if dependent.__pydantic_complete__:
            dependent.model_rebuild(force=True)


def register_step_container(model: type[BaseModel]) -> None:
    """Record a model that holds step lists but is not a step (the flow, a branch)."""
    _DEPENDENTS.append(model)
