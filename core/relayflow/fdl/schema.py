"""The JSON Schema of FDL (draft 2020-12), for editors and other tools."""

from __future__ import annotations

from typing import Any

from relayflow import __version__
from relayflow.fdl.flow import Flow

__all__ = ["SCHEMA_ID", "flow_json_schema"]

SCHEMA_ID = "https://relayflow.dev/schema/fdl-flow.json"


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a flow document, with every registered step type.

    In YAML, funcraft's `!Ref` tag needs `yaml.customTags: ["!Ref scalar"]` in editors that use
    yaml-language-server; relayflow itself reads it as the function's ARN.
    """
    body = Flow.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "relayflow FDL flow",
        "description": f"A flow in FDL, the Flow Definition Language (relayflow {__version__}).",
        **{k: v for k, v in body.items() if k not in ("title", "description")},
    }
