"""One execution as the console's execution page shows it, built from its history.

`execution_view(engine, flow, name)` gives each step's state (running, succeeded, failed,
caught, retried, waiting), the timeline bars of steps, tasks, retries and waits, each step's
input, output and error, and what the execution waits on now.
"""

from __future__ import annotations

__all__: list[str] = []
