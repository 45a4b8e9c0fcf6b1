"""How `relayflow server` sets up Python's garbage collector once its engine has started.

Two settings, both for the process as a whole, so the server (which owns its process) applies
them and an application that embeds `relayflow.engine.Engine` decides for itself:

- **Freeze the start-up heap** (`gc.freeze`): modules, plugins and their libraries live as long
  as the process, and full collections would otherwise walk them all every time.
- **Collect the young generation less often**: CPython starts a young collection after every
  700 net allocations of container objects. An engine allocates and frees short-lived objects
  by the hundred thousand a second, and each young collection walks every young object still
  alive, which includes what a store transaction keeps until it commits (its history events,
  kept for the plugins that watch history). Measured on the engine benchmark with
  relayflow-otel and relayflow-prometheus on, collections took about 0.3 ms of an
  execution's 2.8 ms of CPU at the default threshold and about 0.02 ms at
  `YOUNG_THRESHOLD` (docs/benchmarks.md, "Fewer young collections"). The cost is memory held
  a little longer by cyclic garbage: at most that many objects' worth between collections.
"""

from __future__ import annotations

import gc

__all__ = ["OLDER_THRESHOLDS", "YOUNG_THRESHOLD", "settle_heap"]

#: Net allocations of container objects between two young-generation collections.
YOUNG_THRESHOLD = 50_000
#: Young collections between two middle-generation ones, and middle between two full ones
#: (CPython's second and third thresholds; a full one also waits for the long-lived objects to
#: have grown by a quarter).
OLDER_THRESHOLDS = (20, 10)


def settle_heap() -> None:
    """Freeze what exists now and collect the young generation every `YOUNG_THRESHOLD`."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
