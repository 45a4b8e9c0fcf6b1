"""Console sign-ins: the signed session cookie, CSRF tokens and `relayflow console token`.

Keys are derived from the engine's token secret (`Engine.derived_key`), so a cookie signed by
one replica is good on every replica of the same store.
"""

from __future__ import annotations

__all__: list[str] = []
