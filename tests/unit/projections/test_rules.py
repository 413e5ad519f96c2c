"""Given/when/then cases for every rule R1-R14 and every example of the billing rules (docs/rules.md).

Each test builds a company's events with `given.World`, folds them with `projections.facts.fold_all`
and decides with `projections.decide.decide_company` (pure, milliseconds). Where the spec is silent
or ambiguous the test says which choice the code made.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from projections.calendar import Month, zone
from projections.facts import fold_all
from projections.mau import in_report, mau_daily, reconcile
from projections.prices import Price, PriceBook
from projections.rules import nonprofit_revocation_effective, trials
from tests.support.given import World

OCT, NOV, DEC = "2026-10", "2026-11", "2026-12"


def premium():
    return World().company("acme")


def advanced():
    return World().company("acme", plan="advanced")


# R1 full calendar month -------------------------------------------------------------------------


def test_deactivated_on_the_last_day_is_not_billable():
    w = premium().member("acme", "ann").do("login", "acme", "ann", "2026-10-05").deactivate("acme", "ann", "2026-10-31")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R1", "deactivated_in_month")


def test_deactivated_on_day_1_of_next_month_is_still_billable_this_month():
    w = premium().member("acme", "ann").do("login", "acme", "ann", "2026-10-05").deactivate("acme", "ann", "2026-11-01")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.charged, d.rule, d.reason) == (True, True, "R2", "active_full_month")


def test_provisioned_on_day_1_counts_under_the_active_model():
    w = premium().provision("acme", "ann", "2026-10-01").do("login", "acme", "ann", "2026-10-05")
    assert w.decide("acme", OCT)["ann"].billable


def test_provisioned_on_day_2_waits_for_the_next_month():
    w = premium().provision("acme", "ann", "2026-10-02").do("login", "acme", "ann", "2026-10-05")
    w.do("login", "acme", "ann", "2026-11-05")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R1", "created_mid_month")
    assert w.decide("acme", NOV)["ann"].billable


def test_reactivation_restarts_the_clock():
    w = premium().member("acme", "ann").deactivate("acme", "ann", "2026-09-10").reactivate("acme", "ann", "2026-10-05")
    w.do("login", "acme", "ann", "2026-10-06").do("login", "acme", "ann", "2026-11-06")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R1", "reactivated_mid_month")
    assert w.decide("acme", NOV)["ann"].billable


def test_deactivate_of_an_inactive_account_changes_nothing():
    w = premium().member("acme", "ann").deactivate("acme", "ann", "2026-09-10").deactivate("acme", "ann", "2026-10-05")
    d = w.decide("acme", OCT)["ann"]
    # the second deactivate is ignored: the account was already inactive before the month
    assert (d.billable, d.rule, d.reason) == (False, "R1", "deactivated")
    assert "2026-09-10" in d.evidence and "2026-10-05" not in d.evidence


def test_reactivate_of_an_active_account_changes_nothing():
    w = premium().member("acme", "ann").reactivate("acme", "ann", "2026-10-05").do("login", "acme", "ann", "2026-10-06")
    assert w.decide("acme", OCT)["ann"].reason == "active_full_month"


def test_an_account_known_only_by_activity_is_listed_but_not_billable():
    w = premium().do("login", "acme", "ann", "2026-10-05")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R1", "no_account")


def test_an_account_first_seen_after_the_month_is_not_in_the_snapshot():
    w = premium().member("acme", "bob").provision("acme", "ann", "2026-11-03")
    assert "ann" not in w.decide("acme", OCT)


# R2 active-user model (premium) ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["login", "visit", "admin_panel_use", "chat_use"])
def test_billing_activity_kinds_make_a_full_month_account_billable(kind):
    w = premium().member("acme", "ann").do(kind, "acme", "ann", "2026-10-20")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.charged, d.rule, d.reason) == (True, True, "R2", "active_full_month")
    assert kind in d.evidence


def test_visit_without_login_counts():
    w = premium().member("acme", "ann").do("visit", "acme", "ann", "2026-10-20", channel="mobile")
    assert w.decide("acme", OCT)["ann"].billable


@pytest.mark.parametrize("kind", ["push_notification_received", "email_notification_received", "notification_view"])
def test_notifications_alone_do_not_make_an_account_billing_active(kind):
    w = premium().member("acme", "ann").do(kind, "acme", "ann", "2026-10-20")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R2", "notification_only")


def test_no_activity_at_all_is_not_billable_under_the_active_model():
    d = premium().member("acme", "ann").decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R2", "no_billing_activity")


def test_activity_in_another_month_does_not_count():
    w = (
        premium()
        .member("acme", "ann")
        .do("login", "acme", "ann", "2026-09-30")
        .do("login", "acme", "ann", "2026-11-01")
    )
    assert w.decide("acme", OCT)["ann"].reason == "no_billing_activity"


def test_ruleset_2026_10_counted_notification_view_as_billing_activity():
    w = premium().member("acme", "ann").do("notification_view", "acme", "ann", "2026-10-20")
    d = w.decide("acme", OCT, ruleset="2026.10")["ann"]
    assert (d.billable, d.ruleset_version) == (True, "2026.10")


# R3 invited-user model (advanced, enterprise) ----------------------------------------------------


def test_invited_on_day_1_is_billable_under_advanced():
    w = advanced().provision("acme", "ann", "2026-09-01").invite("acme", "ann", "2026-10-01")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.charged, d.rule, d.reason, d.unit_price_usd) == (
        True,
        True,
        "R3",
        "invited_full_month",
        Decimal("6.00"),
    )


def test_invited_on_day_2_waits_for_the_next_month_under_advanced():
    w = advanced().provision("acme", "ann", "2026-09-01").invite("acme", "ann", "2026-10-02")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R3", "invited_mid_month")
    assert w.decide("acme", NOV)["ann"].billable


def test_provisioned_never_invited_is_never_billable_under_advanced():
    w = advanced().provision("acme", "ann", "2025-06-01").do("login", "acme", "ann", "2026-10-03")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.rule, d.reason) == (False, "R3", "never_invited")


def test_a_claim_alone_starts_the_life_under_advanced():
    w = advanced().claim("acme", "ann", "2026-09-20")
    assert w.decide("acme", OCT)["ann"].reason == "invited_full_month"


def test_activity_does_not_matter_under_enterprise():
    w = World().company("acme", plan="enterprise").member("acme", "ann")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.unit_price_usd) == (True, Decimal("8.00"))


# R4 plan in force --------------------------------------------------------------------------------


def test_plan_change_on_day_1_applies_to_that_month():
    w = premium().member("acme", "ann").plan("acme", "advanced", "2026-10-01T23:59:59Z")
    assert w.decide("acme", OCT)["ann"].reason == "invited_full_month"


def test_plan_change_on_day_2_applies_from_the_next_month():
    w = premium().member("acme", "ann").plan("acme", "advanced", "2026-10-02T00:00:00Z")
    assert w.decide("acme", OCT)["ann"].reason == "no_billing_activity"  # still premium in October
    assert w.decide("acme", NOV)["ann"].reason == "invited_full_month"


def test_a_company_without_plan_changes_is_on_premium():
    cm, _ = premium().member("acme", "ann").decide_all("acme", OCT)
    assert (cm.plan, cm.model) == ("premium", "active")


def test_profile_is_read_as_of_the_end_of_day_1():
    w = advanced().member("acme", "ann").profile("acme", "ann", "2026-10-01", hourly_paid=True, role_category="medical")
    w.profile("acme", "ann", "2026-10-02", hourly_paid=False)
    assert w.decide("acme", OCT)["ann"].tier == "frontline"
    assert w.decide("acme", NOV)["ann"].tier == "standard"


# R5 guests ---------------------------------------------------------------------------------------


def test_guests_are_never_billable_to_the_inviting_company():
    w = advanced().invite("acme", "gus", "2026-09-01", guest_home_company_id="globex")
    d = w.decide("acme", OCT)["gus"]
    assert (d.billable, d.charged, d.rule, d.reason) == (False, False, "R5", "guest")


def test_a_guest_from_an_unknown_home_company_starts_a_derived_30_day_advanced_trial():
    w = advanced().invite("acme", "gus", "2026-10-05", guest_home_company_id="globex")
    w.company("globex", at="2026-10-20T00:00:00Z").member("globex", "gina", at="2026-10-20T00:00:00Z")
    w.do("login", "globex", "gina", "2026-11-02")
    ts = trials(w.facts().company("globex"), zone("UTC"))
    assert [(t.start, t.last_day, t.derived) for t in ts] == [(date(2026, 10, 5), date(2026, 11, 3), True)]
    d = w.decide("globex", NOV)["gina"]
    assert (d.billable, d.charged, d.rule, d.reason) == (True, False, "R6", "trial")


def test_no_derived_trial_when_the_home_company_already_had_events():
    w = World().company("globex", at="2026-09-01T00:00:00Z").member("globex", "gina", at="2026-09-01T00:00:00Z")
    w.company("acme", plan="advanced").invite("acme", "gus", "2026-10-05", guest_home_company_id="globex")
    w.do("login", "globex", "gina", "2026-11-02")
    assert trials(w.facts().company("globex"), zone("UTC")) == []
    assert w.decide("globex", NOV)["gina"].charged
    assert w.decide("acme", NOV)["gus"].reason == "guest"


def test_only_the_earliest_guest_invite_starts_a_derived_trial():
    w = World().invite("acme", "g1", "2026-10-05", guest_home_company_id="globex")
    w.invite("initech", "g2", "2026-12-20", guest_home_company_id="globex")
    ts = trials(w.facts().company("globex"), zone("UTC"))
    assert len(ts) == 1 and ts[0].start == date(2026, 10, 5)


def test_an_invite_naming_its_own_company_as_home_is_not_a_guest():
    w = advanced().invite("acme", "ann", "2026-09-05", guest_home_company_id="acme")
    assert w.decide("acme", OCT)["ann"].reason == "invited_full_month"


# R6 trial and first billing month ----------------------------------------------------------------


def _trial_world(**trial):
    w = advanced().member("acme", "ann")
    return w.trial("acme", "2026-09-19", **trial)


def test_trial_from_19_september_ends_18_october_so_october_is_free_and_november_billed():
    w = _trial_world()
    t = trials(w.facts().company("acme"), zone("UTC"))[0]
    assert t.last_day == date(2026, 10, 18)
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.charged, d.rule, d.reason) == (
        True,
        False,
        "R6",
        "trial",
    )  # snapshot says who would be billable
    assert w.decide("acme", NOV)["ann"].charged


def test_trial_ending_31_october_bills_from_november():
    w = _trial_world(last_trial_day="2026-10-31")
    assert not w.decide("acme", OCT)["ann"].charged
    assert w.decide("acme", NOV)["ann"].charged


def test_trial_ending_1_november_bills_from_december():
    w = _trial_world(last_trial_day="2026-11-01")
    assert w.decide("acme", NOV)["ann"].reason == "trial"
    assert w.decide("acme", DEC)["ann"].charged


def test_a_trial_month_gets_a_zero_invoice_with_reason_trial():
    inv = _trial_world().invoice("acme", OCT)
    assert (inv.free_reason, inv.lines, inv.total_usd, inv.billable_accounts) == ("trial", [], Decimal("0.00"), 1)


# R7 frontline tier -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile, tier",
    [
        ({"away_from_desk_pct": 50, "role_category": "customer_facing"}, "frontline"),
        ({"away_from_desk_pct": 49, "role_category": "customer_facing"}, "standard"),
        ({"hourly_paid": True, "role_category": "backstage"}, "frontline"),
        ({"has_email": False, "role_category": "public_service"}, "frontline"),
        ({"hourly_paid": True, "role_category": "medical"}, "frontline"),
        ({"hourly_paid": True, "has_email": False, "away_from_desk_pct": 100, "role_category": "other"}, "standard"),
        ({"role_category": "medical"}, "standard"),  # a frontline role but no working-pattern criterion
        ({"hourly_paid": True}, "standard"),  # a criterion but the default role `other`
    ],
)
def test_frontline_tier_needs_one_criterion_and_a_frontline_role(profile, tier):
    w = advanced().member("acme", "ann").profile("acme", "ann", "2026-09-01", **profile)
    d = w.decide("acme", OCT)["ann"]
    assert d.tier == tier
    assert d.unit_price_usd == (Decimal("3.00") if tier == "frontline" else Decimal("6.00"))


def test_management_level_is_irrelevant_to_the_tier():
    # The contract has no management field at all: the tier reads only the pattern and the role.
    w = (
        advanced()
        .member("acme", "boss")
        .profile("acme", "boss", "2026-09-01", hourly_paid=True, role_category="medical")
    )
    w.raw[-1]["management_level"] = "director"  # an unknown field is kept in the archive and ignored
    assert w.decide("acme", OCT)["boss"].tier == "frontline"


def test_the_tier_column_is_set_for_every_row_even_when_not_billable():
    w = (
        advanced()
        .provision("acme", "ann", "2026-09-01")
        .profile("acme", "ann", "2026-09-01", hourly_paid=True, role_category="medical")
    )
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.tier) == (False, "frontline")


# R8 nonprofits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("employment", ["employee", "contractor", "volunteer"])
def test_a_verified_nonprofit_gets_advanced_free_for_direct_relations(employment):
    w = premium().member("acme", "ann", employment=employment).nonprofit("acme", "2026-09-01")
    cm, ds = w.decide_all("acme", OCT)
    d = ds[0]
    assert cm.plan == "advanced"  # choice: nonprofit months use the advanced plan (invited-user model)
    assert (d.billable, d.charged, d.rule, d.reason) == (True, False, "R8", "nonprofit_free")
    assert w.invoice("acme", OCT).free_reason == "nonprofit"


def test_a_nonprofit_account_with_relation_other_is_charged_the_advanced_price():
    w = premium().member("acme", "ann", employment="other").nonprofit("acme", "2026-09-01")
    d = w.decide("acme", OCT)["ann"]
    assert (d.billable, d.charged, d.rule, d.reason, d.unit_price_usd) == (
        True,
        True,
        "R8",
        "nonprofit_other_relation",
        Decimal("6.00"),
    )


@pytest.mark.parametrize("token", ["123a4567 @MyOrgName", "123a!567@MyOrg", "", "abc@My Org", "@MyOrg"])
def test_a_malformed_techsoup_token_is_rejected_and_changes_nothing(token):
    w = (
        premium()
        .member("acme", "ann")
        .do("login", "acme", "ann", "2026-10-03")
        .nonprofit("acme", "2026-09-01", token=token)
    )
    cm, ds = w.decide_all("acme", OCT)
    assert cm.nonprofit is None and cm.plan == "premium"
    assert ds[0].charged
    assert any("malformed TechSoup token" in n for n in w.invoice("acme", "2026-09").notices)


@pytest.mark.parametrize("token", ["123a4567@MyOrgName", "123a4567", "9x@My.Org_name-2"])
def test_well_formed_tokens_verify(token):
    w = premium().member("acme", "ann").nonprofit("acme", "2026-09-01", token=token)
    assert w.decide("acme", OCT)["ann"].reason == "nonprofit_free"


@pytest.mark.parametrize(
    "org",
    ["health_insurance", "education", "government", "political", "religious", "professional_sports", "cooperative"],
)
def test_an_excluded_organisation_type_is_rejected_and_changes_nothing(org):
    w = (
        premium()
        .member("acme", "ann")
        .do("login", "acme", "ann", "2026-10-03")
        .nonprofit("acme", "2026-09-01", org=org)
    )
    cm, _ = w.decide_all("acme", OCT)
    assert cm.nonprofit is None
    assert any("excluded" in n for n in w.invoice("acme", "2026-09").notices)


# R9 loss of nonprofit status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "notice, effective",
    [(date(2026, 10, 15), Month(2027, 2)), (date(2026, 11, 1), Month(2027, 2)), (date(2026, 11, 30), Month(2027, 3))],
)
def test_normal_prices_apply_from_the_first_month_starting_on_or_after_notice_plus_3_months(notice, effective):
    assert nonprofit_revocation_effective(notice) == effective


def test_revocation_on_15_october_frees_until_january_and_charges_from_february():
    w = advanced().member("acme", "ann").nonprofit("acme", "2026-09-01").revoke("acme", "2026-10-15")
    jan, feb = w.decide("acme", "2027-01")["ann"], w.decide("acme", "2027-02")["ann"]
    assert (jan.charged, jan.rule, jan.reason) == (False, "R9", "nonprofit_notice_period")
    assert (feb.charged, feb.rule) == (True, "R3")


def test_revocation_on_30_november_frees_february_and_charges_from_march():
    w = advanced().member("acme", "ann").nonprofit("acme", "2026-09-01").revoke("acme", "2026-11-30")
    assert w.decide("acme", "2027-02")["ann"].reason == "nonprofit_notice_period"
    assert w.decide("acme", "2027-03")["ann"].charged


def test_after_revocation_the_company_returns_to_its_own_plan():
    # Choice: the nonprofit's free `advanced` ends with the status; a company that never chose a
    # plan is back on premium, so activity matters again.
    w = premium().member("acme", "ann").nonprofit("acme", "2026-09-01").revoke("acme", "2026-10-15")
    cm, ds = w.decide_all("acme", "2027-02")
    assert cm.plan == "premium" and ds[0].reason == "no_billing_activity"


# R10 price book ----------------------------------------------------------------------------------


def test_price_book_effective_dates_apply_from_day_1_of_a_month():
    book = PriceBook(
        [
            Price("premium", "standard", date(2020, 1, 1), Decimal("4.00")),
            Price("premium", "standard", date(2026, 11, 1), Decimal("5.00")),
            Price("premium", "standard", date(2026, 12, 15), Decimal("9.00")),
        ]
    )
    w = premium().member("acme", "ann")
    for m in (OCT, NOV, DEC, "2027-01"):
        w.do("login", "acme", "ann", f"{m}-10")
    prices = [w.decide("acme", m, prices=book)["ann"].unit_price_usd for m in (OCT, NOV, DEC, "2027-01")]
    assert prices == [Decimal("4.00"), Decimal("5.00"), Decimal("5.00"), Decimal("9.00")]


def test_the_shipped_price_book_is_exact_decimal():
    p = PriceBook.load().unit_price("premium", "standard", Month(2026, 10))
    assert isinstance(p, Decimal) and str(p) == "4.00"


# R11 invoice, R12 payment ------------------------------------------------------------------------


def test_invoice_lines_by_plan_and_tier_with_total():
    w = advanced().member("acme", "a").member("acme", "b").member("acme", "c")
    w.profile("acme", "c", "2026-09-01", hourly_paid=True, role_category="backstage")
    inv = w.invoice("acme", OCT)
    assert [(ln.plan, ln.tier, ln.count, ln.unit_price_usd) for ln in inv.lines] == [
        ("advanced", "frontline", 1, Decimal("3.00")),
        ("advanced", "standard", 2, Decimal("6.00")),
    ]
    assert inv.total_usd == Decimal("15.00") and inv.to_json()["taxes"] == "excluded"


def test_po_number_in_force_at_the_end_of_the_month():
    w = premium().billing("acme", "2026-10-31", po_number="PO-7")
    assert w.invoice("acme", OCT).po_number == "PO-7"
    w2 = premium().billing("acme", "2026-11-01", po_number="PO-8")
    assert w2.invoice("acme", OCT).po_number is None
    w2.billing("acme", "2026-11-05", po_number=None)
    assert w2.invoice("acme", NOV).po_number is None  # null clears it


def test_american_express_is_rejected_for_brazil():
    w = premium().billing("acme", "2026-10-03", payment_method="card", card_brand="amex", billing_country="BR")
    inv = w.invoice("acme", OCT)
    assert inv.payment_method is None
    assert any("American Express is not accepted for billing country Brazil" in n for n in inv.notices)


@pytest.mark.parametrize("brand, country", [("visa", "BR"), ("mastercard", "BR"), ("discover", "BR"), ("amex", "US")])
def test_other_card_brands_and_amex_elsewhere_are_accepted(brand, country):
    w = premium().billing("acme", "2026-09-01", payment_method="card", card_brand=brand, billing_country=country)
    inv = w.invoice("acme", OCT)
    assert (inv.payment_method, inv.card_brand, inv.notices) == ("card", brand, [])


@pytest.mark.parametrize("price, qualifies", [("5000.00", False), ("5000.01", True)])
def test_payment_by_invoice_needs_a_monthly_cost_strictly_above_5000(price, qualifies):
    book = PriceBook([Price("premium", "standard", date(2020, 1, 1), Decimal(price))])
    w = (
        premium()
        .member("acme", "ann")
        .do("login", "acme", "ann", "2026-10-03")
        .billing("acme", "2026-09-01", payment_method="invoice")
    )
    inv = w.invoice("acme", OCT, prices=book)
    assert inv.qualifies_for_invoice_payment is qualifies
    assert any("not above USD 5000" in n for n in inv.notices) is (not qualifies)


def test_zero_invoice_when_nothing_is_billable():
    inv = premium().member("acme", "ann").invoice("acme", OCT)
    assert (inv.lines, inv.total_usd, inv.free_reason) == ([], Decimal("0.00"), None)


# R13 export, R14 reports -------------------------------------------------------------------------


def test_every_decision_explains_itself_with_rule_reason_and_evidence():
    w = premium().member("acme", "ann").do("chat_use", "acme", "ann", "2026-10-03")
    d = w.decide("acme", OCT)["ann"]
    assert d.rule == "R2" and '"type":"chat_use"' in d.evidence and '"type":"account_provisioned"' in d.evidence


def test_mau_counts_the_30_days_ending_on_each_day():
    w = premium().member("acme", "ann").do("notification_view", "acme", "ann", "2026-09-15")
    w.member("acme", "bob").do("visit", "acme", "bob", "2026-10-20")
    facts = w.facts()
    hist = {u: {m: a for (c, uu, m), a in facts.activity.items() if uu == u} for u in ("ann", "bob")}
    days = dict(mau_daily(Month(2026, 10), hist))
    assert days[date(2026, 10, 14)] == 1  # ann: 15 Sep is within the 30 days ending 14 Oct
    assert days[date(2026, 10, 15)] == 0  # 30 days ending 15 Oct start on 16 Sep
    assert days[date(2026, 10, 20)] == 1 and days[date(2026, 10, 31)] == 1


def test_reconciliation_explains_report_versus_invoice():
    w = premium().member("acme", "ann").do("notification_view", "acme", "ann", "2026-10-30")
    w.provision("acme", "new", "2026-10-10").do("login", "acme", "new", "2026-10-30")
    w.member("acme", "adm").do("admin_panel_use", "acme", "adm", "2026-10-30")
    facts = w.facts()
    ds = w.decide("acme", OCT)
    hist = lambda u: {m: a for (c, uu, m), a in facts.activity.items() if uu == u}  # noqa: E731
    got = {u: reconcile(d, in_report(Month(2026, 10), hist(u))).explanation for u, d in ds.items()}
    assert got == {
        "ann": "report_only:notification_only",
        "new": "report_only:created_mid_month",
        "adm": "invoice_only:active_full_month",  # admin panel use bills (R2) but is not a reports kind (R14)
    }


# Time zones --------------------------------------------------------------------------------------


def test_23_30_utc_on_the_last_day_of_the_previous_month_is_day_1_in_amsterdam():
    w = World().company("acme", tz="Europe/Amsterdam").member("acme", "ann")
    w.do("login", "acme", "ann", "2026-09-30T23:30:00Z")
    assert w.decide("acme", OCT)["ann"].billable
    u = World().company("acme", tz="UTC").member("acme", "ann").do("login", "acme", "ann", "2026-09-30T23:30:00Z")
    assert not u.decide("acme", OCT)["ann"].billable


def test_day_1_in_a_zone_behind_utc():
    w = (
        World().company("acme", tz="America/Los_Angeles").provision("acme", "ann", "2026-10-02T06:00:00Z")
    )  # 1 Oct 23:00 PDT
    w.do("login", "acme", "ann", "2026-10-10")
    assert w.decide("acme", OCT)["ann"].billable
    u = (
        World()
        .company("acme")
        .provision("acme", "ann", "2026-10-02T06:00:00Z")
        .do("login", "acme", "ann", "2026-10-10")
    )
    assert u.decide("acme", OCT)["ann"].reason == "created_mid_month"


def _day_bits(tz, at):
    w = World().company("acme", tz=tz).do("visit", "acme", "ann", at)
    ((key, act),) = w.facts().activity.items()
    return str(key[2]), act.report_days.bit_length()


@pytest.mark.parametrize(
    "tz, at, month, day",
    [
        ("Europe/Amsterdam", "2026-10-25T00:30:00Z", "2026-10", 25),  # 02:30 CEST, before the change
        ("Europe/Amsterdam", "2026-10-25T22:30:00Z", "2026-10", 25),  # 23:30 CET, after it
        ("Europe/Amsterdam", "2026-10-25T23:00:00Z", "2026-10", 26),  # midnight CET
        ("America/Los_Angeles", "2026-11-01T06:30:00Z", "2026-10", 31),  # 23:30 PDT
        ("America/Los_Angeles", "2026-11-01T07:30:00Z", "2026-11", 1),  # 00:30 PDT
        ("America/Los_Angeles", "2026-11-02T07:30:00Z", "2026-11", 1),  # 23:30 PST on the 25-hour day
        ("America/Los_Angeles", "2026-11-02T08:00:00Z", "2026-11", 2),  # midnight PST
        ("Asia/Kathmandu", "2026-09-30T18:14:59Z", "2026-09", 30),  # 23:59:59 +05:45
        ("Asia/Kathmandu", "2026-09-30T18:15:00Z", "2026-10", 1),  # 00:00 +05:45
    ],
)
def test_local_days_on_dst_change_days_and_quarter_hour_zones(tz, at, month, day):
    assert _day_bits(tz, at) == (month, day)


def test_plan_change_at_the_end_of_local_day_1_in_kathmandu():
    w = World().company("acme", tz="Asia/Kathmandu").member("acme", "ann")
    w.plan("acme", "advanced", "2026-10-01T18:14:59Z")  # 1 Oct 23:59:59 local: day 1
    assert w.decide("acme", OCT)["ann"].reason == "invited_full_month"
    v = (
        World()
        .company("acme", tz="Asia/Kathmandu")
        .member("acme", "ann")
        .plan("acme", "advanced", "2026-10-01T18:15:00Z")
    )
    assert v.decide("acme", OCT)["ann"].reason == "no_billing_activity"


def test_the_time_zone_is_the_earliest_company_registered_ones():
    # Choice: a second registration does not move the company's months.
    w = (
        World()
        .company("acme", tz="Europe/Amsterdam")
        .company("acme", tz="America/Los_Angeles", at="2026-01-01T00:00:00Z")
    )
    assert fold_all(w.events).company("acme").timezone_name == "Europe/Amsterdam"


def test_a_derived_guest_trial_puts_the_home_company_on_advanced_for_the_trial():
    w = World().invite("acme", "gus", "2026-10-05", guest_home_company_id="globex")
    w.company("globex", at="2026-10-20T00:00:00Z")
    cm, _ = w.decide_all("globex", NOV)
    assert cm.trial is not None and cm.trial.derived
    assert cm.plan == "advanced"  # R5: an advanced trial while the company has chosen no plan


def test_a_rejected_company_event_is_a_notice_on_the_invoice_of_its_own_month_only():
    w = premium().billing("acme", "2026-09-20", payment_method="card", card_brand="amex", billing_country="BR")
    assert len(w.invoice("acme", "2026-09").notices) == 1
    assert w.invoice("acme", OCT).notices == []
