"""Automatic month close: once a month has ended in every time zone, plus a grace period.

Every zone's month has ended when it has ended at UTC-12, the last zone to reach midnight: at 12:00
UTC on day 1 of the next month. Using that bound for every company (rather than each company's own
zone) closes every company of a partition at once, which is what a close marker does anyway; the
grace period (default 72 h) leaves room for late publishers. A month closed twice is closed once:
the worker ignores markers for a month it already closed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from projections.calendar import Month

LAST_ZONE_BEHIND_UTC = timedelta(hours=12)  # Etc/GMT+12, e.g. Baker Island
DEFAULT_GRACE_HOURS = 72.0


def month_to_close(now: datetime, grace_hours: float = DEFAULT_GRACE_HOURS) -> Month:
    """The latest month that ended in every zone at least `grace_hours` before `now` (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = (now - LAST_ZONE_BEHIND_UTC - timedelta(hours=grace_hours)).astimezone(UTC)
    return Month.of(t.date()).prev()
