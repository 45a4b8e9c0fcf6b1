"""Who may call the API: signature checks, timestamp window, nonces, and roles.

Requests are signed as Alibaba Cloud's SDKs sign them (see `relayflow.api.signature`). The
server checks, in order: the access key exists; the nonce is not too long, and the signature
method and version are the ones it speaks; the timestamp is within the window; the signature
matches; the nonce was not used before (only now, so that unsigned requests cannot use up a
key's nonces); the key's role may call the action. Each refusal has its own code.

Nonces are kept until their request's Timestamp leaves the window, and never forgotten
earlier: a key that has `max_nonces_per_key` of them is throttled instead, so that one key's
flood of requests neither grows the server's memory without bound nor makes another key's
captured request replayable.

Replicas on one store share their nonces: a nonce that passes this process's cache is then
recorded in the store (`check_shared`, given `Engine.use_nonce`), and refused there when
another replica recorded it first, with the same `SignatureNonceUsed` as a replay to one
process. The cache stays the first check, so a replay to the same replica costs no write.

Roles: `admin` may call every action; `worker` may only report task results; `reader` may only
describe, list and read history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from relayflow.api.signature import SIGNATURE_METHOD, SIGNATURE_VERSION, sign
from relayflow.config import AccessKey
from relayflow.errors import EngineError

__all__ = ["READ_ACTIONS", "ROLE_ACTIONS", "Authenticator", "NonceCache", "SharedNonces"]

#: Records a nonce for every replica: ``(key, window) -> False`` if it was recorded before.
SharedNonces = Callable[[str, float], Awaitable[bool]]

READ_ACTIONS = frozenset(
    {
        "DescribeFlow",
        "ListFlows",
        "DescribeExecution",
        "ListExecutions",
        "GetExecutionHistory",
        "DescribeSchedule",
        "ListSchedules",
        "ListFlowVersions",
        "DescribeFlowAlias",
        "ListFlowAliases",
        "DescribeRegions",
        "DescribeMapRun",
        # relayflow's own (issue 15)
        "CountExecutions",
        "ListWaitingWork",
    }
)
REPORT_ACTIONS = frozenset({"ReportTaskSucceeded", "ReportTaskFailed"})
ROLE_ACTIONS: dict[str, frozenset[str] | None] = {
    "admin": None,  # everything
    "worker": REPORT_ACTIONS,
    "reader": READ_ACTIONS,
}
_SLICES = 4  # a window's worth of nonces is kept in this many sets, dropped whole when expired


def _refuse(code: str, message: str, status: int) -> EngineError:
    return EngineError(code, message, status)


def _replayed() -> EngineError:
    return _refuse(
        "SignatureNonceUsed", "this SignatureNonce was used already: a replayed request", 400
    )


def _shared_key(key_id: str, nonce: str) -> str:
    """The store's key for a nonce of an access key: a digest, short and of one size."""
    return hashlib.sha256(json.dumps([key_id, nonce]).encode()).hexdigest()


def _parse_time(value: str) -> float:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _refuse(
            "InvalidTimeStamp.Format",
            f"Timestamp {value!r} is not ISO 8601 UTC, such as 2019-01-01T01:01:01Z",
            400,
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


class _KeyNonces:
    """One key's nonces, as hashes in sets by when they expire."""

    __slots__ = ("count", "purge_at", "slices")

    def __init__(self) -> None:
        self.slices: dict[int, set[int]] = {}
        self.count = 0
        self.purge_at = math.inf


class NonceCache:
    """The nonces seen, each kept until ``expires``, with at most ``per_key`` for one key.

    Only a hash of each nonce is kept (about 70 bytes a nonce). A hash collision can only
    refuse a request as a replay, never let a replay through, and only within one key.
    Replicas share their nonces through the store beside it (`Authenticator.check_shared`).
    """

    def __init__(self, per_key: int, slice_seconds: float) -> None:
        self.per_key = per_key
        self.slice = slice_seconds
        self._keys: dict[str, _KeyNonces] = {}

    def check_and_remember(self, key_id: str, nonce: str, expires: float, now: float) -> None:
        """Remember ``nonce`` of ``key_id`` until ``expires``.

        Raises:
            EngineError: the nonce was seen already (`SignatureNonceUsed`), or the key has
                its whole budget of nonces in use (`Throttling.SignatureNonce`).
        """
        entry = self._keys.get(key_id)
        if entry is None:
            entry = self._keys[key_id] = _KeyNonces()
        if now >= entry.purge_at:
            self._purge(entry, now)
        digest = hash(nonce)
        for seen in entry.slices.values():
            if digest in seen:
                raise _replayed()
        if entry.count >= self.per_key:
            raise _refuse(
                "Throttling.SignatureNonce",
                f"access key {key_id!r} has sent {self.per_key} signed requests whose "
                "Timestamps are still within the window, the most the server keeps "
                "(server.max_nonces_per_key); retry later or spread the calls over more keys",
                429,
            )
        index = int(expires // self.slice)
        bucket = entry.slices.get(index)
        if bucket is None:
            bucket = entry.slices[index] = set()
            entry.purge_at = min(entry.purge_at, (index + 1) * self.slice)
        bucket.add(digest)
        entry.count += 1

    def _purge(self, entry: _KeyNonces, now: float) -> None:
        # A slice holds nonces that expire before its end: past its end, all of them have.
        for index in [i for i in entry.slices if (i + 1) * self.slice <= now]:
            entry.count -= len(entry.slices.pop(index))
        entry.purge_at = (min(entry.slices) + 1) * self.slice if entry.slices else math.inf


class Authenticator:
    """Checks requests against the configured access keys.

    Args:
        keys: the access keys; without any, requests are not checked.
        window_seconds: how far a request's Timestamp may be from the server's clock.
        max_nonces_per_key: how many nonces one key may have kept at once.
        max_nonce_length: the longest SignatureNonce accepted, in characters.
        nonces: where nonces are kept (by default, in this process).
    """

    def __init__(
        self,
        keys: Sequence[AccessKey],
        window_seconds: float = 900,
        max_nonces_per_key: int = 2_000_000,
        max_nonce_length: int = 128,
        nonces: NonceCache | None = None,
    ) -> None:
        self.keys = {key.id: key for key in keys}
        self.window = window_seconds
        self.max_nonce_length = max_nonce_length
        self._nonces = nonces or NonceCache(max_nonces_per_key, window_seconds / _SLICES)

    @property
    def enabled(self) -> bool:
        """Whether any access key is configured (without keys, requests are not checked)."""
        return bool(self.keys)

    def check(
        self, method: str, params: Mapping[str, str], action: str, now: float | None = None
    ) -> AccessKey | None:
        """Check one request; return its access key (None when no keys are configured).

        Raises:
            EngineError: the request is refused; the code says why.
        """
        key = self._verify(method, params, now)
        if key is not None:
            self._authorize(key, action)
        return key

    async def check_shared(
        self,
        method: str,
        params: Mapping[str, str],
        action: str,
        shared: SharedNonces,
        now: float | None = None,
    ) -> AccessKey | None:
        """`check`, with the nonce also recorded in ``shared``, which every replica sees.

        Raises:
            EngineError: the request is refused; the code says why.
        """
        key = self._verify(method, params, now)
        if key is None:
            return None
        # A request's Timestamp may be up to a window before or after its first use, and its
        # replays pass the timestamp check until a window after it: two windows in all.
        if not await shared(_shared_key(key.id, params["SignatureNonce"]), 2 * self.window):
            raise _replayed()
        self._authorize(key, action)
        return key

    def _verify(
        self, method: str, params: Mapping[str, str], now: float | None
    ) -> AccessKey | None:
        """The request's key once its signature, timestamp and nonce pass; None without keys."""
        if not self.keys:
            return None
        now = time.time() if now is None else now
        key_id = params.get("AccessKeyId")
        if not key_id:
            raise _refuse(
                "MissingAccessKeyId", "the request is not signed: AccessKeyId is missing", 400
            )
        key = self.keys.get(key_id)
        if key is None:
            raise _refuse(
                "InvalidAccessKeyId.NotFound",
                f"access key {key_id!r} is not one this server knows",
                404,
            )
        for name in ("Signature", "Timestamp", "SignatureNonce"):
            if not params.get(name):
                raise _refuse("MissingParameter", f"the signed request lacks {name}", 400)
        if len(params["SignatureNonce"]) > self.max_nonce_length:
            raise _refuse(
                "InvalidParameter",
                f"SignatureNonce is {len(params['SignatureNonce'])} characters long, more than "
                f"the {self.max_nonce_length} characters the server accepts "
                "(server.max_nonce_length)",
                400,
            )
        if params.get("SignatureMethod", SIGNATURE_METHOD) != SIGNATURE_METHOD:
            raise _refuse(
                "InvalidSignatureMethod", f"SignatureMethod must be {SIGNATURE_METHOD}", 400
            )
        if params.get("SignatureVersion", SIGNATURE_VERSION) != SIGNATURE_VERSION:
            raise _refuse(
                "InvalidSignatureVersion", f"SignatureVersion must be {SIGNATURE_VERSION}", 400
            )
        stamp = _parse_time(params["Timestamp"])
        if abs(now - stamp) > self.window:
            raise _refuse(
                "InvalidTimeStamp.Expired",
                f"Timestamp {params['Timestamp']} is more than {self.window:.0f} "
                "seconds from the server's time",
                400,
            )
        expected = sign(key.secret, method, params)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise _refuse(
                "SignatureDoesNotMatch",
                "the signature does not match: check the access key secret and that "
                "the request was not changed on the way",
                400,
            )
        # Only now, with the signature checked: a forged request must not use up nonces.
        self._nonces.check_and_remember(key.id, params["SignatureNonce"], stamp + self.window, now)
        return key

    @staticmethod
    def _authorize(key: AccessKey, action: str) -> None:
        allowed = ROLE_ACTIONS[key.role]
        if allowed is not None and action not in allowed:
            raise _refuse(
                "AccessDenied",
                f"access key {key.id!r} has role {key.role}, which may not call {action}",
                403,
            )
