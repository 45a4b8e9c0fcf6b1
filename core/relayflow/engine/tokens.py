"""Task tokens: `base64("v1#<flow>#<execution>#<task id>#" + base64(HMAC-SHA1))`.

The layout is the one Serverless Workflow's tokens decode to, so tools that peek inside them
keep working. The MAC covers that prefix and the execution's private uid, with a secret the
store keeps (or the configuration gives): a token cannot be forged, and a token of a deleted
execution does not fit a new one of the same name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from relayflow.errors import error

__all__ = ["TokenParts", "mint_token", "parse_token", "verify_token"]


@dataclass(frozen=True, slots=True)
class TokenParts:
    """What a token names: the flow, the execution and the task attempt."""

    flow_name: str
    execution_name: str
    task_id: int
    prefix: str
    mac: bytes


def _mac(secret: bytes, prefix: str, execution_uid: str) -> bytes:
    return hmac.new(secret, (prefix + execution_uid).encode(), hashlib.sha1).digest()


def mint_token(
    secret: bytes, flow_name: str, execution_name: str, execution_uid: str, task_id: int
) -> str:
    """The token of one task attempt."""
    prefix = f"v1#{flow_name}#{execution_name}#{task_id}#"
    mac = base64.b64encode(_mac(secret, prefix, execution_uid)).decode()
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


def verify_token(secret: bytes, parts: TokenParts, execution_uid: str) -> None:
    """Check a token's MAC.

    Raises:
        EngineError: `TaskTokenInvalid` when the token was not issued by this store.
    """
    if not hmac.compare_digest(parts.mac, _mac(secret, parts.prefix, execution_uid)):
        raise error(
            "TaskTokenInvalid",
            "the task token's signature does not match: it was altered, or issued by "
            "another relayflow store, or its execution was deleted",
        )
