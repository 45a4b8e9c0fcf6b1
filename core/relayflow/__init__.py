"""relayflow: durable FDL flows with service integrations as plugins."""

from __future__ import annotations

__version__ = "0.1.0"
