"""Who may call the API: signature checks, timestamp window, nonces, and roles.

Requests are signed as Alibaba Cloud's SDKs sign them (see `relayflow.api.signature`). The
server checks, in order: the access key exists; the signature method and version are the ones
it speaks; the timestamp is within the window; the nonce was not seen within the window; the
signature matches; the key's role may call the action. Each refusal has its own code.

Roles: `admin` may call every action; `worker` may only report task results; `reader` may only
describe, list and read history.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from relayflow.api.signature import SIGNATURE_METHOD, SIGNATURE_VERSION, sign
from relayflow.config import AccessKey
from relayflow.errors import EngineError

__all__ = ["ROLE_ACTIONS", "Authenticator"]

READ_ACTIONS = frozenset(
    {"DescribeFlow", "ListFlows", "DescribeExecution", "ListExecutions", "GetExecutionHistory"}
)
REPORT_ACTIONS = frozenset({"ReportTaskSucceeded", "ReportTaskFailed"})
ROLE_ACTIONS: dict[str, frozenset[str] | None] = {
    "admin": None,  # everything
    "worker": REPORT_ACTIONS,
    "reader": READ_ACTIONS,
}
_MAX_NONCES = 200_000


def _refuse(code: str, message: str, status: int) -> EngineError:
    return EngineError(code, message, status)


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


class Authenticator:
    """Checks requests against the configured access keys."""

    def __init__(self, keys: Sequence[AccessKey], window_seconds: float = 900) -> None:
        self.keys = {key.id: key for key in keys}
        self.window = window_seconds
        self._nonces: OrderedDict[str, float] = OrderedDict()

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
        self._use_nonce(key.id + ":" + params["SignatureNonce"], now)
        allowed = ROLE_ACTIONS[key.role]
        if allowed is not None and action not in allowed:
            raise _refuse(
                "AccessDenied",
                f"access key {key.id!r} has role {key.role}, which may not call {action}",
                403,
            )
        return key

    def _use_nonce(self, nonce: str, now: float) -> None:
        nonces = self._nonces
        while nonces:
            oldest, seen = next(iter(nonces.items()))
            if now - seen <= self.window and len(nonces) < _MAX_NONCES:
                break
            del nonces[oldest]
        if nonce in nonces:
            raise _refuse(
                "SignatureNonceUsed",
                "this SignatureNonce was used already: a replayed request",
                400,
            )
        nonces[nonce] = now
