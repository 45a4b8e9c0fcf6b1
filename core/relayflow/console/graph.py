"""A flow definition drawn as a graph: nodes with positions, edges and lanes, as JSON.

`flow_graph(definition)` lays out serial steps top to bottom, choices with an edge per
condition, parallel branches and foreach iterations as lanes side by side, gotos and catches
as edges; the console draws the answer as SVG.
"""

from __future__ import annotations

__all__: list[str] = []
