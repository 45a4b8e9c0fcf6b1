"""`relayflow executions tree`: an execution with its parent and children, and their statuses."""

from __future__ import annotations

import click

__all__ = ["add_commands"]


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
