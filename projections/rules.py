"""The billing rules R1-R14 (docs/rules.md), one small pure function per rule.

No clock, no I/O: the month and the zone are arguments. Each function returns what it decided and
the evidence (records) that prove it, so every decision can be explained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from projections.calendar import (
    Month,
    MonthBounds,
    add_months_capped,
    first_month_starting_on_or_after,
    local_date,
)
from projections.facts import DERIVED_TRIAL_PREFIX, CompanyFacts, MonthActivity, Record, ordered
from schemas.events import EXCLUDED_ORG_TYPES

PLANS = ("premium", "advanced", "enterprise")
ACTIVE_MODEL = "active"  # R2: plan premium bills full-month accounts that were billing-active
INVITED_MODEL = "invited"  # R3: plans advanced and enterprise bill full-month invited accounts
FRONTLINE_ROLES = frozenset({"customer_facing", "backstage", "public_service", "medical"})
TRIAL_DAYS = 30
NONPROFIT_NOTICE_MONTHS = 3
INVOICE_PAYMENT_THRESHOLD_USD = 5000
# matched with fullmatch: `$` would also match before a final newline ("123a4567@Org\n")
_TOKEN = re.compile(r"[A-Za-z0-9]+(@[A-Za-z0-9._-]+)?")


def billing_model(plan: str) -> str:
    return ACTIVE_MODEL if plan == "premium" else INVITED_MODEL


def before(records, cutoff_us: int) -> list[Record]:
    return [r for r in records if r.ts < cutoff_us]


# R4: the plan in force -------------------------------------------------------------------------


def plan_in_force(company: CompanyFacts, month: Month, tz: ZoneInfo) -> tuple[str, Record | None]:
    """The plan as of the end of day 1 of the month; `premium` when the company never chose one."""
    plan, why = "premium", None
    for r in before(ordered(company.records), month.day1_cutoff_us(tz)):
        if r.type == "plan_changed":
            plan, why = r.get("plan"), r
    return plan, why


# R6 and R5: trials -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trial:
    start: date
    last_day: date
    record: Record  # the trial_started event, or the guest invite that derived it (R5)
    derived: bool


def trials(company: CompanyFacts, tz: ZoneInfo) -> list[Trial]:
    """Every trial of the company: its own `trial_started` events, and at most one derived (R5).

    R5: a guest invite starts a 30-day `advanced` trial for its home company when that company had
    no event of its own at or before the invite. Only the earliest such invite counts: the derived
    trial is itself a company event, so the company is known after it.
    """
    out = []
    for r in ordered(company.records):
        if r.type == "trial_started":
            start = local_date(r.ts, tz)
            last = r.get("last_trial_day")
            last_day = date.fromisoformat(last) if last else start + timedelta(days=TRIAL_DAYS - 1)
            out.append(Trial(start, last_day, r, False))
    # by time, then id, then inviting company: the same id may come from two companies
    candidates = sorted(company.guest_invites.values(), key=lambda r: (r.ts, r.event_id, str(r.get("company_id"))))
    if candidates:
        first = candidates[0]
        if company.first_own is None or company.first_own[0] > first.ts:
            start = local_date(first.ts, tz)
            out.append(Trial(start, start + timedelta(days=TRIAL_DAYS - 1), first, True))
    return out


def trial_covering(company: CompanyFacts, month: Month, tz: ZoneInfo) -> Trial | None:
    """R6: billing starts on day 1 of the month after the last trial day, so a month any trial
    overlaps is not charged (trial ends 18 Oct: October free; ends 1 Nov: November free)."""
    for t in trials(company, tz):
        if t.start <= month.last_day and t.last_day >= month.first_day:
            return t
    return None


def derived_trial_plan(trial: Trial) -> str:
    return "advanced"


# R8 and R9: nonprofits -------------------------------------------------------------------------


def verification_problem(r: Record) -> str | None:
    """Why a `nonprofit_verified` event does not verify anything (R8), or None when it does."""
    token = r.get("techsoup_token") or ""
    if not _TOKEN.fullmatch(token):
        return (
            f"malformed TechSoup token {token!r}: expected letters and digits, optionally followed by "
            "'@' and part of the organisation's name (example 123a4567@MyOrgName)"
        )
    org = r.get("organization_type")
    if org in EXCLUDED_ORG_TYPES:
        return f"organisation type {org!r} is excluded from the nonprofit programme"
    return None


@dataclass(frozen=True, slots=True)
class NonprofitStatus:
    free: bool  # the month is free for direct employees, contractors and volunteers
    rule: str  # R8 (verified) or R9 (revoked, still within or past the notice period)
    reason: str
    evidence: tuple[Record, ...]


def nonprofit_revocation_effective(notice: date) -> Month:
    """R9: normal prices from the first month starting on or after notice + 3 months (day capped)."""
    return first_month_starting_on_or_after(add_months_capped(notice, NONPROFIT_NOTICE_MONTHS))


def nonprofit_status(company: CompanyFacts, month: Month, tz: ZoneInfo) -> NonprofitStatus | None:
    """The nonprofit status read as of the end of day 1 (R4), then R9 decides if it still frees M."""
    verified: Record | None = None
    revoked: Record | None = None
    for r in before(ordered(company.records), month.day1_cutoff_us(tz)):
        if r.type == "nonprofit_verified" and verification_problem(r) is None:
            verified, revoked = r, None
        elif r.type == "nonprofit_revoked" and verified is not None and revoked is None:
            revoked = r
    if verified is None:
        return None
    if revoked is None:
        return NonprofitStatus(True, "R8", "nonprofit_free", (verified,))
    effective = nonprofit_revocation_effective(local_date(revoked.ts, tz))
    if month < effective:
        return NonprofitStatus(True, "R9", "nonprofit_notice_period", (verified, revoked))
    return NonprofitStatus(False, "R9", "nonprofit_revoked", (verified, revoked))


def rejected_company_events(company: CompanyFacts, start_us: int, end_us: int) -> list[tuple[Record, str]]:
    """Company events of the month [start, end) that are valid messages but that a rule refused
    (R8, R12), with the reason: the invoice of the month they happened in lists them once."""
    out = []
    for r in before(ordered(company.records), end_us):
        if r.ts >= start_us and r.type == "nonprofit_verified":
            problem = verification_problem(r)
            if problem:
                out.append((r, problem))
    _, rejected = payment_profile(company, end_us)
    out.extend((r, why) for r, why in rejected if r.ts >= start_us)
    return sorted(out, key=lambda x: (x[0].ts, x[0].event_id))


# R12: payment profile --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentProfile:
    payment_method: str | None = None
    card_brand: str | None = None
    billing_country: str | None = None
    po_number: str | None = None


_PROFILE_FIELDS = ("payment_method", "card_brand", "billing_country", "po_number")


def payment_problem(p: PaymentProfile) -> str | None:
    if p.payment_method == "card":
        if p.card_brand not in ("amex", "visa", "discover", "mastercard"):
            return f"card brand {p.card_brand!r} is not accepted (American Express, Visa, Discover, Mastercard)"
        if p.card_brand == "amex" and p.billing_country == "BR":
            return "American Express is not accepted for billing country Brazil (BR)"
    return None


def payment_profile(company: CompanyFacts, cutoff_us: int) -> tuple[PaymentProfile, list[tuple[Record, str]]]:
    """The billing profile in force at `cutoff_us`: each update applies whole or not at all."""
    current = PaymentProfile()
    rejected = []
    for r in before(ordered(company.records), cutoff_us):
        if r.type != "billing_profile_updated":
            continue
        fields = {f: getattr(current, f) for f in _PROFILE_FIELDS}
        for f in _PROFILE_FIELDS:
            if r.has(f):
                fields[f] = r.get(f)
        candidate = PaymentProfile(**fields)
        problem = payment_problem(candidate)
        if problem:
            rejected.append((r, f"billing profile update rejected: {problem}"))
        else:
            current = candidate
    return current, rejected


# R1, R3: the account's life --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lifecycle:
    full_month: bool
    rule: str
    reason: str
    evidence: tuple[Record, ...]


def lifecycle(records: list[Record], bounds: MonthBounds, model: str) -> Lifecycle:
    """R1 full calendar month, with R3's narrower start under the invited-user model.

    A small state machine over the events up to the last day of the month, in event-time order:
    a start event makes a never-started account active; `deactivate` only acts on an active
    account, `reactivate` only on a deactivated one ("restarts the clock like a creation").
    Full-month: active at the end, no effective deactivation on any day of the month, and the
    current active spell began on or before day 1 (local dates compared as instants: an event is
    on day 1 or earlier exactly when it happened before day 2 began).
    """
    starts = _INVITED_STARTS if model == INVITED_MODEL else _ACTIVE_STARTS
    state = "none"
    spell_start: Record | None = None
    last_deactivation: Record | None = None
    deactivated_in_month: Record | None = None
    end_us = bounds.end_us
    for r in records:
        if r.ts >= end_us:
            break
        t = r.type
        if state == "none":
            if t in starts:
                state, spell_start = "active", r
        elif t == "deactivate":
            if state == "active":
                state, last_deactivation = "inactive", r
                if r.ts >= bounds.start_us:
                    deactivated_in_month = r
        elif t == "reactivate" and state == "inactive":
            state, spell_start = "active", r
    if state == "none":
        if model == INVITED_MODEL:
            return Lifecycle(False, "R3", "never_invited", ())
        return Lifecycle(False, "R1", "no_account", ())
    if deactivated_in_month is not None:
        ev = (spell_start, deactivated_in_month) if spell_start else (deactivated_in_month,)
        return Lifecycle(False, "R1", "deactivated_in_month", ev)
    if state == "inactive":
        assert last_deactivation is not None  # the only way into "inactive"
        return Lifecycle(False, "R1", "deactivated", (last_deactivation,))
    assert spell_start is not None
    if spell_start.ts >= bounds.day1_cutoff_us:
        if spell_start.type == "reactivate":
            return Lifecycle(False, "R1", "reactivated_mid_month", (spell_start,))
        if model == INVITED_MODEL:
            return Lifecycle(False, "R3", "invited_mid_month", (spell_start,))
        return Lifecycle(False, "R1", "created_mid_month", (spell_start,))
    return Lifecycle(True, "R1", "full_month", (spell_start,))


_INVITED_STARTS = frozenset({"invite", "claim"})
_ACTIVE_STARTS = frozenset({"account_provisioned", "invite", "claim"})


# R5: guests ------------------------------------------------------------------------------------


def guest_invite(records: list[Record], company_id: str, end_us: int) -> Record | None:
    """The invite that made this account a guest from another company, if any (never billable)."""
    for r in records:
        if r.ts >= end_us:
            break
        if r.type == "invite":
            home = r.get("guest_home_company_id")
            if home and home != company_id:
                return r
    return None


# R4, R7: profile and tier ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    employment: str = "employee"
    away_from_desk_pct: int = 0
    hourly_paid: bool = False
    has_email: bool = True
    role_category: str = "other"


_PROFILE_ATTRS = frozenset({"employment", "away_from_desk_pct", "hourly_paid", "has_email", "role_category"})
_DEFAULT_PROFILE = Profile()


def profile_as_of(records: list[Record], cutoff_us: int) -> Profile:
    """Employment and frontline profile from provisioning and partial updates, before `cutoff_us`."""
    values: dict[str, Any] = {}  # the events' validated values of Profile's fields
    for r in records:
        if r.ts >= cutoff_us:
            break
        if r.type in ("account_provisioned", "profile_update"):
            for k, v in r.attrs:
                if v is not None and k in _PROFILE_ATTRS:
                    values[k] = v
    return Profile(**values) if values else _DEFAULT_PROFILE


def tier(p: Profile) -> str:
    """R7: frontline needs one working-pattern criterion and one frontline role category."""
    pattern = p.away_from_desk_pct >= 50 or p.hourly_paid or not p.has_email
    return "frontline" if pattern and p.role_category in FRONTLINE_ROLES else "standard"


# R2: billing activity --------------------------------------------------------------------------


def billing_activity(activity: MonthActivity | None, billing_kinds: frozenset[str] | None = None):
    """The earliest billing-active event of the month (R2), or None."""
    if activity is None:
        return None
    return activity.first_bill


def is_derived_trial_id(event_id: str) -> bool:
    return event_id.startswith(DERIVED_TRIAL_PREFIX)
