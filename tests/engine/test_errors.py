"""One root for relayflow's exceptions, error codes that type-check, and the old bases kept."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import relayflow
from relayflow.errors import CODES, EngineError, RelayflowError, error


def public_modules() -> list[str]:
    """Every module of the relayflow package whose dotted name has no private part."""
    names = ["relayflow"]
    for info in pkgutil.walk_packages(relayflow.__path__, "relayflow."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def exported_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in public_modules():
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            value = getattr(module, attr)
            if inspect.isclass(value) and issubclass(value, BaseException):
                found[f"{name}.{attr}"] = value
    return found


def test_every_exported_exception_is_a_relayflow_error():
    found = exported_exceptions()
    # The search must see the exceptions of each public package, or it proves nothing.
    for expected in (
        "relayflow.errors.EngineError",
        "relayflow.config.ConfigError",
        "relayflow.store.StoreError",
        "relayflow.fdl.DefinitionError",
        "relayflow.client.ClientError",
    ):
        assert expected in found
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, RelayflowError))
    assert outside == []


@pytest.mark.parametrize(
    ("module", "name", "base"),
    [
        ("relayflow.config", "ConfigError", ValueError),
        ("relayflow.store", "StoreError", RuntimeError),
        ("relayflow.fdl", "DefinitionError", ValueError),
        ("relayflow.dataflow.paths", "ExpressionError", ValueError),
    ],
)
def test_the_old_bases_are_kept(module, name, base):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, RelayflowError) and issubclass(cls, base)


def test_a_code_brings_its_status():
    refused = EngineError.of("FlowNotExists", "flow 'x' does not exist")
    assert (refused.code, refused.status, refused.message) == (
        "FlowNotExists",
        404,
        "flow 'x' does not exist",
    )
    assert str(refused) == "FlowNotExists: flow 'x' does not exist"
    assert error("TaskExpired", "over").status == CODES["TaskExpired"] == 409
    assert EngineError.of("InternalError", "bug").status == 500


def test_the_constructor_still_takes_any_code():
    refused = EngineError("SignatureDoesNotMatch", "wrong signature", 403)
    assert (refused.code, refused.status) == ("SignatureDoesNotMatch", 403)
    assert isinstance(refused, RelayflowError)
