"""The request signature, as the server imports it.

The recipe lives in `relayflow.signing`, a leaf module the client shares without loading the
server.
"""

from __future__ import annotations

from relayflow.signing import (
    SIGNATURE_METHOD,
    SIGNATURE_VERSION,
    percent_encode,
    sign,
    signed_params,
    string_to_sign,
)

__all__ = [
    "SIGNATURE_METHOD",
    "SIGNATURE_VERSION",
    "percent_encode",
    "sign",
    "signed_params",
    "string_to_sign",
]
