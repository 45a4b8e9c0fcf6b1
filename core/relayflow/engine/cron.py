"""Cron expressions of schedules: six fields, seconds first, as Serverless Workflow writes them.

    expr = parse_cron("0 */5 * * * *")          # every five minutes, on the minute
    expr.next_tick(time.time())                  # the first tick after now, epoch seconds
    expr.latest_tick(time.time())                # the last tick at or before now

The fields, in order, with what each takes (names are case-insensitive):

| field        | values              | also                    |
| ------------ | ------------------- | ----------------------- |
| seconds      | 0-59                | `*` `,` `-` `/`         |
| minutes      | 0-59                | `*` `,` `-` `/`         |
| hours        | 0-23                | `*` `,` `-` `/`         |
| day of month | 1-31                | `*` `,` `-` `/` `?`     |
| month        | 1-12 or JAN-DEC     | `*` `,` `-` `/`         |
| day of week  | 0-6 or SUN-SAT (7 is Sunday too) | `*` `,` `-` `/` `?` |

`a-b/n` is every n-th value from a to b, `a/n` every n-th from a to the field's end, `*/n` every
n-th from its start. When both day fields are restricted, a day matches either of them (as in
Vixie cron); `?` means the same as `*`. Besides, `@every <duration>` (`30s`, `5m`, `1h30m`: ticks
at whole multiples of the duration since the Unix epoch) and `@yearly`, `@monthly`, `@weekly`,
`@daily`, `@hourly`. Times are UTC unless the expression starts with `CRON_TZ=<zone>` (an IANA
name such as `CRON_TZ=Asia/Shanghai 0 0 9 * * *`). Where a zone skips an hour (daylight saving
starts) the ticks in it do not happen; where it repeats one, they happen the first time only.

A bad expression raises `CronError` with one sentence naming the field. Ticks are whole seconds.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relayflow.errors import RelayflowError

__all__ = ["MAX_CRON_CHARS", "CronError", "CronExpression", "parse_cron"]

#: The longest expression accepted.
MAX_CRON_CHARS = 256
#: How far ahead a tick is looked for (an expression such as Feb 29 on a Monday is rare).
_SEARCH_YEARS = 30
#: The shortest `@every` interval.
_MIN_EVERY_SECONDS = 1

_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# The longest day each month can have (February in a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronError(RelayflowError, ValueError):
    """A cron expression that cannot be used; the message is one sentence naming the field.

    The engine answers it as `InvalidArgument`.
    """


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    question: bool = False  # `?` allowed


_FIELDS = (
    _Field("seconds", 0, 59),
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, question=True),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 7, _DAYS, question=True),
)


@dataclass(frozen=True)
class CronExpression:
    """A parsed expression: the values each field allows, its time zone, or an interval.

    Attributes:
        text: the expression as given.
        zone: the time zone ticks are computed in (UTC unless `CRON_TZ=` said otherwise).
        every: for `@every`, the interval in seconds (0 for a field expression).
    """

    text: str
    zone: tzinfo
    every: int = 0
    seconds: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    hours: tuple[int, ...] = ()
    days: frozenset[int] = frozenset()
    months: tuple[int, ...] = ()
    weekdays: frozenset[int] = frozenset()  # 0 is Sunday
    any_day: bool = True  # day-of-month is `*` or `?`
    any_weekday: bool = True  # day-of-week is `*` or `?`

    def next_tick(self, after: float) -> float | None:
        """The first tick strictly after ``after`` (epoch seconds); None if none comes.

        None only for an expression that cannot fire within the next 30 years.
        """
        start = math.floor(after) + 1
        if self.every:
            return float(-(-start // self.every) * self.every)
        # fold=0: a repeated wall time is read as its first pass (see the module's docstring).
        wall = datetime.fromtimestamp(start, self.zone).replace(tzinfo=None, fold=0)
        while True:
            found = self._next_wall(wall)
            if found is None:
                return None
            moment = found.replace(tzinfo=self.zone).timestamp()
            # A wall time that does not exist (skipped) or that comes again later than
            # ``after`` only on its second pass (repeated) is not a tick of this search.
            if self.zone is UTC or (
                moment >= start
                and datetime.fromtimestamp(moment, self.zone).replace(tzinfo=None) == found
            ):
                return moment
            wall = found + timedelta(seconds=1)

    def latest_tick(self, at: float) -> float | None:
        """The last tick at or before ``at``; None if there was none in the last 30 years."""
        top = math.floor(at)
        if self.every:
            return float(top // self.every * self.every)
        # next_tick(x) <= top holds for x below the latest tick and fails from it on: find
        # the largest such x by doubling back from ``top``, then by bisection.
        span = 1
        limit = _SEARCH_YEARS * 366 * 86400
        while True:
            found = self.next_tick(top - span)
            if found is not None and found <= top:
                break
            if span > limit:
                return None
            span *= 2
        low, high = top - span, top  # next_tick(low) <= top < next_tick(high)
        while high - low > 1:
            middle = (low + high) // 2
            found = self.next_tick(middle)
            if found is not None and found <= top:
                low = middle
            else:
                high = middle
        return self.next_tick(low)

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Python: Monday is 0; cron: Sunday is 0
        in_days = moment.day in self.days
        in_weekdays = weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first wall-clock time at or after ``wall`` that every field allows."""
        last_year = wall.year + _SEARCH_YEARS
        while wall.year <= last_year:
            if wall.month not in self.months:
                i = bisect.bisect_left(self.months, wall.month)
                if i < len(self.months):
                    wall = datetime(wall.year, self.months[i], 1)
                else:
                    wall = datetime(wall.year + 1, self.months[0], 1)
                continue
            if not self._day_matches(wall):
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
                continue
            step = _advance(self.hours, wall.hour)
            if step is None:
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
                continue
            if step != wall.hour:
                wall = wall.replace(hour=step, minute=0, second=0)
            step = _advance(self.minutes, wall.minute)
            if step is None:
                wall = wall.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if step != wall.minute:
                wall = wall.replace(minute=step, second=0)
            step = _advance(self.seconds, wall.second)
            if step is None:
                wall = wall.replace(second=0) + timedelta(minutes=1)
                continue
            return wall.replace(second=step)
        return None


def _advance(allowed: tuple[int, ...], value: int) -> int | None:
    """The smallest allowed value at or above ``value``; None when there is none."""
    i = bisect.bisect_left(allowed, value)
    return allowed[i] if i < len(allowed) else None


def parse_cron(text: str) -> CronExpression:
    """Parse a schedule's cron expression.

    Args:
        text: six fields seconds first (`0 */5 * * * *`), `@every 5m`, or a macro such as
            `@daily`, optionally after `CRON_TZ=<zone> `.

    Raises:
        CronError: the expression cannot be used (the message says why, in one sentence).
    """
    if not isinstance(text, str) or not text.strip():
        raise CronError("CronExpression is empty; give six fields, such as '0 */5 * * * *'")
    if len(text) > MAX_CRON_CHARS:
        raise CronError(f"CronExpression is longer than {MAX_CRON_CHARS} characters")
    body = text.strip()
    zone: tzinfo = UTC
    if body.upper().startswith(("CRON_TZ=", "TZ=")):
        prefix, _, body = body.partition(" ")
        zone = _zone(prefix.split("=", 1)[1])
        body = body.strip()
    if body.startswith("@"):
        return _special(text, body, zone)
    parts = body.split()
    if len(parts) != 6:
        raise CronError(
            f"CronExpression {body!r} has {len(parts)} fields; it needs 6 (seconds minutes "
            "hours day-of-month month day-of-week), seconds first, such as '0 */5 * * * *'"
        )
    sets = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = {0 if day == 7 else day for day in sets[5]}
    any_day, any_weekday = parts[3] in ("*", "?"), parts[5] in ("*", "?")
    months = sorted(sets[4])
    if any_weekday and not any(day <= _MONTH_DAYS[m - 1] for m in months for day in sets[3]):
        raise CronError(
            f"CronExpression {body!r} never fires: no month it names has the day-of-month it asks"
        )
    return CronExpression(
        text,
        zone,
        seconds=tuple(sorted(sets[0])),
        minutes=tuple(sorted(sets[1])),
        hours=tuple(sorted(sets[2])),
        days=frozenset(sets[3]),
        months=tuple(months),
        weekdays=frozenset(weekdays),
        any_day=any_day,
        any_weekday=any_weekday,
    )


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"CRON_TZ names an unknown time zone {name!r}; use an IANA name such as Asia/Shanghai"
        ) from None


def _special(text: str, body: str, zone: tzinfo) -> CronExpression:
    word, _, rest = body.partition(" ")
    word = word.lower()
    if word in _MACROS and not rest.strip():
        expanded = parse_cron(_MACROS[word])
        return CronExpression(
            text,
            zone,
            seconds=expanded.seconds,
            minutes=expanded.minutes,
            hours=expanded.hours,
            days=expanded.days,
            months=expanded.months,
            weekdays=expanded.weekdays,
            any_day=expanded.any_day,
            any_weekday=expanded.any_weekday,
        )
    if word != "@every":
        raise CronError(
            f"CronExpression {body!r} is not one relayflow knows: use six fields, @every "
            "<duration> or one of " + ", ".join(sorted(_MACROS))
        )
    match = _DURATION.fullmatch(rest.strip().lower())
    seconds = 0
    if match and any(match.groups()):
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < _MIN_EVERY_SECONDS:
        raise CronError(
            f"@every needs a duration of at least 1s such as 30s, 5m or 1h30m, got {rest!r}"
        )
    return CronExpression(text, zone, every=seconds)


def _parse_field(part: str, spec: _Field) -> set[int]:
    """The values one field allows."""
    values: set[int] = set()
    for item in part.split(","):
        values |= _parse_item(item, spec)
    return values


def _parse_item(item: str, spec: _Field) -> set[int]:
    where = f"the {spec.name} field of CronExpression"
    if item in ("*", "?"):
        if item == "?" and not spec.question:
            raise CronError(f"{where} cannot be '?': only day-of-month and day-of-week can")
        return set(range(spec.low, (6 if spec.name == "day-of-week" else spec.high) + 1))
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{where} has the step {step_text!r} in {item!r}: it must be 1 or more")
        step = int(step_text)
    # Day-of-week takes 7 for Sunday only when written: `*` and `a/n` stop at Saturday (6).
    top = 6 if spec.name == "day-of-week" else spec.high
    if base in ("*", "?"):
        low, high = spec.low, top
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, spec, item), _value(last, spec, item)
        if low > high:
            raise CronError(f"{where} has the range {base!r} in {item!r} going backwards")
    else:
        low = _value(base, spec, item)
        high = top if slash else low
    return set(range(low, high + 1, step))


def _value(text: str, spec: _Field, item: str) -> int:
    where = f"the {spec.name} field of CronExpression"
    if text.isdigit():
        value = int(text)
    elif spec.names is not None and text.upper() in spec.names:
        return spec.names[text.upper()]
    else:
        if text.upper() in ("L", "W") or "#" in text or text.upper().endswith(("L", "W")):
            raise CronError(f"{where} uses {item!r}: L, W and # are not supported")
        kinds = " or a name" if spec.names else ""
        raise CronError(f"{where} has {text!r} in {item!r}: it must be a number{kinds}")
    if not spec.low <= value <= spec.high:
        raise CronError(f"{where} allows {spec.low}-{spec.high}, got {value} in {item!r}")
    return value
