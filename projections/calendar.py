"""Calendar months and local dates in a company's billing time zone.

Every date comparison in the rules is on local dates; instants are kept as integer microseconds
since the Unix epoch (UTC), which is what both the Python fold and DuckDB compute with.
"""

from __future__ import annotations

import calendar
import re
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


_NAIVE_EPOCH = datetime(1970, 1, 1)
_QUARTER_HOUR_US = 900_000_000


@lru_cache(maxsize=262144)
def _offset(tz: ZoneInfo, quarter_hour: int) -> tuple[int, str]:
    """The zone's UTC offset in a quarter hour (zone transitions fall on quarter hours), cached."""
    off = from_us(quarter_hour * _QUARTER_HOUR_US, tz).utcoffset()
    assert off is not None  # an aware datetime in a ZoneInfo always has one
    secs = int(off.total_seconds())
    sign = "+" if secs >= 0 else "-"
    hh, mm = divmod(abs(secs) // 60, 60)
    return secs * 1_000_000, f"{sign}{hh:02d}:{mm:02d}"


def local_iso(us: int, tz: ZoneInfo) -> str:
    """An instant as local wall time with its offset, as support reads it (2026-10-01T00:30:00+02:00)."""
    off_us, suffix = _offset(tz, us // _QUARTER_HOUR_US)
    wall = _NAIVE_EPOCH + timedelta(microseconds=us + off_us)
    return wall.isoformat(timespec="seconds" if us % 1_000_000 == 0 else "microseconds") + suffix


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
