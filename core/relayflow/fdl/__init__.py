"""FDL, the Flow Definition Language: models, loader, validation and JSON Schema."""

from __future__ import annotations

from relayflow.fdl.base import (
    Mapping,
    Step,
    StepBase,
    StepFailed,
    StepHandler,
    register_step_type,
    step_handler,
    step_types,
    unregister_step_type,
)
from relayflow.fdl.flow import SUPPORTED_VERSIONS, Flow
from relayflow.fdl.limits import DEFAULT_LIMITS, DefinitionLimits
from relayflow.fdl.loader import check_flow, load_flow, load_flow_file
from relayflow.fdl.problems import DefinitionError, Problem, format_path
from relayflow.fdl.resources import ResourceArn, parse_resource_arn
from relayflow.fdl.schema import flow_json_schema
from relayflow.fdl.steps import (
    Branch,
    CatchPolicy,
    ChoiceBranch,
    ChoiceDefault,
    ChoiceStep,
    FailStep,
    ForeachStep,
    IterationMapping,
    ParallelStep,
    PassStep,
    RetryPolicy,
    SucceedStep,
    TaskStep,
    WaitStep,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SUPPORTED_VERSIONS",
    "Branch",
    "CatchPolicy",
    "ChoiceBranch",
    "ChoiceDefault",
    "ChoiceStep",
    "DefinitionError",
    "DefinitionLimits",
    "FailStep",
    "Flow",
    "ForeachStep",
    "IterationMapping",
    "Mapping",
    "ParallelStep",
    "PassStep",
    "Problem",
    "ResourceArn",
    "RetryPolicy",
    "Step",
    "StepBase",
    "StepFailed",
    "StepHandler",
    "SucceedStep",
    "TaskStep",
    "WaitStep",
    "check_flow",
    "flow_json_schema",
    "format_path",
    "load_flow",
    "load_flow_file",
    "parse_resource_arn",
    "register_step_type",
    "step_handler",
    "step_types",
    "unregister_step_type",
]
