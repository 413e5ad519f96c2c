"""Given/when/then scenarios of the billing rules, each run through every path that bills.

Every scenario is decided every way and all must agree before its expectation is checked: the
reference fold (`fold_all` + `decide_month`), the batch command (`seatledger replay` over an NDJSON
file: DuckDB facts), the batch path over the Parquet archive and over the archive facts `verify`
and `dispute` recompute from, and the streaming worker's logic (router, fold and close in-process,
`tests.support.worker_oracle.simulate`, fed the events in order and in reverse so that zones,
plans and lifecycle events arrive late). Where tests/unit/projections/test_rules.py pins a rule on
the reference fold alone, these pin the same rules, and their edges (local midnights, DST days,
trials and plan changes mid-month, nonprofit conditions, guests), on what a user runs.
"""

from __future__ import annotations

import shutil

import orjson
import pytest
from typer.testing import CliRunner

from projections.calendar import Month
from projections.decide import Decision
from replay import verify
from replay.archive.writer import ArchiveWriter
from replay.month import companies_for_month, month_from_facts, run_month
from schemas.control import close_marker
from seatledger.cli import app
from tests.support.given import World
from tests.support.worker_oracle import diff, latest_decisions, oracle, simulate

Outcome = tuple[bool, bool, str, str]  # (billable, charged, rule, reason)


def replay_rows(w: World, month: str, tmp_path) -> dict:
    """`seatledger replay --events FILE --month M` as (company, user, month) -> row."""
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in w.raw))
    r = CliRunner().invoke(app, ["replay", "--events", str(path), "--month", month, "--strict"])
    assert r.exit_code == 0, r.output
    rows = [orjson.loads(line) for line in r.stdout.splitlines()]
    return {(x["company_id"], x["user_id"], x["month"]): x for x in rows}


def archive_rows(w: World, month: str, tmp_path) -> tuple[dict, dict]:
    """`seatledger replay` over the Parquet archive of the events, and the facts `verify` and
    `dispute` recompute from (the archive's UTC months up to the next one), both decided."""
    root = tmp_path / "archive"
    writer = ArchiveWriter(root, "events", clock=lambda: 1_790_000_000_000_000)
    writer.open_partition(0)
    for i, e in enumerate(w.raw):
        writer.add(0, i, orjson.dumps(e), 1_780_000_000_000_000 + i)
    writer.flush()
    m = Month.parse(month)
    replayed = rows_of(run_month(str(root), m, with_mau=False).decisions)
    facts, _ = verify.archive_facts(root, m.next())
    shutil.rmtree(root)
    return replayed, rows_of(month_from_facts(facts, m, with_mau=False).decisions)


def rows_of(decisions: list[Decision]) -> dict:
    return {(d.company_id, d.user_id, d.month): d.row() | {"unit_price_usd": str(d.unit_price_usd)} for d in decisions}


def worker_rows(w: World, month: str, reverse: bool = False) -> dict:
    events = list(reversed(w.raw)) if reverse else w.raw
    snapshots, dead, _ = simulate([orjson.dumps(e) for e in events], month)
    assert dead == []
    return latest_decisions(snapshots)


def decided(w: World, month: str, tmp_path) -> dict[tuple[str, str], dict]:
    """The month's decisions, after checking that the batch command and the worker (in order and
    in reverse) give exactly the reference fold's rows."""
    ref = oracle(w.raw, month)
    assert diff(ref, replay_rows(w, month, tmp_path)) == [], "seatledger replay differs from the reference"
    from_archive, from_verify_facts = archive_rows(w, month, tmp_path)
    assert diff(ref, from_archive) == [], "seatledger replay of the archive differs from the reference"
    assert diff(ref, from_verify_facts) == [], "the archive facts verify and dispute use differ"
    assert diff(ref, worker_rows(w, month)) == [], "the worker differs from the reference"
    assert diff(ref, worker_rows(w, month, reverse=True)) == [], "the worker (reverse order) differs"
    return {(c, u): row for (c, u, _), row in ref.items()}


def outcome(row: dict) -> Outcome:
    return (row["billable"], row["charged"], row["rule"], row["reason"])


BILLED_PREMIUM: Outcome = (True, True, "R2", "active_full_month")
BILLED_INVITED: Outcome = (True, True, "R3", "invited_full_month")


# R1 full calendar month, at the local month's edges ---------------------------------------------------


def test_r1_local_midnights_decide_day_1_and_the_month_end_in_amsterdam(tmp_path):
    """Given a premium company in Europe/Amsterdam (+02:00 on 1 October, +01:00 from 25 October),
    when accounts start or end around local midnights, then day 1 and the month's end are local."""
    w = World().company("ams", tz="Europe/Amsterdam")
    w.provision("ams", "first-instant", "2026-09-30T22:00:00Z")  # 00:00 local on 1 October
    w.provision("ams", "last-instant", "2026-10-01T21:59:59Z")  # 23:59:59 local on 1 October
    w.provision("ams", "day-2", "2026-10-01T22:00:00Z")  # 00:00 local on 2 October
    w.member("ams", "gone-1-nov").deactivate("ams", "gone-1-nov", "2026-10-31T23:00:00Z")  # 00:00 local 1 Nov
    w.member("ams", "gone-31-oct").deactivate("ams", "gone-31-oct", "2026-10-31T22:59:59Z")  # 23:59:59 local
    for uid in ("first-instant", "last-instant", "day-2", "gone-1-nov", "gone-31-oct"):
        w.do("login", "ams", uid, "2026-10-10")
    w.member("ams", "login-utc-sept").do("login", "ams", "login-utc-sept", "2026-09-30T22:30:00Z")  # local 1 Oct
    w.member("ams", "login-utc-oct").do("login", "ams", "login-utc-oct", "2026-10-31T23:30:00Z")  # local 1 Nov

    got = {u: outcome(r) for (_, u), r in decided(w, "2026-10", tmp_path).items()}

    assert got == {
        "first-instant": BILLED_PREMIUM,
        "last-instant": BILLED_PREMIUM,
        "day-2": (False, False, "R1", "created_mid_month"),
        "gone-1-nov": BILLED_PREMIUM,
        "gone-31-oct": (False, False, "R1", "deactivated_in_month"),
        "login-utc-sept": BILLED_PREMIUM,
        "login-utc-oct": (False, False, "R2", "no_billing_activity"),
    }


def test_r1_day_1_and_month_end_on_the_dst_change_day_in_los_angeles(tmp_path):
    """Given America/Los_Angeles, where 1 November 2026 is 25 hours long (-07:00 until 02:00, then
    -08:00), when accounts start late on that day or end at the month's last instant, then the
    local calendar decides."""
    w = World().company("la", tz="America/Los_Angeles")
    w.provision("la", "late-day-1", "2026-11-02T07:59:59Z")  # 23:59:59 -08:00 on 1 November
    w.provision("la", "day-2", "2026-11-02T08:00:00Z")  # 00:00 -08:00 on 2 November
    w.provision("la", "early-day-1", "2026-11-01T07:00:00Z")  # 00:00 -07:00 on 1 November
    w.member("la", "gone-30-nov").deactivate("la", "gone-30-nov", "2026-12-01T07:59:59Z")  # 23:59:59 30 Nov
    w.member("la", "gone-1-dec").deactivate("la", "gone-1-dec", "2026-12-01T08:00:00Z")  # 00:00 1 December
    for uid in ("late-day-1", "day-2", "early-day-1", "gone-30-nov", "gone-1-dec"):
        w.do("visit", "la", uid, "2026-11-15", channel="mobile")

    got = {u: outcome(r) for (_, u), r in decided(w, "2026-11", tmp_path).items()}

    assert got == {
        "late-day-1": BILLED_PREMIUM,
        "day-2": (False, False, "R1", "created_mid_month"),
        "early-day-1": BILLED_PREMIUM,
        "gone-30-nov": (False, False, "R1", "deactivated_in_month"),
        "gone-1-dec": BILLED_PREMIUM,
    }


def test_r1_deactivation_and_reactivation(tmp_path):
    """Given accounts deactivated and reactivated around October, then a reactivation restarts the
    clock like a creation, and a deactivate or reactivate that changes no state is ignored."""
    w = World().company("acme")
    w.member("acme", "back-day-1").deactivate("acme", "back-day-1", "2026-09-10").reactivate(
        "acme", "back-day-1", "2026-10-01T00:00:00Z"
    )
    w.member("acme", "back-day-2").deactivate("acme", "back-day-2", "2026-09-10").reactivate(
        "acme", "back-day-2", "2026-10-02T00:00:00Z"
    )
    w.member("acme", "out-and-in").deactivate("acme", "out-and-in", "2026-10-10").reactivate(
        "acme", "out-and-in", "2026-10-11"
    )
    w.member("acme", "gone").deactivate("acme", "gone", "2026-09-10")
    w.member("acme", "twice").deactivate("acme", "twice", "2026-09-10").deactivate("acme", "twice", "2026-10-10")
    w.member("acme", "re-active").reactivate("acme", "re-active", "2026-10-10")
    w.deactivate("acme", "ghost", "2026-09-01").provision("acme", "ghost", "2026-09-02")
    for uid in ("back-day-1", "back-day-2", "out-and-in", "gone", "twice", "re-active", "ghost"):
        w.do("chat_use", "acme", uid, "2026-10-20")
        w.do("chat_use", "acme", uid, "2026-11-20")

    oct_ = {u: outcome(r) for (_, u), r in decided(w, "2026-10", tmp_path).items()}
    nov = {u: outcome(r) for (_, u), r in decided(w, "2026-11", tmp_path).items()}

    assert oct_ == {
        "back-day-1": BILLED_PREMIUM,
        "back-day-2": (False, False, "R1", "reactivated_mid_month"),
        "out-and-in": (False, False, "R1", "deactivated_in_month"),
        "gone": (False, False, "R1", "deactivated"),
        "twice": (False, False, "R1", "deactivated"),
        "re-active": BILLED_PREMIUM,
        "ghost": BILLED_PREMIUM,
    }
    assert nov["back-day-2"] == BILLED_PREMIUM and nov["out-and-in"] == BILLED_PREMIUM


# R2 / R3: what makes an account billable on each plan model ---------------------------------------------


def test_r2_only_sign_in_visit_admin_panel_and_work_chat_make_an_account_billing_active(tmp_path):
    w = World().company("acme")
    kinds = (
        "login", "visit", "admin_panel_use", "chat_use",
        "notification_view", "push_notification_received", "email_notification_received",
    )  # fmt: skip
    for kind in kinds:
        w.member("acme", kind).do(kind, "acme", kind, "2026-10-15")
    w.member("acme", "idle")

    got = {u: outcome(r) for (_, u), r in decided(w, "2026-10", tmp_path).items()}

    assert got == {
        "login": BILLED_PREMIUM,
        "visit": BILLED_PREMIUM,
        "admin_panel_use": BILLED_PREMIUM,
        "chat_use": BILLED_PREMIUM,
        "notification_view": (False, False, "R2", "notification_only"),
        "push_notification_received": (False, False, "R2", "notification_only"),
        "email_notification_received": (False, False, "R2", "notification_only"),
        "idle": (False, False, "R2", "no_billing_activity"),
    }


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (None, (False, False, "R2", "no_billing_activity")),
        ("premium", (False, False, "R2", "no_billing_activity")),
        ("advanced", BILLED_INVITED),
        ("enterprise", BILLED_INVITED),
    ],
)
def test_invited_but_never_active_on_each_plan(tmp_path, plan, expected):
    """Given an account invited on 1 October (local) that never did anything, then only the
    invited-user plans bill it."""
    w = World().company("acme", tz="Asia/Kathmandu", plan=plan)
    w.invite("acme", "quiet", "2026-10-01T00:00:00+05:45")
    assert outcome(decided(w, "2026-10", tmp_path)[("acme", "quiet")]) == expected


def test_r3_life_starts_at_the_invite_or_claim_not_at_provisioning(tmp_path):
    w = World().company("acme", plan="advanced")
    w.provision("acme", "provisioned-only", "2026-09-01")
    w.provision("acme", "invited-day-2", "2026-09-01").invite("acme", "invited-day-2", "2026-10-02T00:00:00Z")
    w.claim("acme", "claimed-only", "2026-10-01T23:59:59Z")
    w.provision("acme", "out-in-no-invite", "2026-09-01").deactivate("acme", "out-in-no-invite", "2026-09-02")
    w.reactivate("acme", "out-in-no-invite", "2026-09-03")

    oct_ = {u: outcome(r) for (_, u), r in decided(w, "2026-10", tmp_path).items()}
    nov = {u: outcome(r) for (_, u), r in decided(w, "2026-11", tmp_path).items()}

    assert oct_ == {
        "provisioned-only": (False, False, "R3", "never_invited"),
        "invited-day-2": (False, False, "R3", "invited_mid_month"),
        "claimed-only": BILLED_INVITED,
        "out-in-no-invite": (False, False, "R3", "never_invited"),
    }
    assert nov["invited-day-2"] == BILLED_INVITED and nov["provisioned-only"][3] == "never_invited"


# R4 plan in force ---------------------------------------------------------------------------------------


def test_r4_a_plan_change_mid_month_applies_from_the_next_month(tmp_path):
    """Given a premium company in Amsterdam moving to advanced at 23:30 local on 1 October and
    another moving on 15 October, then the first is advanced for October, the second from November."""
    w = World().company("early", tz="Europe/Amsterdam").company("late", tz="Europe/Amsterdam")
    w.plan("early", "advanced", "2026-10-01T21:30:00Z").plan("late", "advanced", "2026-10-15")
    for cid in ("early", "late"):
        w.member(cid, "quiet")

    oct_ = decided(w, "2026-10", tmp_path)
    nov = decided(w, "2026-11", tmp_path)

    assert outcome(oct_[("early", "quiet")]) == BILLED_INVITED
    assert outcome(oct_[("late", "quiet")]) == (False, False, "R2", "no_billing_activity")
    assert outcome(nov[("late", "quiet")]) == BILLED_INVITED


# R6 trials ----------------------------------------------------------------------------------------------


def test_r6_trial_examples_of_the_spec(tmp_path):
    w = World()
    w.company("sep19", plan="advanced").trial("sep19", "2026-09-19")  # ends 18 October
    w.company("oct31", plan="advanced").trial("oct31", "2026-10-05", last_trial_day="2026-10-31")
    w.company("nov1", plan="advanced").trial("nov1", "2026-10-03")  # 30 days: ends 1 November
    w.company("dec", plan="advanced").trial("dec", "2026-12-03")  # a later trial frees no earlier month
    for cid in ("sep19", "oct31", "nov1", "dec"):
        w.member(cid, "ann")

    oct_, nov, dec = (decided(w, m, tmp_path) for m in ("2026-10", "2026-11", "2026-12"))

    trial = (True, False, "R6", "trial")
    assert [outcome(oct_[(c, "ann")]) for c in ("sep19", "oct31", "nov1", "dec")] == [
        trial,
        trial,
        trial,
        BILLED_INVITED,
    ]
    assert [outcome(nov[(c, "ann")]) for c in ("sep19", "oct31", "nov1")] == [BILLED_INVITED, BILLED_INVITED, trial]
    assert outcome(dec[("nov1", "ann")]) == BILLED_INVITED and outcome(dec[("dec", "ann")]) == trial


def test_r6_a_trial_starts_on_its_local_date(tmp_path):
    """Given a trial started at 23:00 on 2 October in Los Angeles (3 October in UTC), then it runs
    2-31 October and November is billed (read in UTC it would end on 1 November)."""
    w = World().company("la", tz="America/Los_Angeles", plan="advanced").trial("la", "2026-10-03T06:00:00Z")
    w.member("la", "ann")
    assert outcome(decided(w, "2026-11", tmp_path)[("la", "ann")]) == BILLED_INVITED


# R8 / R9 nonprofits -------------------------------------------------------------------------------------

NONPROFIT_FREE: Outcome = (True, False, "R8", "nonprofit_free")


def test_r8_a_verified_nonprofit_gets_advanced_free_for_its_direct_relations_only(tmp_path):
    w = World().company("np").nonprofit("np", "2026-09-01")
    for rel in ("employee", "contractor", "volunteer", "other"):
        w.member("np", rel, employment=rel)
    w.member("np", "other-from-day-2").profile("np", "other-from-day-2", "2026-10-02T00:00:00Z", employment="other")

    got = decided(w, "2026-10", tmp_path)

    assert {u: outcome(r) for (_, u), r in got.items()} == {
        "employee": NONPROFIT_FREE,
        "contractor": NONPROFIT_FREE,
        "volunteer": NONPROFIT_FREE,
        "other": (True, True, "R8", "nonprofit_other_relation"),
        "other-from-day-2": NONPROFIT_FREE,  # attributes are read as of the end of day 1 (R4)
    }
    assert got[("np", "other")]["unit_price_usd"] == "6.00"  # the advanced price (EXAMPLE book)


def test_r8_a_verification_during_the_month_frees_the_next_month(tmp_path):
    w = World().company("np").nonprofit("np", "2026-10-02T00:00:00Z").member("np", "ann")
    w.do("login", "np", "ann", "2026-10-05").do("login", "np", "ann", "2026-11-05")
    assert outcome(decided(w, "2026-10", tmp_path)[("np", "ann")]) == BILLED_PREMIUM
    assert outcome(decided(w, "2026-11", tmp_path)[("np", "ann")]) == NONPROFIT_FREE


@pytest.mark.parametrize(
    "token",
    ["123a4567@MyOrgName\n", "123a4567\n", "123a4567@My Org", "123a4567 @MyOrgName", "123a4567@", "@MyOrgName", ""],
)
def test_r8_a_malformed_token_verifies_nothing(tmp_path, token):
    """Given a verification whose TechSoup token is not letters and digits optionally followed by
    '@' and a name part, then it changes nothing: the company stays on premium and pays."""
    w = World().company("np").nonprofit("np", "2026-09-01", token=token).member("np", "ann")
    w.do("login", "np", "ann", "2026-10-05")
    assert outcome(decided(w, "2026-10", tmp_path)[("np", "ann")]) == BILLED_PREMIUM


@pytest.mark.parametrize("org", ["health_insurance", "education", "government", "political", "religious",
                                 "professional_sports", "cooperative"])  # fmt: skip
def test_r8_an_excluded_organisation_type_verifies_nothing(tmp_path, org):
    w = World().company("np").nonprofit("np", "2026-09-01", org=org).member("np", "ann")
    w.do("login", "np", "ann", "2026-10-05")
    assert outcome(decided(w, "2026-10", tmp_path)[("np", "ann")]) == BILLED_PREMIUM


@pytest.mark.parametrize("token", ["123a4567@MyOrgName", "123a4567@My.Org_Name-2", "123a4567", "ABC123"])
def test_r8_a_well_formed_token_verifies(tmp_path, token):
    w = World().company("np").nonprofit("np", "2026-09-01", token=token).member("np", "ann")
    assert outcome(decided(w, "2026-10", tmp_path)[("np", "ann")]) == NONPROFIT_FREE


@pytest.mark.parametrize(
    ("notice", "last_free", "first_charged"),
    [
        ("2026-11-01T00:00:00+01:00", "2027-01", "2027-02"),  # N + 3 months = 1 February exactly
        ("2026-11-30T23:59:59+01:00", "2027-02", "2027-03"),  # 28 February (capped): from 1 March
        ("2026-11-30T23:30:00Z", "2027-02", "2027-03"),  # 1 December in Amsterdam: 1 March
    ],
)
def test_r9_normal_prices_from_the_first_month_starting_on_or_after_the_notice_plus_3_months(
    tmp_path, notice, last_free, first_charged
):
    w = (
        World()
        .company("np", tz="Europe/Amsterdam", plan="enterprise")
        .nonprofit("np", "2026-09-01")
        .revoke("np", notice)
    )
    w.member("np", "ann")
    assert outcome(decided(w, last_free, tmp_path)[("np", "ann")]) == (True, False, "R9", "nonprofit_notice_period")
    assert outcome(decided(w, first_charged, tmp_path)[("np", "ann")]) == BILLED_INVITED


def test_r9_revocation_on_15_october_keeps_the_notice_period_free_until_february(tmp_path):
    w = World().company("np").nonprofit("np", "2026-09-01").revoke("np", "2026-10-15").member("np", "ann")
    for m in ("2026-10", "2026-11", "2026-12", "2027-01", "2027-02"):
        w.do("login", "np", "ann", m + "-05")

    got = [outcome(decided(w, m, tmp_path)[("np", "ann")]) for m in ("2026-10", "2026-11", "2027-01", "2027-02")]

    notice = (True, False, "R9", "nonprofit_notice_period")
    assert got == [NONPROFIT_FREE, notice, notice, BILLED_PREMIUM]


# R5 guests ----------------------------------------------------------------------------------------------

GUEST: Outcome = (False, False, "R5", "guest")


def test_r5_a_guest_from_a_company_new_to_the_product_starts_its_advanced_trial_in_its_own_zone(tmp_path):
    """Given acme (UTC) inviting a guest from globex at 22:30 UTC on 2 October, when globex (in
    Amsterdam, where it is already 3 October) only joins on 5 October, then the guest is never
    billed to acme, and globex's derived 30-day advanced trial runs 3 October - 1 November, so
    November is free and December is billed on globex's own plan (premium: it chose none)."""
    w = (
        World()
        .company("acme", plan="advanced")
        .invite("acme", "gus", "2026-10-02T22:30:00Z", guest_home_company_id="globex")
    )
    w.company("globex", tz="Europe/Amsterdam", at="2026-10-05T10:00:00Z")
    w.member("globex", "gina", at="2026-10-05T10:00:00Z").member("globex", "idle", at="2026-10-05T10:00:00Z")
    w.do("login", "globex", "gina", "2026-12-07")

    nov, dec = decided(w, "2026-11", tmp_path), decided(w, "2026-12", tmp_path)

    assert outcome(nov[("acme", "gus")]) == GUEST and outcome(dec[("acme", "gus")]) == GUEST
    assert outcome(nov[("globex", "gina")]) == (True, False, "R6", "trial")
    assert outcome(nov[("globex", "idle")]) == (True, False, "R6", "trial")  # advanced: invited model
    assert outcome(dec[("globex", "gina")]) == BILLED_PREMIUM
    assert outcome(dec[("globex", "idle")]) == (False, False, "R2", "no_billing_activity")


def test_r5_a_guest_from_a_company_already_using_the_product_costs_no_one_anything(tmp_path):
    w = World().company("acme", plan="advanced").company("initech", plan="advanced")
    w.member("initech", "ida").invite("acme", "ida", "2026-09-10", guest_home_company_id="initech")
    w.member("acme", "was-member").invite("acme", "was-member", "2026-09-10", guest_home_company_id="initech")
    w.invite("acme", "own-home", "2026-09-10", guest_home_company_id="acme")  # its own company: no guest

    got = decided(w, "2026-10", tmp_path)

    assert outcome(got[("acme", "ida")]) == GUEST
    assert outcome(got[("acme", "was-member")]) == GUEST  # once a guest, always a guest in that company
    assert outcome(got[("acme", "own-home")]) == BILLED_INVITED
    assert outcome(got[("initech", "ida")]) == BILLED_INVITED  # billed by its home company, trial-free


# R7 frontline tier --------------------------------------------------------------------------------------


def test_r7_frontline_needs_a_working_pattern_and_a_frontline_role_read_on_day_1(tmp_path):
    w = World().company("acme", plan="advanced")
    profiles = {
        "hourly-shop": {"hourly_paid": True, "role_category": "customer_facing"},
        "away-50-warehouse": {"away_from_desk_pct": 50, "role_category": "backstage"},
        "no-mail-police": {"has_email": False, "role_category": "public_service"},
        "away-49-nurse": {"away_from_desk_pct": 49, "role_category": "medical"},
        "hourly-office": {"hourly_paid": True, "role_category": "other"},
        "nurse-no-pattern": {"role_category": "medical"},
    }
    for uid, fields in profiles.items():
        w.member("acme", uid).profile("acme", uid, "2026-09-15", **fields)
    w.member("acme", "frontline-from-day-2").profile(
        "acme", "frontline-from-day-2", "2026-10-02T00:00:00Z", hourly_paid=True, role_category="medical"
    )

    got = {u: (r["tier"], r["unit_price_usd"]) for (_, u), r in decided(w, "2026-10", tmp_path).items()}

    frontline, standard = ("frontline", "3.00"), ("standard", "6.00")
    assert got == {
        "hourly-shop": frontline,
        "away-50-warehouse": frontline,
        "no-mail-police": frontline,
        "away-49-nurse": standard,
        "hourly-office": standard,
        "nurse-no-pattern": standard,
        "frontline-from-day-2": standard,
    }


# R11 / R12 invoices -------------------------------------------------------------------------------------


def invoices(w: World, month: str, tmp_path) -> dict[str, dict]:
    """The month's invoices (`Invoice.to_json`) per company, after checking that `seatledger
    invoice --format json` and the worker's close give exactly the reference's."""
    facts = w.facts()
    ref = {c: w.invoice(c, month).to_json() for c in companies_for_month(facts, Month.parse(month))}
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in w.raw))
    r = CliRunner().invoke(app, ["invoice", "--events", str(path), "--month", month, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert {i["company_id"]: i for i in orjson.loads(r.stdout)} == ref, "seatledger invoice differs"
    snapshots, _, _ = simulate([orjson.dumps(e) for e in w.raw], month)
    latest: dict[str, dict] = {}
    for m in snapshots:
        newer = m.get("kind") == "company_month" and m["month"] == month
        if newer and (m["company_id"] not in latest or m["version"] > latest[m["company_id"]]["version"]):
            latest[m["company_id"]] = m
    assert {c: m["invoice"] for c, m in latest.items()} == ref, "the worker's invoice differs"
    return ref


def test_r11_r12_invoice_lines_po_number_at_the_month_end_and_payment_checks(tmp_path):
    """Given an Amsterdam company with a PO number set at 00:30 local on 1 November (23:30 UTC on
    31 October) and an Amex/Brazil card update in October, then the October invoice carries the
    PO number in force at the end of local October, keeps the previous card and says why."""
    w = World().company("ams", tz="Europe/Amsterdam", plan="advanced")
    w.billing("ams", "2026-09-05", payment_method="card", card_brand="visa", billing_country="NL", po_number="PO-1")
    w.billing("ams", "2026-10-15", card_brand="amex", billing_country="BR")
    w.billing("ams", "2026-10-31T23:30:00Z", po_number="PO-2")
    w.member("ams", "ann").member("ams", "bob").profile(
        "ams", "bob", "2026-09-10", hourly_paid=True, role_category="backstage"
    )
    w.invite("ams", "late", "2026-10-02")

    inv = invoices(w, "2026-10", tmp_path)["ams"]

    assert [(x["plan"], x["tier"], x["count"], x["amount_usd"]) for x in inv["lines"]] == [
        ("advanced", "frontline", 1, "3.00"),
        ("advanced", "standard", 1, "6.00"),
    ]
    assert (inv["total_usd"], inv["taxes"], inv["currency"]) == ("9.00", "excluded", "USD")
    assert (inv["po_number"], inv["card_brand"], inv["billing_country"]) == ("PO-1", "visa", "NL")
    assert any("American Express is not accepted for billing country Brazil" in n for n in inv["notices"])


def test_r12_payment_by_invoice_is_for_a_monthly_cost_strictly_above_5000(tmp_path):
    """625 enterprise accounts at the EXAMPLE USD 8.00 cost exactly 5,000.00; 626 cost more."""
    w = World()
    for cid, n in (("at", 625), ("above", 626)):
        w.company(cid, plan="enterprise").billing(cid, "2026-09-01", payment_method="invoice", billing_country="US")
        for i in range(n):
            w.invite(cid, f"u{i}", "2026-09-01")

    inv = invoices(w, "2026-10", tmp_path)

    assert (inv["at"]["total_usd"], inv["at"]["qualifies_for_invoice_payment"]) == ("5000.00", False)
    assert any("not above USD 5000" in n for n in inv["at"]["notices"])
    assert (inv["above"]["total_usd"], inv["above"]["qualifies_for_invoice_payment"]) == ("5008.00", True)
    assert inv["above"]["notices"] == []


# R14 reports versus invoices ----------------------------------------------------------------------------


def test_r14_mau_counts_30_local_days_and_reconcile_explains_each_difference(tmp_path):
    """Given an Amsterdam premium company, when one account logs in at 00:30 local on 2 September
    (22:30 UTC on 1 September), then it is monthly-active through 1 October and not on 2 October;
    `seatledger mau` and the worker's close agree, and `seatledger reconcile` explains why the
    report and the invoice differ, account by account."""
    w = World().company("ams", tz="Europe/Amsterdam")
    w.member("ams", "sept").do("login", "ams", "sept", "2026-09-01T22:30:00Z")
    w.member("ams", "viewer").do("notification_view", "ams", "viewer", "2026-10-20")
    w.member("ams", "pushed").do("push_notification_received", "ams", "pushed", "2026-10-20")
    w.member("ams", "admin").do("admin_panel_use", "ams", "admin", "2026-10-20")
    w.member("ams", "both").do("visit", "ams", "both", "2026-10-20")
    w.provision("ams", "new", "2026-10-10").do("chat_use", "ams", "new", "2026-10-20")
    w.invite("ams", "guest", "2025-06-01", guest_home_company_id="initech").do("login", "ams", "guest", "2026-10-20")
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in w.raw))
    run = CliRunner().invoke

    mau = orjson.loads(
        run(app, ["mau", "--events", str(path), "--company", "ams", "--month", "2026-10", "--format", "json"]).stdout
    )
    rec = orjson.loads(
        run(
            app, ["reconcile", "--events", str(path), "--company", "ams", "--month", "2026-10", "--format", "json"]
        ).stdout
    )

    days = {d["date"]: d["mau"] for d in mau["days"]}
    assert (days["2026-10-01"], days["2026-10-02"], days["2026-10-20"], days["2026-10-31"]) == (1, 0, 4, 4)
    snapshots, _, _ = simulate([orjson.dumps(e) for e in w.raw], "2026-10")
    worker = [m["mau"] for m in snapshots if m.get("kind") == "company_month" and m["company_id"] == "ams"][-1]
    assert dict(worker) == days
    assert {a["user_id"]: a["explanation"] for a in rec["accounts"]} == {
        "sept": "neither:no_billing_activity",
        "viewer": "report_only:notification_only",
        "pushed": "neither:notification_only",
        "admin": "invoice_only:active_full_month",
        "both": "in_both",
        "new": "report_only:created_mid_month",
        "guest": "report_only:guest",
    }
    assert (rec["in_report"], rec["on_invoice"]) == (4, 2)


# Late events after a close ------------------------------------------------------------------------------


def test_events_of_a_closed_month_that_arrive_after_its_close_amend_the_decisions(tmp_path):
    """Given October closed by the worker, when October events arrive afterwards (a deactivation,
    a first billing activity, a plan change and a trial effective on day 1, a nonprofit verified
    before the month, the first registration of a company, naming another zone), then the worker amends exactly the
    decisions they change (version 2, `late_event`) and ends equal to the batch over all events."""
    on_time = World()
    on_time.company("a").member("a", "ann").member("a", "bob").do("login", "a", "ann", "2026-10-05")
    on_time.company("b").member("b", "bea").do("login", "b", "bea", "2026-10-05")
    on_time.company("c").member("c", "cid").do("login", "c", "cid", "2026-10-05")
    on_time.company("d").member("d", "dan").do("login", "d", "dan", "2026-10-05")
    on_time.member("e", "eve").do("login", "e", "eve", "2026-09-30T23:30:00Z")  # e registers late
    late = World()
    late._n = 1000
    late.deactivate("a", "ann", "2026-10-20").do("chat_use", "a", "bob", "2026-10-21")
    late.plan("b", "advanced", "2026-10-01T08:00:00Z")
    late.trial("c", "2026-10-01T08:00:00Z")
    late.nonprofit("d", "2026-09-15")
    late.event("company_registered", "e", "2020-01-01T00:00:00Z", timezone="Asia/Tokyo")
    everything = World()
    everything.raw = on_time.raw + late.raw
    marker = orjson.dumps(close_marker("2026-10", "oct", 4))
    messages = [orjson.dumps(e) for e in on_time.raw] + [marker] + [orjson.dumps(e) for e in late.raw]

    snapshots, dead, _ = simulate(messages, "2026-10")

    ref = decided(everything, "2026-10", tmp_path)
    assert dead == [] and diff(oracle(everything.raw, "2026-10"), latest_decisions(snapshots)) == []
    amended = {(m["company_id"], m["user_id"]) for m in snapshots if m.get("kind") == "decision" and m["version"] > 1}
    assert amended == {("a", "ann"), ("a", "bob"), ("b", "bea"), ("c", "cid"), ("d", "dan"), ("e", "eve")}
    assert {m["amend_reason"] for m in snapshots if m.get("kind") == "decision" and m["version"] > 1} == {"late_event"}
    assert outcome(ref[("a", "ann")]) == (False, False, "R1", "deactivated_in_month")
    assert outcome(ref[("a", "bob")]) == BILLED_PREMIUM
    assert outcome(ref[("b", "bea")]) == BILLED_INVITED
    assert outcome(ref[("c", "cid")]) == (True, False, "R6", "trial")
    assert outcome(ref[("d", "dan")]) == NONPROFIT_FREE
    assert outcome(ref[("e", "eve")]) == BILLED_PREMIUM  # 08:30 on 1 October in Tokyo


def test_a_company_that_first_appears_after_a_month_gets_no_invoice_for_it_on_any_path(tmp_path):
    """Given a company whose first event is on 2 November, when October closes after it arrived
    (a close runs days after the month, the grace for late publishers), then neither `seatledger
    invoice` nor the worker issues it an October invoice, and the worker's partition reports count
    exactly the companies it issued invoices to (the sink completes the month on those counts)."""
    w = World().company("old", plan="advanced").member("old", "ann")
    w.company("new", plan="advanced", at="2026-11-02T09:00:00Z").member("new", "nia", at="2026-11-02T09:00:00Z")
    w.company("guest-home", at="2026-11-03T09:00:00Z")
    w.invite("old", "gus", "2026-10-20", guest_home_company_id="guest-home")  # guest-home exists in October (R5)

    assert sorted(invoices(w, "2026-10", tmp_path)) == ["guest-home", "old"]
    path = tmp_path / "events.ndjson"  # asked for alone, it has no October invoice either
    one = CliRunner().invoke(
        app, ["invoice", "--events", path, "--month", "2026-10", "--company", "new", "--format", "json"]
    )
    assert (one.exit_code, orjson.loads(one.stdout)) == (0, [])
    snapshots, _, _ = simulate([orjson.dumps(e) for e in w.raw], "2026-10")
    issued: dict[int, set[str]] = {}
    for m in snapshots:
        if m.get("kind") == "company_month":
            issued.setdefault(m["partition"], set()).add(m["company_id"])
    reported = {m["partition"]: m["companies"] for m in snapshots if m.get("kind") == "partition_done"}
    assert {p: len(issued.get(p, set())) for p in reported} == reported


def test_a_company_first_seen_after_a_closed_month_gets_no_invoice_for_it_from_late_event_amendments(tmp_path):
    """Given September closed, when a company's first event arrives dated 1 October 00:00 UTC (it
    could still be September in a zone behind UTC, so the worker looks at September again), then
    September gets no invoice for it, as in `seatledger invoice`."""
    w = World().company("old", plan="advanced").member("old", "ann")
    w.do("visit", "newco", "nia", "2026-10-01T00:00:00Z")
    messages = [orjson.dumps(close_marker("2026-09", "sep", 4))] + [orjson.dumps(e) for e in w.raw]

    snapshots, _, _ = simulate(messages, "2026-09")

    assert sorted(invoices(w, "2026-09", tmp_path)) == ["old"]
    assert {m["company_id"] for m in snapshots if m.get("kind") == "company_month" and m["month"] == "2026-09"} == {
        "old"
    }
