"""Import direction: the store, the configuration and the plugins' records do not load the engine.

Each check runs in a fresh interpreter, so what another test imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_by(statement: str) -> list[str]:
    """The relayflow modules a fresh interpreter has loaded after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return [m for m in json.loads(done.stdout) if m.split(".")[0] == "relayflow"]


@pytest.mark.parametrize(
    "module", ["relayflow.store", "relayflow.store.sqlite", "relayflow.store.records"]
)
def test_the_store_does_not_load_the_engine(module):
    modules = loaded_by(f"import {module}")
    assert module in modules
    assert [m for m in modules if m.startswith(("relayflow.engine", "relayflow.fdl"))] == []


def test_the_configuration_loads_neither_the_engine_nor_the_fdl_models():
    modules = loaded_by("import relayflow.config")
    assert "relayflow.config" in modules
    found = [m for m in modules if m.startswith(("relayflow.engine", "relayflow.fdl"))]
    assert found == [], f"importing relayflow.config loaded {found}"


def test_the_limits_are_one_class_wherever_they_are_imported_from():
    from relayflow import engine, fdl, limits
    from relayflow.config import EngineConfig
    from relayflow.engine import model
    from relayflow.fdl import limits as fdl_limits

    assert engine.Limits is model.Limits is limits.Limits
    assert fdl.DefinitionLimits is fdl_limits.DefinitionLimits is limits.DefinitionLimits
    assert fdl.DEFAULT_LIMITS is limits.DEFAULT_LIMITS
    assert EngineConfig().limits() == limits.Limits()
    assert EngineConfig().definition_limits() == limits.DEFAULT_LIMITS


def test_moved_names_stay_importable_where_plugins_found_them():
    from relayflow import errors
    from relayflow.engine import model
    from relayflow.store import records

    assert model.HistoryEvent is records.HistoryEvent
    for name in (
        "ERROR_DATA_LIMIT",
        "ERROR_EVENT_LIMIT",
        "ERROR_INVALID_LOCAL",
        "ERROR_RUNTIME",
        "ERROR_TASK_TIMEOUT",
    ):
        assert getattr(model, name) == getattr(errors, name)
    assert model.ERROR_RUNTIME == "FnF.RuntimeError"


def test_the_engine_package_has_no_lazy_names():
    import relayflow.engine

    assert not hasattr(relayflow.engine, "__getattr__")
    for name in relayflow.engine.__all__:
        assert getattr(relayflow.engine, name) is not None
