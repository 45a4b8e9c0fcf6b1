"""Budgets that bound the work of reading one definition (defined in `relayflow.limits`)."""

from __future__ import annotations

from relayflow.limits import DEFAULT_LIMITS, DefinitionLimits

__all__ = ["DEFAULT_LIMITS", "DefinitionLimits"]
