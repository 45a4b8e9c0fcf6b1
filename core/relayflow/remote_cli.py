"""The former home of `relayflow flows`, `executions` and `tasks`; they live in relayflow.cli.

Kept so that `from relayflow.remote_cli import flows, executions, tasks, register` goes on
working; new code imports from `relayflow.cli.flows`, `.executions` and `.tasks`.
"""

from __future__ import annotations

import click

from relayflow.cli._common import EXIT_INVALID, EXIT_REFUSED
from relayflow.cli.executions import executions
from relayflow.cli.flows import flows
from relayflow.cli.tasks import tasks

__all__ = ["EXIT_INVALID", "EXIT_REFUSED", "executions", "flows", "register", "tasks"]


def register(main: click.Group) -> None:
    """Add the `flows`, `executions` and `tasks` groups to the `relayflow` command."""
    for group in (flows, executions, tasks):
        main.add_command(group)
