"""The bulk path (`BulkDecider`, what `decide_company` runs) equals `decide_account` per account.

Random facts with many accounts over few instants, so that accounts share shapes and the template
made for the first account of a shape is reused for others with their own evidence: trials ending
mid-month, deactivations on day 1 and on the last day, zones with DST and a 45-minute offset,
nonprofit conditions, guests, frontline profiles, both rule sets.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.calendar import Month
from projections.decide import BulkDecider, _PriceMemo, company_month, decide_account, decide_company, ordered_records
from projections.facts import fold_all
from projections.rulesets import RULESETS
from schemas.decode import validate_event
from tests.support.given import PRICES
from tests.unit.projections.test_properties import ACCOUNT_KINDS as PROPERTY_ACCOUNT_KINDS
from tests.unit.projections.test_properties import ACTIVITY_KINDS

COMPANIES = ("acme", "globex")
USERS = tuple(f"u{i}" for i in range(10))
MONTHS = (Month(2026, 9), Month(2026, 10), Month(2026, 11))
ZONES = ("UTC", "Europe/Amsterdam", "America/Los_Angeles", "Asia/Kathmandu", "Pacific/Chatham")
# Month edges in UTC and in the zones above: day 1 early and late, day 2, the last day, DST days.
INSTANTS = (
    "2026-09-15T12:00:00Z",
    "2026-09-30T10:00:00Z",
    "2026-09-30T23:30:00Z",
    "2026-10-01T00:00:00Z",
    "2026-10-01T00:00:00.000001Z",
    "2026-10-01T07:30:00Z",
    "2026-10-01T23:59:59Z",
    "2026-10-02T06:00:00Z",
    "2026-10-18T12:00:00Z",
    "2026-10-25T00:30:00Z",
    "2026-10-31T12:00:00Z",
    "2026-10-31T23:30:00Z",
    "2026-11-01T07:30:00Z",
    "2026-11-15T12:00:00Z",
)
FRONTLINE = st.fixed_dictionaries(
    {},
    optional={
        "employment": st.sampled_from(["employee", "contractor", "volunteer", "other"]),
        "hourly_paid": st.booleans(),
        "has_email": st.booleans(),
        "role_category": st.sampled_from(["medical", "customer_facing", "other"]),
        "away_from_desk_pct": st.sampled_from([0, 49, 50, 100]),
    },
)
# test_properties' account kinds, with profiles that reach every frontline condition
ACCOUNT_KINDS = PROPERTY_ACCOUNT_KINDS | {"profile_update": FRONTLINE}
COMPANY_KINDS = {
    "company_registered": st.fixed_dictionaries({"timezone": st.sampled_from(ZONES)}),
    "plan_changed": st.fixed_dictionaries({"plan": st.sampled_from(["premium", "advanced", "enterprise"])}),
    "trial_started": st.fixed_dictionaries(
        {}, optional={"last_trial_day": st.sampled_from(["2026-09-30", "2026-10-01", "2026-10-18", "2026-11-01"])}
    ),
    "nonprofit_verified": st.fixed_dictionaries(
        {
            "techsoup_token": st.sampled_from(["12ab@Org", "bad token"]),
            "organization_type": st.sampled_from(["charity", "religious"]),
        }
    ),
    "nonprofit_revoked": st.just({}),
}


@st.composite
def an_account_event(draw, cid: str, uid: str):
    ev = {"occurred_at": draw(st.sampled_from(INSTANTS)), "company_id": cid, "user_id": uid}
    if draw(st.booleans()):
        ev["type"] = draw(st.sampled_from(sorted(ACCOUNT_KINDS)))
        ev.update(draw(ACCOUNT_KINDS[ev["type"]]))
    else:
        ev["type"] = draw(st.sampled_from(ACTIVITY_KINDS))
        if ev["type"] == "visit":
            ev["channel"] = "web"
    return ev


@st.composite
def a_company_event(draw, cid: str):
    ev = {"occurred_at": draw(st.sampled_from(INSTANTS)), "company_id": cid}
    ev["type"] = draw(st.sampled_from(sorted(COMPANY_KINDS)))
    ev.update(draw(COMPANY_KINDS[ev["type"]]))
    return ev


@st.composite
def facts_of_many_accounts(draw):
    """Each account has a few events of its own over few instants: shapes repeat across accounts
    with different evidence, and near-equal shapes (the same events a boundary apart) meet."""
    raw = []
    for cid in COMPANIES:
        raw += draw(st.lists(a_company_event(cid), max_size=4))
        for uid in USERS[: draw(st.integers(1, len(USERS)))]:
            raw += draw(st.lists(an_account_event(cid, uid), min_size=1, max_size=4))
    ids = draw(
        st.lists(st.text("abcdef0123", min_size=1, max_size=5), min_size=len(raw), max_size=len(raw), unique=True)
    )
    return fold_all(validate_event({"event_id": i, **e}) for i, e in zip(ids, raw, strict=True))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(facts_of_many_accounts(), st.sampled_from(sorted(RULESETS)), st.randoms(use_true_random=False))
def test_bulk_decisions_equal_decide_account_for_every_account(facts, version, rnd):
    rs = RULESETS[version]
    for cid in sorted(facts.companies):
        company = facts.company(cid)
        accounts = {u: a for (c, u), a in facts.accounts.items() if c == cid}
        for month in MONTHS:
            activity = {u: a for (c, u, mo), a in facts.activity.items() if c == cid and mo == month}
            cm = company_month(cid, company, month)
            memo = _PriceMemo(PRICES)
            known = [u for u, a in accounts.items() if a.first_seen is not None and a.first_seen[0] < cm.bounds.end_us]
            expected = {u: decide_account(cm, u, accounts[u], activity.get(u), memo, rs) for u in known}
            # any order of accounts: whichever comes first makes its shape's template
            rnd.shuffle(known)
            bulk = BulkDecider(cm, memo, rs)
            got = {
                u: bulk.decide(u, ordered_records(accounts[u]), accounts[u].first_seen, activity.get(u)) for u in known
            }
            assert got == expected
            _, via_company = decide_company(cid, month, company, accounts, activity, PRICES, rs)
            assert via_company == [expected[u] for u in sorted(expected)]


def test_accounts_with_other_profile_values_of_the_same_tier_share_one_template():
    """The shape keeps what the rules read of a profile (tier, employment), not its values, and
    leaves out profile updates after day 1: three raw keys, one template, each its own evidence."""
    events = [{"type": "company_registered", "company_id": "acme", "occurred_at": "2026-09-01T00:00:00Z",
               "timezone": "Europe/Amsterdam"}]  # fmt: skip
    for uid, pct, late in (("u1", 0, False), ("u2", 49, False), ("u3", 10, True)):
        base = {"company_id": "acme", "user_id": uid}
        events += [
            {**base, "type": "account_provisioned", "occurred_at": "2026-09-02T00:00:00Z"},
            {**base, "type": "profile_update", "occurred_at": "2026-09-03T00:00:00Z", "away_from_desk_pct": pct},
            {**base, "type": "login", "occurred_at": f"2026-10-0{uid[1]}T09:00:00Z"},
        ]
        if late:
            events.append(
                {**base, "type": "profile_update", "occurred_at": "2026-10-20T00:00:00Z", "hourly_paid": True}
            )
    facts = fold_all(validate_event({"event_id": f"e{i}", **e}) for i, e in enumerate(events))
    month = Month(2026, 10)
    cm = company_month("acme", facts.company("acme"), month)
    memo = _PriceMemo(PRICES)
    bulk = BulkDecider(cm, memo)
    for uid in ("u1", "u2", "u3"):
        acc = facts.accounts[("acme", uid)]
        act = facts.activity[("acme", uid, month)]
        got = bulk.decide(uid, ordered_records(acc), acc.first_seen, act)
        assert got == decide_account(cm, uid, acc, act, memo)
        assert got.rule == "R2" and got.tier == "standard" and act.first_bill[1] in got.evidence
    assert (len(bulk.templates), len(bulk.shapes)) == (3, 1)
