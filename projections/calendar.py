"""Calendar months and local dates in a company's billing time zone.

Every date comparison in the rules is on local dates; instants are kept as integer microseconds
since the Unix epoch (UTC), which is what both the Python fold and DuckDB compute with.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from schemas.timezones import load_zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only (not \d: that takes any script's)
FIRST_MONTH = (2000, 1)  # the months events can fall in (schemas.events: 2000-01-01 .. 2099-12-31)
LAST_MONTH = (2099, 12)


def zone(name: str | None) -> ZoneInfo:
    """A billing zone by name, from the shipped tzdata (schemas.timezones), never the host's."""
    return load_zone(name or "UTC")


def to_us(ts: datetime) -> int:
    """An aware datetime to integer microseconds since the epoch (exact, no float)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int, tz: ZoneInfo | None = None) -> datetime:
    dt = EPOCH + timedelta(microseconds=us)
    return dt.astimezone(tz) if tz is not None else dt


def local_date(us: int, tz: ZoneInfo) -> date:
    return from_us(us, tz).date()


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _offset(tz: ZoneInfo, us: int) -> tuple[int, str]:
    """The zone's UTC offset at an instant: (microseconds, its text as isoformat writes it)."""
    off = from_us(us, tz).utcoffset()
    assert off is not None  # an aware datetime in a ZoneInfo always has one
    secs = off.days * 86_400 + off.seconds
    sign = "+" if secs >= 0 else "-"
    mins, ss = divmod(abs(secs), 60)
    hh, mm = divmod(mins, 60)
    return secs * 1_000_000, f"{sign}{hh:02d}:{mm:02d}" + (f":{ss:02d}" if ss else "")


_DAY_US = 86_400_000_000
_day_offsets: dict[tuple[ZoneInfo, int], tuple[int, str]] = {}  # (zone, UTC day) -> offset
_CHANGES = (0, "")  # in _day_offsets: the offset changes within that day
_day_texts: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD"
_MINUTE_TEXTS = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]  # minute of the day
_SECOND_TEXTS = [f"{s:02d}" for s in range(60)]


def _day_offset(tz: ZoneInfo, day: int) -> tuple[int, str]:
    """The zone's offset over a whole UTC day, or `_CHANGES` when it changes within the day. Equal offsets
    at the day's start and the next day's start mean no change in between, since tzdata has no two
    transitions of a zone less than a day apart (the closest are 6.96 days, 2000-2100:
    tests/unit/replay/test_facts_sql.py pins them)."""
    first = _offset(tz, day * _DAY_US)
    return first if _offset(tz, (day + 1) * _DAY_US) == first else _CHANGES


def local_iso(us: int, tz: ZoneInfo) -> str:
    """An instant as local wall time with its offset, as support reads it (2026-10-01T00:30:00+02:00).

    Equal to `from_us(us, tz).isoformat(timespec=...)` (seconds when whole, else microseconds),
    computed from integers and per-day caches: it runs once per evidence item of every decision."""
    key = (tz, us // _DAY_US)
    off = _day_offsets.get(key)
    if off is None:
        off = _day_offsets[key] = _day_offset(tz, key[1])
    if off is _CHANGES:  # a day with a transition (a few a year): the instant's own offset
        off = _offset(tz, us)
    secs, frac = divmod(us + off[0], 1_000_000)
    days, sod = divmod(secs, 86_400)
    text = _day_texts.get(days)
    if text is None:
        text = _day_texts[days] = date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
    mins, ss = divmod(sod, 60)
    if frac:
        return f"{text}{_MINUTE_TEXTS[mins]}{_SECOND_TEXTS[ss]}.{frac:06d}{off[1]}"
    return f"{text}{_MINUTE_TEXTS[mins]}{_SECOND_TEXTS[ss]}{off[1]}"  # one string built, not three


def local_isos(instants: Iterable[int], tz: ZoneInfo) -> list[str]:
    """`local_iso` of each instant, in one loop: the same per-(zone, UTC day) offsets and texts,
    without a call per instant. A close writes two evidence times per account, thousands per
    company, and the calls were a third of their cost (tests/unit/projections/test_calendar.py
    holds it to `local_iso` over DST days and odd offsets)."""
    offsets: dict[int, tuple[int, str]] = {}  # UTC day -> its offset (or _CHANGES), this call's copy
    texts, minutes, seconds = _day_texts, _MINUTE_TEXTS, _SECOND_TEXTS
    out: list[str] = []
    append = out.append
    for us in instants:
        day = us // _DAY_US
        off = offsets.get(day)
        if off is None:
            key = (tz, day)
            off = _day_offsets.get(key)
            if off is None:
                off = _day_offsets[key] = _day_offset(tz, day)
            offsets[day] = off
        if off is _CHANGES:
            off = _offset(tz, us)
        secs, frac = divmod(us + off[0], 1_000_000)
        days, sod = divmod(secs, 86_400)
        text = texts.get(days)
        if text is None:
            text = texts[days] = date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
        mins, ss = divmod(sod, 60)
        if frac:
            append(f"{text}{minutes[mins]}{seconds[ss]}.{frac:06d}{off[1]}")
        else:
            append(f"{text}{minutes[mins]}{seconds[ss]}{off[1]}")
    return out


def utc_iso(ts: datetime) -> str:
    """An instant as every output column writes it: RFC 3339 in UTC, to the millisecond, with Z
    (2026-11-01T00:00:05.123Z), like the events' own timestamps."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=65536)
def start_of_day_us(d: date, tz: ZoneInfo) -> int:
    """The instant local date `d` begins in `tz` (midnight; the first instant of the day on DST days)."""
    return to_us(datetime(d.year, d.month, d.day, tzinfo=tz))


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month; which instants it spans depends on the zone it is read in."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: object) -> Month:
        """`YYYY-MM` (ASCII digits) from 2000-01 to 2099-12: the months events can fall in."""
        m = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f"invalid month {str(text)[:40]!r}; expected YYYY-MM")
        ym = (int(m.group(1)), int(m.group(2)))
        if not FIRST_MONTH <= ym <= LAST_MONTH:
            raise ValueError(f"month {m.group()!r} is outside the supported range 2000-01 .. 2099-12")
        return cls(*ym)

    @classmethod
    def of(cls, d: date) -> Month:
        return cls(d.year, d.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, self.days)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def prev(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start_us(self, tz: ZoneInfo) -> int:
        return start_of_day_us(self.first_day, tz)

    def end_us(self, tz: ZoneInfo) -> int:
        """Exclusive: the first instant of the next month."""
        return self.next().start_us(tz)

    def day1_cutoff_us(self, tz: ZoneInfo) -> int:
        """End of day 1 (exclusive): attributes for the month are read as of this instant (R4)."""
        return start_of_day_us(self.first_day + timedelta(days=1), tz)


@dataclass(frozen=True, slots=True)
class MonthBounds:
    """A month's instants in one zone, computed once per company-month (decide runs per account)."""

    month: Month
    start_us: int  # first instant of day 1
    day1_cutoff_us: int  # first instant of day 2: attributes are read before it (R4)
    end_us: int  # first instant of the next month

    @classmethod
    def of(cls, month: Month, tz: ZoneInfo) -> MonthBounds:
        return cls(month, month.start_us(tz), month.day1_cutoff_us(tz), month.end_us(tz))


def add_months_capped(d: date, n: int) -> date:
    """`d` plus n months keeping the day of the month, capped at the month's last day (R9)."""
    total = d.year * 12 + d.month - 1 + n
    y, m = divmod(total, 12)
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def first_month_starting_on_or_after(d: date) -> Month:
    return Month.of(d) if d.day == 1 else Month.of(d).next()
