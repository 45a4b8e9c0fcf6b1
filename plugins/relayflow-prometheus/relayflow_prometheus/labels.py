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
        #: The values admitted so far. A hot loop may test ``value in admitted`` itself and
        #: use ``value`` as it is when true (an admitted value is never cut), calling the
        #: label only when not: that saves a call a value once it is known.
        self.admitted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """The label value to use for ``value``."""
        value = value[:MAX_VALUE_CHARS]
        if value in self.admitted:  # the common case, without the lock: sets are safe to read
            return value
        with self._lock:
            if value in self.admitted:
                return value
            if len(self.admitted) >= self._limit:
                return OTHER
            self.admitted.add(value)
            return value

    def __len__(self) -> int:
        return len(self.admitted)
