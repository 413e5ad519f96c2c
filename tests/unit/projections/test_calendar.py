"""Local dates and months in a company's zone: the ground every rule stands on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.calendar import (
    Month,
    MonthBounds,
    add_months_capped,
    first_month_starting_on_or_after,
    from_us,
    local_date,
    local_iso,
    local_isos,
    to_us,
    utc_iso,
)

ZONES = ["UTC", "Europe/Amsterdam", "America/Los_Angeles", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns"]


def test_month_parses_and_steps_across_years():
    m = Month.parse("2026-12")
    assert (str(m.next()), str(m.prev()), m.days) == ("2027-01", "2026-11", 31)
    assert Month.parse("2028-02").days == 29


def test_day_one_in_amsterdam_starts_the_evening_before_in_utc():
    tz = ZoneInfo("Europe/Amsterdam")
    ts = to_us(datetime(2026, 9, 30, 22, 30, tzinfo=UTC))
    assert local_date(ts, tz) == date(2026, 10, 1)
    assert local_iso(ts, tz) == "2026-10-01T00:30:00+02:00"


def test_day_one_in_los_angeles_starts_in_the_morning_utc():
    tz = ZoneInfo("America/Los_Angeles")
    b = MonthBounds.of(Month(2026, 11), tz)
    assert from_us(b.start_us) == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    # 1 November 2026 is also the day DST ends there: day 1 lasts 25 hours.
    assert b.day1_cutoff_us - b.start_us == 25 * 3600 * 1_000_000


def test_a_quarter_hour_zone_is_exact():
    tz = ZoneInfo("Asia/Kathmandu")
    assert from_us(Month(2026, 10).start_us(tz)) == datetime(2026, 9, 30, 18, 15, tzinfo=UTC)


def test_three_months_after_keeps_the_day_capped_at_month_end():
    assert add_months_capped(date(2026, 10, 15), 3) == date(2027, 1, 15)
    assert add_months_capped(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert first_month_starting_on_or_after(date(2027, 2, 1)) == Month(2027, 2)
    assert first_month_starting_on_or_after(date(2027, 1, 15)) == Month(2027, 2)


@settings(max_examples=300, deadline=None)
@given(
    us=st.integers(min_value=1_600_000_000_000_000, max_value=2_000_000_000_000_000),
    zone_name=st.sampled_from(ZONES),
    whole=st.booleans(),
)
def test_fast_local_iso_equals_the_standard_library(us, zone_name, whole):
    if whole:
        us -= us % 1_000_000
    tz = ZoneInfo(zone_name)
    spec = "seconds" if us % 1_000_000 == 0 else "microseconds"
    assert local_iso(us, tz) == from_us(us, tz).isoformat(timespec=spec)


def test_output_timestamps_are_utc_milliseconds_with_z():
    assert utc_iso(datetime(2026, 11, 1, 0, 0, 5, 123456, tzinfo=UTC)) == "2026-11-01T00:00:05.123Z"
    # an instant given in another zone is written in UTC
    assert utc_iso(datetime(2026, 11, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-01T00:00:00.000Z"
    assert datetime.fromisoformat(utc_iso(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


def _transition_instants(tz: ZoneInfo, year: int) -> list[int]:
    """The instants (whole seconds) where the zone's offset changes in `year`, found hour by hour
    and then to the second."""
    out = []
    t = to_us(datetime(year, 1, 1, tzinfo=UTC))
    end = to_us(datetime(year + 1, 1, 1, tzinfo=UTC))
    hour = 3_600_000_000
    while t < end:
        if from_us(t, tz).utcoffset() != from_us(t + hour, tz).utcoffset():
            a, b = t, t + hour
            while b - a > 1_000_000:
                mid = (a + b) // 2 // 1_000_000 * 1_000_000
                a, b = (mid, b) if from_us(mid, tz).utcoffset() == from_us(a, tz).utcoffset() else (a, mid)
            out.append(b)
        t += hour
    return out


def test_local_iso_is_exact_around_every_transition():
    """Either side of each offset change, to the microsecond: days with a change are read per
    instant. St. John's changed at 00:01 local time until 2011 (not on a quarter hour)."""
    for zone_name, year in [("America/St_Johns", 2002), ("Europe/Amsterdam", 2026), ("Australia/Lord_Howe", 2026),
                            ("America/Los_Angeles", 2026), ("Asia/Gaza", 2040)]:  # fmt: skip
        tz = ZoneInfo(zone_name)
        instants = _transition_instants(tz, year)
        assert instants
        for t in instants:
            for us in (t - 86_400_000_000, t - 60_000_000, t - 1, t, t + 1, t + 59_000_000, t + 86_400_000_000):
                spec = "seconds" if us % 1_000_000 == 0 else "microseconds"
                assert local_iso(us, tz) == from_us(us, tz).isoformat(timespec=spec)


@settings(max_examples=200, deadline=None)
@given(
    day=st.integers(min_value=10_957, max_value=47_481),  # 2000-01-01 .. 2099-12-31, as UTC days
    offsets=st.lists(st.integers(min_value=-3 * 86_400_000_000, max_value=3 * 86_400_000_000), max_size=40),
    zone_name=st.sampled_from(ZONES),
    whole=st.booleans(),
)
def test_local_isos_is_local_iso_of_each_instant(day, offsets, zone_name, whole):
    """A column of instants, many on the same few days (as a company's evidence), written at once."""
    instants = [day * 86_400_000_000 + o for o in offsets]
    if whole:
        instants = [us - us % 1_000_000 for us in instants]
    tz = ZoneInfo(zone_name)
    assert local_isos(instants, tz) == [local_iso(us, tz) for us in instants]


def test_local_isos_is_exact_around_every_transition():
    """`local_isos` reads a day with an offset change per instant, as `local_iso` does."""
    for zone_name, year in [("America/St_Johns", 2002), ("Europe/Amsterdam", 2026), ("Australia/Lord_Howe", 2026),
                            ("Asia/Kathmandu", 1985), ("Asia/Gaza", 2040)]:  # fmt: skip
        tz = ZoneInfo(zone_name)
        instants = [
            us
            for t in _transition_instants(tz, year)
            for us in (t - 86_400_000_000, t - 60_000_000, t - 1, t, t + 1, t + 59_000_000, t + 86_400_000_000)
        ]
        assert instants
        assert local_isos(instants, tz) == [
            from_us(us, tz).isoformat(timespec="seconds" if us % 1_000_000 == 0 else "microseconds") for us in instants
        ]
