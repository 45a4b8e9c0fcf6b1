"""The cron expressions of schedules: six fields seconds first, what each field takes, refusals,
time zones, and properties of the ticks against a brute-force reading of the fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.engine.cron import CronError, CronExpression, parse_cron


def at(text: str) -> float:
    """An ISO time (UTC unless it says otherwise) as epoch seconds."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def ticks(text: str, start: str, count: int) -> list[str | None]:
    expr, t, found = parse_cron(text), at(start), []
    for _ in range(count):
        nxt = expr.next_tick(t)
        found.append(iso(nxt))
        assert nxt is not None
        t = nxt
    return found


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("0 */5 * * * *", "2026-01-01T00:03:10", ["2026-01-01T00:05:00", "2026-01-01T00:10:00"]),
        ("*/20 * * * * *", "2026-01-01T00:00:00", ["2026-01-01T00:00:20", "2026-01-01T00:00:40"]),
        ("30 9 * * * *", "2026-01-01T00:00:00", ["2026-01-01T00:09:30", "2026-01-01T01:09:30"]),
        ("0 0 10 1 * ?", "2026-01-15T00:00:00", ["2026-02-01T10:00:00", "2026-03-01T10:00:00"]),
        (
            "0 0 0 * * MON-FRI",
            "2026-01-02T12:00:00",
            ["2026-01-05T00:00:00", "2026-01-06T00:00:00"],
        ),
        (
            "0 0 0 * JAN,jul SUN",
            "2026-01-01T00:00:00",
            ["2026-01-04T00:00:00", "2026-01-11T00:00:00"],
        ),
        ("0 0 0 * * 7", "2026-01-01T00:00:00", ["2026-01-04T00:00:00", "2026-01-11T00:00:00"]),
        # Both day fields restricted: either matches (the 13th, and every Friday).
        ("0 0 12 13 * FRI", "2026-02-01T00:00:00", ["2026-02-06T12:00:00", "2026-02-13T12:00:00"]),
        ("0 0 0 29 2 *", "2026-01-01T00:00:00", ["2028-02-29T00:00:00", "2032-02-29T00:00:00"]),
        (
            "0 15 10-12/2 * * *",
            "2026-01-01T00:00:00",
            ["2026-01-01T10:15:00", "2026-01-01T12:15:00"],
        ),
        ("5/20 0 0 * * *", "2026-01-01T00:00:00", ["2026-01-01T00:00:05", "2026-01-01T00:00:25"]),
        ("@every 90s", "2026-01-01T00:00:00", ["2026-01-01T00:01:30", "2026-01-01T00:03:00"]),
        ("@every 1h30m", "2026-01-01T00:00:00", ["2026-01-01T01:30:00", "2026-01-01T03:00:00"]),
        ("@hourly", "2026-01-01T00:00:00", ["2026-01-01T01:00:00", "2026-01-01T02:00:00"]),
        ("@daily", "2026-01-01T00:00:00", ["2026-01-02T00:00:00", "2026-01-03T00:00:00"]),
        # 09:00 in Shanghai (UTC+8) is 01:00 UTC.
        (
            "CRON_TZ=Asia/Shanghai 0 0 9 * * *",
            "2026-01-01T00:00:00",
            ["2026-01-01T01:00:00", "2026-01-02T01:00:00"],
        ),
    ],
)
def test_ticks_of_an_expression(text: str, start: str, expected: list[str]) -> None:
    assert ticks(text, start, len(expected)) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("*/5 * * * *", ["has 5 fields", "needs 6", "seconds first", "'0 */5 * * * *'"]),
        ("0 0 0 * * * 2026", ["has 7 fields", "needs 6"]),
        ("", ["empty"]),
        ("0 61 * * * *", ["minutes field", "0-59", "61"]),
        ("0 0 24 * * *", ["hours field", "0-23"]),
        ("0 0 0 0 * *", ["day-of-month field", "1-31"]),
        ("0 0 0 * 13 *", ["month field", "1-12"]),
        ("0 0 0 * * 8", ["day-of-week field", "0-7"]),
        ("? * * * * *", ["seconds field", "'?'"]),
        ("0 0 0 L * *", ["L, W and #"]),
        ("0 0 0 * * 5#2", ["L, W and #"]),
        ("0 0 0 1 FOO *", ["month field", "'FOO'"]),
        ("0 0 0 5-1 * *", ["backwards"]),
        ("*/0 * * * * *", ["step", "1 or more"]),
        ("0 0 0 31 2 *", ["never fires"]),
        ("0 0 0 30,31 2,4 *", []),  # April 30 exists: accepted
        ("CRON_TZ=Mars/Olympus 0 0 0 * * *", ["unknown time zone", "Mars/Olympus"]),
        ("@every 0s", ["at least 1s"]),
        ("@every five", ["@every"]),
        ("@sometimes", ["not one relayflow knows"]),
        ("0 " * 200 + "0", ["longer than 256"]),
    ],
)
def test_bad_expressions_are_refused_with_one_sentence(text: str, words: list[str]) -> None:
    if not words:
        parse_cron(text)
        return
    with pytest.raises(CronError) as caught:
        parse_cron(text)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_a_skipped_hour_has_no_ticks_and_a_repeated_one_fires_once() -> None:
    new_york = "CRON_TZ=America/New_York "
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not happen that day.
    daily = ticks(new_york + "0 30 2 * * *", "2026-03-07T00:00:00", 2)
    assert daily == ["2026-03-07T07:30:00", "2026-03-09T06:30:00"]
    # 2026-11-01: 01:00-02:00 EDT comes again as EST; 01:30 fires the first time only.
    early = ticks(new_york + "0 30 1 * * *", "2026-10-31T12:00:00", 2)
    assert early == ["2026-11-01T05:30:00", "2026-11-02T06:30:00"]


def test_the_latest_tick_is_at_or_before_the_time_given() -> None:
    expr = parse_cron("0 */5 * * * *")
    assert iso(expr.latest_tick(at("2026-01-01T00:07:00"))) == "2026-01-01T00:05:00"
    assert iso(expr.latest_tick(at("2026-01-01T00:05:00"))) == "2026-01-01T00:05:00"
    yearly = parse_cron("0 0 0 29 2 *")
    assert iso(yearly.latest_tick(at("2026-06-01T00:00:00"))) == "2024-02-29T00:00:00"
    assert iso(parse_cron("@every 1m").latest_tick(at("2026-01-01T00:00:59.9"))) == (
        "2026-01-01T00:00:00"
    )


# -- properties -------------------------------------------------------------------------------

FIELDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


@st.composite
def field(draw: st.DrawFn, low: int, high: int, dense: bool) -> str:
    kinds = ["*", "value", "range", "step", "list"]
    kind = draw(st.sampled_from(kinds if not dense else ["*", "step", "range"]))
    if kind == "*":
        return "*"
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    if kind == "value":
        return str(a)
    if kind == "range":
        return f"{a}-{b}"
    if kind == "step":
        return f"{draw(st.sampled_from(['*', str(a)]))}/{draw(st.integers(1, 10))}"
    values = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
    return ",".join(map(str, values))


@st.composite
def expressions(draw: st.DrawFn) -> CronExpression:
    """Expressions that fire (the search for the next tick then ends quickly)."""
    parts = [field(low, high, dense=i >= 3) for i, (low, high) in enumerate(FIELDS)]
    text = " ".join(draw(part) for part in parts)
    try:
        return parse_cron(text)
    except CronError:  # such as the 31st of months that have 30 days
        return parse_cron("0 */5 * * * *")


TIMES = st.floats(at("2020-01-01T00:00:00"), at("2040-01-01T00:00:00"))


def matches(expr: CronExpression, seconds: float) -> bool:
    """Whether a UTC time is a tick, read from the fields directly (no search)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    in_days = moment.day in expr.days
    in_weekdays = (moment.weekday() + 1) % 7 in expr.weekdays
    day = (in_days and in_weekdays) if expr.any_day or expr.any_weekday else in_days or in_weekdays
    return (
        moment.second in expr.seconds
        and moment.minute in expr.minutes
        and moment.hour in expr.hours
        and moment.month in expr.months
        and day
    )


@settings(max_examples=150, deadline=None)
@given(expressions(), TIMES)
def test_the_next_tick_is_the_first_tick_after(expr: CronExpression, t: float) -> None:
    nxt = expr.next_tick(t)
    assert nxt is not None
    assert nxt > t and nxt == int(nxt)
    assert matches(expr, nxt)
    # No tick in between: the latest tick before it is at or before t.
    before = expr.latest_tick(nxt - 1)
    assert before is None or before <= t
    assert expr.latest_tick(nxt) == nxt


@settings(max_examples=150, deadline=None)
@given(expressions(), TIMES, st.floats(0, 3 * 86400))
def test_next_tick_never_goes_backwards(expr: CronExpression, t: float, later: float) -> None:
    first, second = expr.next_tick(t), expr.next_tick(t + later)
    assert first is not None and second is not None
    assert first <= second


@settings(max_examples=100, deadline=None)
@given(expressions(), TIMES)
def test_the_latest_tick_is_the_last_at_or_before(expr: CronExpression, t: float) -> None:
    latest = expr.latest_tick(t)
    assert latest is not None and latest <= t
    assert matches(expr, latest)
    after = expr.next_tick(latest)
    assert after is not None and after > t


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7200), TIMES)
def test_every_ticks_at_whole_multiples(interval: int, t: float) -> None:
    expr = parse_cron(f"@every {interval}s")
    nxt = expr.next_tick(t)
    assert nxt is not None and nxt > t and nxt % interval == 0 and nxt - interval <= t
