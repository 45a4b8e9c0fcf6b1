"""Deterministic trace and span ids, the sampling decision and the W3C `traceparent` header.

Every process that sees an execution (the one that started it, another replica, the same one
after a restart) computes the same ids from what the history says, so the spans they export
land in one trace and nest:

- the trace id is a hash of the flow's name, the execution's name and the time of its
  ExecutionStarted event (in whole microseconds, see `micros`), so that a name used again
  after a deletion makes another trace;
- a span id is a hash (blake2b, 8 bytes) of the trace id's 16 bytes and the EventId that opened
  the span (ExecutionStarted for the root, StepEntered for a step, TaskScheduled for a task
  attempt), as 8 bytes;
- an execution is sampled when the top 64 bits of its trace id, read as a number, fall below
  ``ratio * 2**64``: every replica decides alike without telling another.
"""

from __future__ import annotations

import hashlib
import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "is_sampled",
    "micros",
    "span_hasher",
    "span_id",
    "span_id_from",
    "span_id_hex",
    "span_id_in",
    "trace_id",
    "traceparent",
]

_MASK_64 = (1 << 64) - 1
#: An EventId as a span id hashes it: 8 bytes, big-endian, signed.
_EVENT_ID = struct.Struct(">q").pack
_ZERO_HEX = "0" * 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(when: float | datetime) -> int:
    """A time as whole microseconds since the epoch, rounded as the history rounds it.

    The engine's hooks give seconds (a float); `get_execution_history` gives the same time as a
    `datetime`, rounded to the microsecond by `datetime.fromtimestamp`. Both go through that
    rounding here, so that they agree to the last digit (multiplying the float by a million
    would not, now and then).
    """
    if isinstance(when, datetime):
        return (when - _EPOCH) // _MICROSECOND
    # What `datetime.fromtimestamp` does, without building one (a hook's time, on the loop):
    # the fraction of a second rounded half to even, to the microsecond.
    fraction, whole = math.modf(when)
    return int(whole) * 1_000_000 + round(fraction * 1_000_000)


def _digest(*parts: str) -> bytes:
    # blake2b is fast and keyed by nothing: the ids must be the same in every process.
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()


def trace_id(flow_name: str, execution_name: str, started: int) -> int:
    """The 128-bit trace id of an execution (never 0).

    Args:
        flow_name: the flow.
        execution_name: the execution.
        started: the time of its ExecutionStarted event, in microseconds (`micros`).
    """
    value = int.from_bytes(_digest("t", flow_name, execution_name, str(started)), "big")
    return value or 1


def span_id(trace: int, event_id: int) -> int:
    """The 64-bit id of the span opened by history event ``event_id`` (never 0)."""
    return span_id_in(trace.to_bytes(16, "big"), event_id)


def span_id_in(trace: bytes, event_id: int) -> int:
    """`span_id` given the trace id's 16 bytes (an execution keeps them: one call a span)."""
    data = b"s" + trace + event_id.to_bytes(8, "big", signed=True)
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    return value or 1


def span_hasher(trace: int) -> Any:
    """A hash that has taken a trace id's part of every span id in it (for `span_id_from`)."""
    return hashlib.blake2b(b"s" + trace.to_bytes(16, "big"), digest_size=8)


def span_id_from(hasher: Any, event_id: int) -> int:
    """`span_id` given `span_hasher` of the trace id: a copy of the hash, not a new one."""
    one = hasher.copy()
    one.update(event_id.to_bytes(8, "big", signed=True))
    return int.from_bytes(one.digest(), "big") or 1


def span_id_hex(hasher: Any, event_id: int) -> str:
    """`span_id_from` as a `traceparent` writes it: 16 lowercase hex digits.

    The digest's own hex is the id's (big-endian, as `span_id_from` reads it), so no int is
    made and formatted: this runs for every task request, on the engine's loop.
    """
    one = hasher.copy()
    one.update(_EVENT_ID(event_id))
    digits = one.hexdigest()
    return digits if digits != _ZERO_HEX else "0000000000000001"


def is_sampled(trace: int, ratio: float) -> bool:
    """Whether an execution with this trace id is traced at ``ratio`` (0 to 1)."""
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    return (trace >> 64) & _MASK_64 < round(ratio * (1 << 64))


def traceparent(trace: int, span: int, sampled: bool) -> str:
    """The W3C `traceparent` value naming one span (version 00)."""
    return f"00-{trace:032x}-{span:016x}-{'01' if sampled else '00'}"
