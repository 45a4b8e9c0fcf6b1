"""`relayflow schedules`: schedules of flows on a relayflow server."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add the `schedules` commands to ``cli``."""
