"""The README's examples stay true: its flows load and its `[integrations.http]` tables validate."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from relayflow.fdl import TaskStep, load_flow
from relayflow_http import HttpIntegration, HttpSettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[str]:
    return [text for info, text in BLOCKS if info == kind]


@pytest.mark.parametrize("text", blocks("yaml"))
def test_every_flow_in_the_readme_loads_and_uses_supported_patterns(text: str) -> None:
    flow = load_flow(text, "readme")
    http = HttpIntegration()
    steps = [step for _, step in flow.walk() if isinstance(step, TaskStep)]
    assert steps
    for step in steps:
        assert step.action is not None and http.claims(step.action)
        assert step.pattern in http.patterns


@pytest.mark.parametrize("text", blocks("toml"))
def test_every_http_table_in_the_readme_validates(text: str) -> None:
    table = tomllib.loads(text).get("integrations", {}).get("http")
    assert table is not None
    HttpSettings.model_validate(table)


def test_the_readme_names_every_error_and_parameter() -> None:
    for name in (
        "HTTP.InvalidParameter",
        "HTTP.HostNotAllowed",
        "HTTP.Timeout",
        "HTTP.ConnectionError",
        "HTTP.ResponseTooLarge",
        "HTTP.ResponseTooDeep",
        "HTTP.SecretMissing",
        *(f"`{param}`" for param in ("Url", "Method", "Headers", "Query", "Body")),
        "`TimeoutSeconds`",
        *(f"`{key}`" for key in HttpSettings.model_fields),
    ):
        assert name in README, name
