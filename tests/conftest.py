from __future__ import annotations

import pytest

# Real servers (redis-server, rabbitmq-server, PostgreSQL) as session fixtures, started on first use.
pytest_plugins = ["tests.services"]


@pytest.fixture
def flow_text():
    """Build a flow document from step YAML indented under `steps:`."""

    def build(steps_yaml: str, head: str = "version: v1\ntype: flow\n") -> str:
        body = "\n".join(
            "  " + line if line else line for line in steps_yaml.strip("\n").splitlines()
        )
        return f"{head}steps:\n{body}\n"

    return build
