"""Console sign-ins: the signed session cookie, CSRF values, console tokens, and throttling.

Keys are derived from the engine's token secret (`Engine.derived_key`), so a cookie signed by
one replica is good on every replica of the same store, and after a restart.

- The cookie `relayflow_console` holds ``base64url(JSON payload) "." base64url(MAC)``. The
  payload is ``{"k": key id, "r": role, "e": expiry (epoch seconds), "s": session id}``; the
  MAC is HMAC-SHA256 under the `console-session` key of the payload text and a digest of the
  key's secret, so a cookie stops working when its key is removed, changes role, or gets a
  new secret.
- The CSRF value of a session is HMAC-SHA256 under the `console-csrf` key of its session id
  (without access keys, of the word `keyless`).
- A console token (`relayflow console token`) is minted where the access key secret is,
  without the server: ``base64url(JSON {"k", "e", "n"}) "." base64url(MAC)``, the MAC being
  HMAC-SHA256 under the key's secret. It lives at most `MAX_TOKEN_MINUTES`; the server accepts
  each once (its nonce is recorded in the store, so every replica sees it used).

Everything read from a cookie or a token is hostile input: sizes are bounded, and any
deviation makes it simply invalid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COOKIE",
    "MAX_TOKEN_MINUTES",
    "SIGN_IN_FAILURES_PER_ADDRESS",
    "SIGN_IN_FAILURES_PER_KEY",
    "SIGN_IN_WINDOW_SECONDS",
    "Session",
    "Throttle",
    "TokenClaim",
    "csrf_value",
    "mint_token",
    "new_session",
    "read_cookie",
    "read_token",
    "session_cookie",
]

#: The session cookie's name.
COOKIE = "relayflow_console"
#: The longest a console token may live, in minutes (`relayflow console token --minutes`).
MAX_TOKEN_MINUTES = 60
#: Failed sign-ins one access key id may have within the window before it is throttled.
SIGN_IN_FAILURES_PER_KEY = 10
#: Failed sign-ins one client address may have within the window before it is throttled.
SIGN_IN_FAILURES_PER_ADDRESS = 30
#: How long a failed sign-in counts against its key id and address.
SIGN_IN_WINDOW_SECONDS = 300
# The most client addresses the throttle remembers (the oldest is forgotten first).
_MAX_ADDRESSES = 10_000
# Cookies and tokens longer than this are not even decoded.
_MAX_TEXT = 2048
_TOKEN_CONTEXT = b"relayflow-console-token:"


@dataclass(frozen=True)
class Session:
    """One signed-in person: the access key they signed in with, and until when."""

    key_id: str
    role: str
    expires: int
    session_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _split(text: str) -> tuple[str, bytes, bytes] | None:
    """``payload_b64.mac_b64`` as (payload text, payload bytes, mac); None if malformed."""
    if not text or len(text) > _MAX_TEXT or text.count(".") != 1:
        return None
    body, _, mac_text = text.partition(".")
    payload, mac = _unb64(body), _unb64(mac_text)
    if payload is None or mac is None or len(mac) != hashlib.sha256().digest_size:
        return None
    return body, payload, mac


def _object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def session_cookie(key: bytes, session: Session, secret: str) -> str:
    """The cookie value of ``session``, signed with ``key`` and bound to the key's ``secret``."""
    payload = json.dumps(
        {"k": session.key_id, "r": session.role, "e": session.expires, "s": session.session_id},
        separators=(",", ":"),
    )
    body = _b64(payload.encode())
    mac = hmac.new(key, body.encode() + b"." + _secret_digest(secret), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_cookie(
    key: bytes, value: str, secrets_by_id: dict[str, tuple[str, str]], now: float | None = None
) -> Session | None:
    """The session a cookie value holds, or None when it is not one this server signed.

    Args:
        key: the `console-session` key.
        value: the cookie's value.
        secrets_by_id: the server's access keys now, ``id -> (role, secret)``.
        now: the time to check the expiry against (default: now).
    """
    parts = _split(value)
    if parts is None:
        return None
    body, payload, mac = parts
    doc = _object(payload)
    if doc is None or set(doc) != {"k", "r", "e", "s"}:
        return None
    key_id, role, expires, session_id = doc["k"], doc["r"], doc["e"], doc["s"]
    if not (isinstance(key_id, str) and isinstance(role, str) and isinstance(session_id, str)):
        return None
    if isinstance(expires, bool) or not isinstance(expires, int):
        return None
    known = secrets_by_id.get(key_id)
    # Compute the MAC even for an unknown key, so that timing says nothing about key ids.
    secret = known[1] if known is not None else ""
    expected = hmac.new(key, body.encode() + b"." + _secret_digest(secret), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac) or known is None or known[0] != role:
        return None
    if (time.time() if now is None else now) >= expires:
        return None
    return Session(key_id, role, expires, session_id)


def new_session(key_id: str, role: str, minutes: int, now: float | None = None) -> Session:
    """A fresh session of ``key_id`` that lasts ``minutes``, with a random session id."""
    start = time.time() if now is None else now
    return Session(key_id, role, int(start) + minutes * 60, secrets.token_urlsafe(18))


def csrf_value(key: bytes, session_id: str) -> str:
    """The CSRF value of a session (``key`` is the `console-csrf` key)."""
    return _b64(hmac.new(key, session_id.encode(), hashlib.sha256).digest())


def mint_token(key_id: str, secret: str, minutes: int, now: float | None = None) -> str:
    """A console token for the access key ``key_id``, good for ``minutes`` (at most 60).

    Raises:
        ValueError: ``minutes`` is not between 1 and `MAX_TOKEN_MINUTES`.
    """
    if not 1 <= minutes <= MAX_TOKEN_MINUTES:
        raise ValueError(f"minutes must be between 1 and {MAX_TOKEN_MINUTES}, got {minutes}")
    start = time.time() if now is None else now
    payload = json.dumps(
        {"k": key_id, "e": int(start) + minutes * 60, "n": secrets.token_urlsafe(12)},
        separators=(",", ":"),
    )
    body = _b64(payload.encode())
    mac = hmac.new(secret.encode(), _TOKEN_CONTEXT + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


@dataclass(frozen=True)
class TokenClaim:
    """What a token claims before its signature is checked."""

    key_id: str
    expires: int
    nonce: str
    body: str
    mac: bytes

    def signed_by(self, secret: str) -> bool:
        """Whether the token's MAC was made with ``secret`` (constant-time comparison)."""
        expected = hmac.new(
            secret.encode(), _TOKEN_CONTEXT + self.body.encode(), hashlib.sha256
        ).digest()
        return hmac.compare_digest(expected, self.mac)


def read_token(text: str) -> TokenClaim | None:
    """The claim of a console token, or None when it is not shaped like one."""
    parts = _split(text.strip())
    if parts is None:
        return None
    body, payload, mac = parts
    doc = _object(payload)
    if doc is None or set(doc) != {"k", "e", "n"}:
        return None
    key_id, expires, nonce = doc["k"], doc["e"], doc["n"]
    if not isinstance(key_id, str) or not isinstance(nonce, str) or not key_id or not nonce:
        return None
    if isinstance(expires, bool) or not isinstance(expires, int):
        return None
    return TokenClaim(key_id, expires, nonce, body, mac)


class Throttle:
    """Failed sign-ins by access key id and by client address, within a sliding window.

    Kept in each process: a replica counts the failures it sees. Only the ids of configured
    keys are counted per key (an unknown id counts only against its address), and at most
    `_MAX_ADDRESSES` addresses are remembered, so the memory it takes is bounded.
    """

    def __init__(
        self,
        per_key: int = SIGN_IN_FAILURES_PER_KEY,
        per_address: int = SIGN_IN_FAILURES_PER_ADDRESS,
        window: float = SIGN_IN_WINDOW_SECONDS,
    ) -> None:
        self.per_key = per_key
        self.per_address = per_address
        self.window = window
        self._keys: dict[str, deque[float]] = {}
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, times: deque[float] | None, now: float) -> int:
        if times is None:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        return len(times)

    def blocked(self, key_id: str, address: str, now: float | None = None) -> str | None:
        """Why a sign-in of ``key_id`` from ``address`` is refused now, or None if it may try."""
        now = time.monotonic() if now is None else now
        if self._recent(self._keys.get(key_id), now) >= self.per_key:
            return (
                f"access key {key_id[:100]!r} had {self.per_key} failed sign-ins within "
                f"{self.window:.0f} seconds"
            )
        if self._recent(self._addresses.get(address), now) >= self.per_address:
            return (
                f"this address had {self.per_address} failed sign-ins within "
                f"{self.window:.0f} seconds"
            )
        return None

    def failed(self, key_id: str | None, address: str, now: float | None = None) -> None:
        """Count a failed sign-in (``key_id`` None when it names no configured key)."""
        now = time.monotonic() if now is None else now
        if key_id is not None:
            self._keys.setdefault(key_id, deque()).append(now)
        times = self._addresses.pop(address, None) or deque()
        times.append(now)
        self._addresses[address] = times  # most recently failing last
        while len(self._addresses) > _MAX_ADDRESSES:
            self._addresses.popitem(last=False)
