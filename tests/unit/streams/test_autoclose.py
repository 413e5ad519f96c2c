"""Automatic close: a month closes once it ended in every zone (UTC-12 is last) plus the grace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.calendar import Month
from streams.autoclose import month_to_close


def test_october_closes_72_hours_after_it_ended_at_utc_minus_12():
    # October ends everywhere at 2026-11-01T12:00Z; plus 72 h: 2026-11-04T12:00Z.
    assert month_to_close(datetime(2026, 11, 4, 11, 59, tzinfo=UTC)) == Month(2026, 9)
    assert month_to_close(datetime(2026, 11, 4, 12, 0, tzinfo=UTC)) == Month(2026, 10)


def test_a_zero_grace_closes_when_the_last_zone_reaches_midnight():
    assert month_to_close(datetime(2027, 1, 1, 12, 0, tzinfo=UTC), grace_hours=0) == Month(2026, 12)


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        month_to_close(datetime(2026, 11, 4, 12, 0))
