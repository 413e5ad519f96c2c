"""The bill so far: statuses by rule and reason, and the two promises an estimate makes.

1. An estimate made on the last day equals the close's decision for every account whose facts do
   not change afterwards (no later event of the account or of its company).
2. `not_billed` means it: an account estimated not_billed before the month ended is not billable at
   the close, whatever happens after the estimate.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.calendar import Month, MonthBounds, to_us, zone
from projections.decide import decide_company
from projections.estimate import (
    AT_RISK,
    AWAITING_BILLING_ACTIVITY,
    CANNOT_BECOME_BILLABLE,
    MAY_START_ON_DAY_1,
    MONTH_ENDED,
    NOT_BILLED,
    ON_TRACK,
    estimate_company,
)
from projections.facts import fold_all
from schemas.decode import validate_event
from tests.support.given import PRICES, World
from tests.unit.projections.test_properties import ACCOUNT_KINDS, ACTIVITY_KINDS, COMPANY_KINDS

MONTH = "2026-10"


def at(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


def statuses(w: World, company: str, as_of: str) -> dict[str, tuple[str, str]]:
    """user -> (status, status_reason) of the estimate at `as_of` over every event of `w` before it."""
    known = World()
    known.raw = [e for e in w.raw if at(e["occurred_at"]) < at(as_of)]
    cm, decisions = known.decide_all(company, MONTH)
    est = estimate_company(cm, decisions, at(as_of))
    return {a.decision.user_id: (a.status, a.status_reason) for a in est.accounts}


def test_a_full_month_account_without_billing_activity_yet_is_at_risk_and_on_track_once_it_logs_in():
    w = World().company("acme", tz="Europe/Amsterdam").member("acme", "ann").member("acme", "bob")
    w.do("notification_view", "acme", "bob", "2026-10-03")
    w.do("login", "acme", "ann", "2026-10-20")
    mid = statuses(w, "acme", "2026-10-10T12:00:00Z")
    assert mid == {"ann": (AT_RISK, AWAITING_BILLING_ACTIVITY), "bob": (AT_RISK, AWAITING_BILLING_ACTIVITY)}
    assert statuses(w, "acme", "2026-10-25T12:00:00Z")["ann"] == (ON_TRACK, "billable_so_far")


def test_what_no_later_event_can_make_billable_is_not_billed():
    w = World().company("acme").member("acme", "ann").provision("acme", "new", "2026-10-05")
    w.member("acme", "gone").deactivate("acme", "gone", "2026-10-04")
    w.invite("acme", "guest", "2025-06-01", guest_home_company_id="globex")
    got = statuses(w, "acme", "2026-10-12T00:00:00Z")
    assert got["new"] == (NOT_BILLED, CANNOT_BECOME_BILLABLE)  # created after day 1
    assert got["gone"] == (NOT_BILLED, CANNOT_BECOME_BILLABLE)  # deactivated in the month
    assert got["guest"] == (NOT_BILLED, CANNOT_BECOME_BILLABLE)


def test_while_day_1_lasts_an_account_may_still_start_in_time():
    w = World().company("acme", plan="advanced").provision("acme", "ann", "2025-06-01")  # never invited (R3)
    w.member("acme", "bob").deactivate("acme", "bob", "2026-09-20")
    on_day_1 = statuses(w, "acme", "2026-10-01T09:00:00Z")
    assert on_day_1 == {"ann": (AT_RISK, MAY_START_ON_DAY_1), "bob": (AT_RISK, MAY_START_ON_DAY_1)}
    on_day_2 = statuses(w, "acme", "2026-10-02T09:00:00Z")
    assert on_day_2 == {"ann": (NOT_BILLED, CANNOT_BECOME_BILLABLE), "bob": (NOT_BILLED, CANNOT_BECOME_BILLABLE)}


def test_after_the_month_ended_nothing_is_at_risk_and_a_trial_month_is_on_track_at_zero():
    w = World().company("acme").member("acme", "ann").member("acme", "bob").do("visit", "acme", "bob", "2026-10-02")
    assert statuses(w, "acme", "2026-11-02T00:00:00Z")["ann"] == (NOT_BILLED, MONTH_ENDED)
    w.trial("acme", "2026-10-10")
    known = World()
    known.raw = list(w.raw)
    cm, decisions = known.decide_all("acme", MONTH)
    est = estimate_company(cm, decisions, at("2026-10-20T00:00:00Z"))
    bob = next(a for a in est.accounts if a.decision.user_id == "bob")
    assert (bob.status, bob.decision.charged) == (ON_TRACK, False)
    assert est.invoice.free_reason == "trial" and est.counts() == {ON_TRACK: 1, AT_RISK: 1, NOT_BILLED: 0}


# Properties -----------------------------------------------------------------------------------

COMPANIES = ("acme", "globex")
USERS = ("u1", "u2", "u3")
# The month's instants (day 1, mid-month, the last day, DST day) and a few around it.
INSTANTS = (
    "2026-09-20T12:00:00Z",
    "2026-10-01T06:00:00Z",
    "2026-10-01T20:00:00Z",
    "2026-10-02T06:00:00Z",
    "2026-10-12T09:00:00Z",
    "2026-10-25T01:30:00Z",
    "2026-10-31T06:00:00Z",
    "2026-10-31T20:00:00Z",
    "2026-11-02T12:00:00Z",
)
AS_OF = ("2026-10-01T12:00:00Z", "2026-10-15T12:00:00Z", "2026-10-31T12:00:00Z", "2026-10-31T21:30:00Z")
ZONES = ("UTC", "Europe/Amsterdam", "America/Los_Angeles", "Asia/Kathmandu")
LATER_COMPANY_KINDS = sorted(k for k in COMPANY_KINDS if k != "company_registered")  # zones stay fixed


@st.composite
def a_month_of_events(draw) -> list[dict]:
    """Each company registered long before with a fixed zone, then random events around October."""
    out = [
        {"type": "company_registered", "occurred_at": "2025-01-01T00:00:00Z", "company_id": c,
         "timezone": draw(st.sampled_from(ZONES))}
        for c in COMPANIES
    ]  # fmt: skip
    for _ in range(draw(st.integers(1, 40))):
        ev = {"occurred_at": draw(st.sampled_from(INSTANTS)), "company_id": draw(st.sampled_from(COMPANIES))}
        group = draw(st.sampled_from(["activity", "activity", "account", "account", "company"]))
        if group == "company":
            ev["type"] = draw(st.sampled_from(LATER_COMPANY_KINDS))
            ev.update(draw(COMPANY_KINDS[ev["type"]]))
        else:
            kinds = sorted(ACCOUNT_KINDS) if group == "account" else ACTIVITY_KINDS
            ev["type"] = draw(st.sampled_from(kinds))
            ev["user_id"] = draw(st.sampled_from(USERS))
            ev.update(draw(ACCOUNT_KINDS[ev["type"]]) if group == "account" else {})
            if ev["type"] == "visit":
                ev["channel"] = "web"
        out.append(ev)
    return [{"event_id": f"e{i}", **e} for i, e in enumerate(out)]


def decide(events: list[dict], cid: str, month: Month):
    facts = fold_all([validate_event(e) for e in events])
    accounts = {u: a for (c, u), a in facts.accounts.items() if c == cid}
    activity = {u: a for (c, u, m), a in facts.activity.items() if c == cid and m == month}
    return decide_company(cid, month, facts.company(cid), accounts, activity, PRICES)


def touched_later(later: list[dict], cid: str, uid: str) -> bool:
    """Does an event after the estimate change this account's facts or its company's?"""
    for e in later:
        if e["company_id"] == cid and e.get("user_id") in (None, uid):
            return True
        if e.get("guest_home_company_id") == cid:  # R5: a derived-trial candidate for the company
            return True
    return False


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(a_month_of_events(), st.sampled_from(AS_OF))
def test_an_estimate_equals_the_close_for_accounts_whose_facts_do_not_change_afterwards(events, as_of):
    month = Month.parse(MONTH)
    known = [e for e in events if at(e["occurred_at"]) < at(as_of)]
    later = [e for e in events if at(e["occurred_at"]) >= at(as_of)]
    for cid in COMPANIES:
        cm, so_far = decide(known, cid, month)
        est = estimate_company(cm, so_far, at(as_of))
        closed = {d.user_id: d for d in decide(events, cid, month)[1]}
        for a in est.accounts:
            if not touched_later(later, cid, a.decision.user_id):
                assert a.decision == closed[a.decision.user_id]


@SETTINGS
@given(a_month_of_events(), st.sampled_from(AS_OF))
def test_an_account_estimated_not_billed_is_not_billable_at_the_close(events, as_of):
    month = Month.parse(MONTH)
    known = [e for e in events if at(e["occurred_at"]) < at(as_of)]
    for cid in COMPANIES:
        cm, so_far = decide(known, cid, month)
        if at(as_of) >= MonthBounds.of(month, zone(cm.tz.key)).end_us:
            continue
        closed = {d.user_id: d for d in decide(events, cid, month)[1]}
        for a in estimate_company(cm, so_far, at(as_of)).accounts:
            if a.status == NOT_BILLED:
                assert not closed[a.decision.user_id].billable, (a, closed[a.decision.user_id])
