"""The public surface of each package, pinned: what `__all__` exports exists, is documented,
and is exactly the list below, so that a change to the public API shows up as a diff here.

After a deliberate change, print the current lists with ``python -m tests.test_exports`` and
paste them into `EXPORTED` (review the diff: a name that disappears breaks users' imports).

A class or function counts as documented by its own docstring; a constant or a type alias by
an attribute docstring (a string right after the assignment) or a comment right before
it, in the module that defines it, or by being named in backticks in the package's docstring.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pprint
import sys
import types
from functools import cache
from pathlib import Path

import pytest

PACKAGES = [
    "relayflow",
    "relayflow.client",
    "relayflow.engine",
    "relayflow.errors",
    "relayflow.fdl",
    "relayflow.plugins",
    "relayflow.results",
    "relayflow.store",
    "relayflow.testing",
    "relayflow.worker",
    "relayflow.config",
    "relayflow_fc",
    "relayflow_http",
    "relayflow_mns",
    "relayflow_sql",
]

EXPORTED: dict[str, list[str]] = {
    "relayflow": ["__version__"],
    "relayflow.client": [
        "API_VERSION",
        "AsyncClient",
        "BulkPage",
        "Client",
        "ClientError",
        "Execution",
        "ExecutionInfo",
        "ExecutionPage",
        "FINAL_STATUSES",
        "Flow",
        "FlowInfo",
        "FlowPage",
        "HistoryEvent",
        "HistoryPage",
        "Page",
        "PurgeResult",
        "WaitingWork",
    ],
    "relayflow.config": [
        "AccessKey",
        "ClientConfig",
        "Config",
        "ConfigError",
        "EngineConfig",
        "PluginsConfig",
        "ServerConfig",
        "describe_validation_error",
        "find_config",
        "load_config",
        "mask_text",
        "redacted",
        "to_toml",
    ],
    "relayflow.engine": [
        "Engine",
        "ExecutionInfo",
        "Failed",
        "FlowInfo",
        "FunctionIntegration",
        "HistoryPage",
        "Integration",
        "Interpreter",
        "Limits",
        "Page",
        "Submitted",
        "Succeeded",
        "SyncEngine",
        "TaskOutcome",
        "TaskRequest",
    ],
    "relayflow.errors": [
        "CODES",
        "CallError",
        "ERROR_DATA_LIMIT",
        "ERROR_EVENT_LIMIT",
        "ERROR_INVALID_LOCAL",
        "ERROR_RUNTIME",
        "ERROR_TASK_TIMEOUT",
        "EngineError",
        "ErrorCode",
        "RelayflowError",
        "error",
        "first_line",
    ],
    "relayflow.fdl": [
        "Branch",
        "CatchPolicy",
        "ChoiceBranch",
        "ChoiceDefault",
        "ChoiceStep",
        "DEFAULT_LIMITS",
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
        "SUPPORTED_VERSIONS",
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
    ],
    "relayflow.plugins": [
        "ApiRequestEvent",
        "CommitEvent",
        "CommittedHistory",
        "ConfigModelRegister",
        "ExecutionEvent",
        "IntegrationRegister",
        "IntegrationSpec",
        "LifecycleEvent",
        "PluginInfo",
        "PluginManager",
        "RouteRegister",
        "StepEvent",
        "TaskEvent",
        "hookimpl",
    ],
    "relayflow.results": [
        "BulkFailure",
        "BulkPage",
        "BulkSkip",
        "ExecutionInfo",
        "ExecutionRef",
        "FINAL_STATUSES",
        "FlowInfo",
        "HistoryEvent",
        "HistoryPage",
        "Page",
        "PurgeResult",
        "WaitingWork",
        "iso_time",
    ],
    "relayflow.store": [
        "ExecutionRow",
        "FlowObjectRow",
        "FlowRow",
        "HistoryEvent",
        "Listener",
        "OutboxRow",
        "Store",
        "StoreConflict",
        "StoreError",
        "TimerRow",
        "Transaction",
        "open_store",
        "register_driver",
        "scheme_of",
    ],
    "relayflow.testing": [
        "DEFAULT_TEST_SECONDS",
        "DEFAULT_WAIT_SECONDS",
        "EngineFactory",
        "bounded",
        "event_details",
        "eventually",
        "eventually_sync",
        "fdl",
        "make_engine",
        "run_to_end",
    ],
    "relayflow.worker": [
        "AsyncReporter",
        "CHECK_TOKEN",
        "EngineReporter",
        "INVALID_OUTPUT",
        "MAX_CAUSE",
        "MAX_ERROR",
        "Outcome",
        "REFUSED_CODES",
        "Reporter",
        "SETTLED_CODES",
        "WorkerError",
        "WorkerStats",
        "check_credentials",
        "check_output",
        "credentials_refused",
        "refused_credentials",
        "report",
        "run_handler",
    ],
    "relayflow_fc": [
        "CLAIMS",
        "Credentials",
        "FcContext",
        "FcIntegration",
        "FcSettings",
        "FunctionMeta",
        "HandlerImportError",
        "Reporter",
        "ServiceMeta",
        "Tracing",
        "make_integration",
        "relayflow_register_integrations",
        "resolve_handler",
    ],
    "relayflow_http": [
        "ACTION",
        "ERROR_CONNECTION",
        "ERROR_HOST_NOT_ALLOWED",
        "ERROR_INVALID_PARAMETER",
        "ERROR_RESPONSE_TOO_DEEP",
        "ERROR_RESPONSE_TOO_LARGE",
        "ERROR_SECRET_MISSING",
        "ERROR_TIMEOUT",
        "HEADER_TOKEN",
        "HttpIntegration",
        "HttpSettings",
        "make_integration",
        "relayflow_register_integrations",
        "status_error",
    ],
    "relayflow_mns": ["DEFAULT_TRANSPORT", "MnsIntegration", "MnsSettings"],
    "relayflow_sql": [
        "ACTION",
        "MAX_THREADS",
        "SqlIntegration",
        "SqlSettings",
        "json_safe",
        "make_integration",
        "mask_url",
        "relayflow_register_integrations",
        "resolve_url",
    ],
}


def exported(package: str) -> list[str]:
    """The names ``package`` exports: its `__all__`, or its public non-module globals."""
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if (not n.startswith("_") or n == "__version__")
            and not isinstance(v, types.ModuleType)
            and n != "annotations"
        ]
    return sorted(names)


@cache
def documented_values() -> frozenset[str]:
    """Names that carry an attribute docstring or a comment, anywhere in the packages."""
    found: set[str] = set()
    roots = {Path(importlib.import_module(p.split(".")[0]).__file__ or "").parent for p in PACKAGES}
    for root in roots:
        for path in root.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            body = ast.parse(text).body
            for i, node in enumerate(body):
                targets = []
                if isinstance(node, ast.Assign):
                    targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    targets = [node.target.id]
                if not targets:
                    continue
                after = body[i + 1] if i + 1 < len(body) else None
                docstring = (
                    isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                )
                comment = node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#")
                if docstring or comment:
                    found.update(targets)
    return frozenset(found)


def undocumented(package: str) -> list[str]:
    """The exported names of ``package`` without documentation."""
    module = importlib.import_module(package)
    missing = []
    for name in exported(package):
        if name.startswith("__"):  # __version__ and the like say what they are
            continue
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            doc = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
            if not (doc or "").strip():
                missing.append(name)
        elif name not in documented_values() and f"`{name}`" not in (module.__doc__ or ""):
            missing.append(name)
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert [n for n in exported(package) if not hasattr(module, n)] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_is_documented(package: str) -> None:
    assert undocumented(package) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_the_exported_names_are_the_pinned_ones(package: str) -> None:
    assert exported(package) == EXPORTED[package], (
        f"{package}'s public names changed; if on purpose, update EXPORTED "
        "(python -m tests.test_exports prints the current lists)"
    )


if __name__ == "__main__":
    pprint.pprint({p: exported(p) for p in PACKAGES}, sys.stdout, width=100, compact=True)
    for p in PACKAGES:
        if undocumented(p):
            print(f"# undocumented in {p}: {undocumented(p)}")
