"""Published flow versions and aliases (PublishFlowVersion ... DeleteFlowAlias).

The operations are a part of `Engine` (it inherits `VersionOperations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayflow.engine.runtime import Runtime

__all__ = ["VersionOperations"]


class VersionOperations:
    """The version and alias actions of the API, as `Engine` methods."""

    _runtime: Runtime
