"""The test suite's plugins and shared fixtures.

pytest reads `pytest_plugins` only in this top-level conftest: the plugins named here serve every
test module below it. The fixtures of `relayflow.testing` (such as `engine_factory`) come from the
`relayflow` pytest plugin that installing relayflow registers.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    # Real servers (redis-server, rabbitmq-server, PostgreSQL) as session fixtures, started on
    # first use.
    "tests.services",
    # One real `relayflow server` for the whole session (the `api_server` fixture).
    "tests.api_server",
    # `pytester`, to run an example test suite as a plugin author would (tests/test_testing_*.py).
    "pytester",
]


@pytest.fixture
def flow_text():
    """Build a flow document from step YAML indented under `steps:`."""

    def build(steps_yaml: str, head: str = "version: v1\ntype: flow\n") -> str:
        body = "\n".join(
            "  " + line if line else line for line in steps_yaml.strip("\n").splitlines()
        )
        return f"{head}steps:\n{body}\n"

    return build
