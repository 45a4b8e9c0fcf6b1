"""The Python examples in docs/plugins.md run; the complete programs among them succeed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.fdl import step_types, unregister_step_type
from relayflow.fdl.resources import resource_services, unregister_resource_service

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
#: The template for testing a plugin imports the plugin it is about, which is no real module.
RUNNABLE = [block for block in BLOCKS if "relayflow_myplugin" not in block]


@pytest.fixture
def registries() -> Iterator[None]:
    """Undo what an example registers for the whole process (step types, services)."""
    types, services = set(step_types()), set(resource_services())
    yield
    for name in set(step_types()) - types:
        unregister_step_type(name)
    for service in set(resource_services()) - services:
        unregister_resource_service(service)


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_python_examples_run(code: str, capsys: pytest.CaptureFixture[str], registries: None):
    exec(compile(code, str(DOC), "exec", dont_inherit=True), {"__name__": "__main__"})
    # A whole program prints what the comments after its prints say.
    expected = re.findall(r"print\(.*\)\s+# (.*)", code)
    if expected:
        assert capsys.readouterr().out.splitlines() == expected


def test_only_the_template_is_left_out():
    assert len(BLOCKS) - len(RUNNABLE) == 1
