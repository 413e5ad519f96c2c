"""R14: the reports' monthly-active users, and why the invoice counts fewer.

On day D an account is monthly-active if it did a visit, login, notification_view or chat_use in
the 30 days ending on D (local days). This is a report, separate from billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from projections.calendar import Month
from projections.decide import Decision
from projections.facts import MonthActivity

WINDOW_DAYS = 30


def _active_days(history: dict[Month, MonthActivity | None]) -> set[date]:
    days = set()
    for m, act in history.items():
        if act is None or not act.report_days:
            continue
        bits = act.report_days
        d = 1
        while bits:
            if bits & 1:
                days.add(date(m.year, m.month, d))
            bits >>= 1
            d += 1
    return days


def months_needed(month: Month) -> list[Month]:
    """The months whose activity a 30-day window ending in `month` can reach."""
    return [month.prev().prev(), month.prev(), month]


def active_on(days: set[date], d: date) -> bool:
    return any(d - timedelta(days=k) in days for k in range(WINDOW_DAYS))


def mau_daily(month: Month, activity_by_user: dict[str, dict[Month, MonthActivity | None]]) -> list[tuple[date, int]]:
    """(day, monthly-active accounts) for every local day of `month`."""
    per_user = [_active_days(h) for h in activity_by_user.values()]
    out = []
    for i in range(month.days):
        d = month.first_day + timedelta(days=i)
        out.append((d, sum(1 for days in per_user if days and active_on(days, d))))
    return out


def in_report(month: Month, history: dict[Month, MonthActivity | None]) -> bool:
    """Counted in the month's report: monthly-active on the month's last day."""
    return active_on(_active_days(history), month.last_day)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    company_id: str
    user_id: str
    month: str
    in_report: bool
    billable: bool
    explanation: str  # a stable code

    def row(self) -> dict:
        return {
            "company_id": self.company_id,
            "user_id": self.user_id,
            "month": self.month,
            "in_report": self.in_report,
            "billable": self.billable,
            "explanation": self.explanation,
        }


def reconcile(decision: Decision, reported: bool) -> Reconciliation:
    """Why an account counts in the report but not on the invoice, or the reverse."""
    if reported and decision.billable:
        why = "in_both"
    elif reported:
        why = f"report_only:{decision.reason}"  # e.g. created_mid_month, notification_only, guest
    elif decision.billable:
        # e.g. admin panel use only (billing-active, not a reports kind), or invited without activity
        why = f"invoice_only:{decision.reason}"
    else:
        why = f"neither:{decision.reason}"
    return Reconciliation(decision.company_id, decision.user_id, decision.month, reported, decision.billable, why)
