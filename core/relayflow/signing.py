"""Signature version 1.0 of Alibaba Cloud's RPC APIs (HMAC-SHA1), as the official SDKs sign.

    string to sign = METHOD + "&" + enc("/") + "&" + enc(canonical query)
    canonical query = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(params))
    signature       = base64(HMAC-SHA1(secret + "&", string to sign))

where `enc` is RFC 3986 percent-encoding (spaces as %20, `~` left alone) and `params` are every
request parameter, from the query string and the form body alike, except `Signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "SIGNATURE_METHOD",
    "SIGNATURE_VERSION",
    "percent_encode",
    "sign",
    "signed_params",
    "string_to_sign",
]

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding, as the signature needs it."""
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The text that is signed for a request with these parameters."""
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(secret: str, method: str, params: Mapping[str, str]) -> str:
    """The signature of a request."""
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def signed_params(
    access_key_id: str,
    secret: str,
    method: str,
    params: Mapping[str, str],
    *,
    now: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """``params`` plus the common parameters and their signature, ready to send."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    full = {
        **params,
        "Format": "JSON",
        "AccessKeyId": access_key_id,
        "SignatureMethod": SIGNATURE_METHOD,
        "SignatureVersion": SIGNATURE_VERSION,
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": stamp,
    }
    full["Signature"] = sign(secret, method, full)
    return full
