"""`relayflow executions purge`: delete ended executions now, as retention would."""

from __future__ import annotations

import click

__all__ = ["add_commands"]


def add_commands(group: click.Group) -> None:
    """Add this module's commands to the `executions` group."""
