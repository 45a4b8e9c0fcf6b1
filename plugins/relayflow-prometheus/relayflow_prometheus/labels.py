"""Label values held to a bound, so that no caller can grow the number of series without end."""

from __future__ import annotations

import threading

from relayflow_prometheus.constants import OTHER

__all__ = ["BoundedLabel"]

#: Label values are cut to this many characters (flow names are at most 128).
MAX_VALUE_CHARS = 256


class BoundedLabel:
    """The first ``limit`` distinct values pass; every later one becomes `OTHER`.

    A value once admitted stays admitted for the life of the process, so a series never
    changes its label half-way. Hooks may run on more than one thread, hence the lock.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """The label value to use for ``value``."""
        value = value[:MAX_VALUE_CHARS]
        if value in self._seen:  # the common case, without the lock: sets are safe to read
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value

    def __len__(self) -> int:
        return len(self._seen)
