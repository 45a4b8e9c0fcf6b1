"""Data flow between steps: paths, mappings, conditions and the default merge rules.

Everything here is pure: no I/O, no clock, no randomness. Sources and conditions compile once
(when a definition loads) and evaluate many times.
"""

from __future__ import annotations

from relayflow.dataflow.conditions import Condition, compile_condition, truthy
from relayflow.dataflow.mappings import (
    ConstantSource,
    MappingRule,
    PathSource,
    Rule,
    ServiceParams,
    Source,
    compile_service_params,
    compile_source,
    compile_target,
    default_input,
    evaluate_mappings,
    iteration_input,
    merge_outputs,
    step_input,
    step_output,
)
from relayflow.dataflow.paths import MISSING, ExpressionError, Path, compile_path

__all__ = [
    "MISSING",
    "Condition",
    "ConstantSource",
    "ExpressionError",
    "MappingRule",
    "Path",
    "PathSource",
    "Rule",
    "ServiceParams",
    "Source",
    "compile_condition",
    "compile_path",
    "compile_service_params",
    "compile_source",
    "compile_target",
    "default_input",
    "evaluate_mappings",
    "iteration_input",
    "merge_outputs",
    "step_input",
    "step_output",
    "truthy",
]
