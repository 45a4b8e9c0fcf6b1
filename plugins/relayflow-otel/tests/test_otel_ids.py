"""Ids every process computes alike, and the sampling decision they carry."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from relayflow_otel.ids import (
    is_sampled,
    micros,
    span_hasher,
    span_id,
    span_id_from,
    span_id_hex,
    span_id_in,
    trace_id,
    traceparent,
)


def test_a_hook_time_and_the_history_time_give_the_same_microseconds() -> None:
    draw = random.Random(16)
    # 1796209886.5447426 times a million lands on .5 in floating point: rounding that would
    # give ...742 where the history says ...743.
    times = [1796209886.5447426, *(draw.uniform(1.7e9, 1.9e9) for _ in range(2000))]
    for seconds in times:
        assert micros(seconds) == micros(datetime.fromtimestamp(seconds, UTC))


def test_ids_depend_on_what_they_should_and_are_never_zero() -> None:
    one = trace_id("orders", "o-1", 1_000)
    assert one == trace_id("orders", "o-1", 1_000)
    assert len({one, trace_id("orders", "o-2", 1_000), trace_id("orders", "o-1", 1_001)}) == 3
    assert trace_id("a", "bc", 1) != trace_id("ab", "c", 1)
    spans = {span_id(one, event) for event in range(1, 500)}
    assert len(spans) == 499 and 0 not in spans and max(spans) < 2**64
    assert 0 < one < 2**128


def test_every_way_to_a_span_id_gives_the_same_id() -> None:
    draw = random.Random(7)
    for _ in range(500):
        trace = draw.getrandbits(128) or 1
        event = draw.randrange(-(2**40), 2**40)
        expected = span_id(trace, event)
        assert span_id_in(trace.to_bytes(16, "big"), event) == expected
        assert span_id_from(span_hasher(trace), event) == expected
        assert span_id_hex(span_hasher(trace), event) == f"{expected:016x}"


class _ZeroHash:
    """A hash whose digest is all zeros: the one case where a span id is not the digest."""

    def copy(self) -> _ZeroHash:
        return self

    def update(self, data: bytes) -> None:
        pass

    def digest(self) -> bytes:
        return bytes(8)

    def hexdigest(self) -> str:
        return self.digest().hex()


def test_a_span_id_that_hashes_to_zero_is_one_however_it_is_read() -> None:
    assert span_id_from(_ZeroHash(), 5) == 1
    assert span_id_hex(_ZeroHash(), 5) == "0000000000000001"


def test_sampling_follows_the_ratio_on_the_trace_id() -> None:
    traces = [trace_id("f", f"e-{i}", i) for i in range(4000)]
    assert all(is_sampled(t, 1.0) for t in traces)
    assert not any(is_sampled(t, 0.0) for t in traces)
    quarter = sum(is_sampled(t, 0.25) for t in traces)
    assert 800 < quarter < 1200
    # A trace sampled at a ratio is sampled at every higher one: replicas never disagree.
    assert all(is_sampled(t, 0.5) for t in traces if is_sampled(t, 0.25))


def test_traceparent_is_w3c() -> None:
    assert traceparent(1, 2, True) == f"00-{1:032x}-{2:016x}-01"
    assert traceparent(2**128 - 1, 2**64 - 1, False).endswith("-ffffffffffffffff-00")
