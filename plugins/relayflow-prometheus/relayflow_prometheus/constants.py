"""Constants shared by the server and worker sides, in a module that imports nothing.

A worker imports only this, `labels` and `worker`, so that it starts without loading the
engine-side configuration models.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_LATENCY_BUCKETS", "OTHER"]

#: The label value that stands for every value past a label's limit. No flow, resource or
#: queue name can contain parentheses, so it never collides with a real one.
OTHER: Final = "(other)"

#: Durations of steps, task attempts and worker messages: from milliseconds to an hour.
DEFAULT_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
#: The engine's own latencies (API requests, commits, outbox and timer lags): sub-millisecond up.
DEFAULT_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
