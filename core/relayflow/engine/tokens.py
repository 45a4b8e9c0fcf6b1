"""Task tokens: `base64("v1#<flow>#<execution>#<task id>#" + base64(HMAC-SHA1))`.

The layout is the one Serverless Workflow's tokens decode to, so tools that peek inside them
keep working. The MAC field holds two HMACs with a secret the store keeps (or the configuration
gives): one of the prefix alone, checked before anything is looked up, so a forged token tells
nothing about which executions exist; and one of the prefix with the execution's private uid,
so a token of a deleted execution does not fit a new one of the same name.

Tokens minted before the two-part MAC (20 bytes, the second HMAC only) are still accepted; for
them a missing execution and a wrong MAC get the same answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from relayflow.errors import EngineError, error

__all__ = ["TokenParts", "check_issued", "mint_token", "parse_token", "verify_token"]


@dataclass(frozen=True, slots=True)
class TokenParts:
    """What a token names: the flow, the execution and the task attempt."""

    flow_name: str
    execution_name: str
    task_id: int
    prefix: str
    mac: bytes

    @property
    def legacy(self) -> bool:
        """A token with the uid-bound MAC only, which cannot be checked before a lookup."""
        return len(self.mac) == _LEGACY_MAC_BYTES


_LEGACY_MAC_BYTES = 20


def _mac(secret: bytes, prefix: str, execution_uid: str) -> bytes:
    return hmac.new(secret, (prefix + execution_uid).encode(), hashlib.sha1).digest()


def _invalid() -> EngineError:
    return error(
        "TaskTokenInvalid",
        "the task token's signature does not match: it was altered, or issued by "
        "another relayflow store, or its execution was deleted",
    )


def mint_token(
    secret: bytes, flow_name: str, execution_name: str, execution_uid: str, task_id: int
) -> str:
    """The token of one task attempt."""
    prefix = f"v1#{flow_name}#{execution_name}#{task_id}#"
    # Both MACs from one keyed state: the second only adds the uid to what the first covered.
    state = hmac.new(secret, prefix.encode(), hashlib.sha1)
    issued = state.copy().digest()
    state.update(execution_uid.encode())
    mac = base64.b64encode(issued + state.digest()).decode()
    return base64.b64encode((prefix + mac).encode()).decode()


def parse_token(token: str) -> TokenParts:
    """Split a token into its parts.

    Raises:
        EngineError: `TaskTokenMalformed` when it is not a relayflow task token.
    """
    try:
        text = base64.b64decode(token.encode(), validate=True).decode()
        version, flow, execution, task, mac = text.split("#")
        if version != "v1" or not flow or not execution:
            raise ValueError
        parts = TokenParts(
            flow, execution, int(task), text[: -len(mac)], base64.b64decode(mac, validate=True)
        )
    except (ValueError, binascii.Error, UnicodeError):
        raise error(
            "TaskTokenMalformed",
            "the task token is not one relayflow issued (it does not decode); pass "
            "the token exactly as the task received it",
        ) from None
    return parts


def check_issued(secret: bytes, parts: TokenParts) -> None:
    """Check, without any lookup, that this store issued the token (a no-op for legacy ones).

    Raises:
        EngineError: `TaskTokenInvalid` when it did not.
    """
    if parts.legacy:
        return
    if len(parts.mac) != 2 * _LEGACY_MAC_BYTES or not hmac.compare_digest(
        parts.mac[:_LEGACY_MAC_BYTES], _mac(secret, parts.prefix, "")
    ):
        raise _invalid()


def verify_token(secret: bytes, parts: TokenParts, execution_uid: str) -> None:
    """Check that the token belongs to the execution with ``execution_uid``.

    Raises:
        EngineError: `TaskTokenInvalid` when the token was not issued for it.
    """
    if not hmac.compare_digest(
        parts.mac[-_LEGACY_MAC_BYTES:], _mac(secret, parts.prefix, execution_uid)
    ):
        raise _invalid()
    check_issued(secret, parts)
