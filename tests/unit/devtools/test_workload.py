"""The workload generator (devtools.workload and `seatledger generate`): coverage, validity,
determinism, and the edge cases the billing rules need to see."""

from __future__ import annotations

import io
from calendar import monthrange
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from typer.testing import CliRunner

from devtools.workload import Workload, format_offset, format_z, iter_events, write_ndjson
from schemas.decode import validate_event
from schemas.events import ACCOUNT_TYPES, ACTIVITY_TYPES, COMPANY_TYPES, EVENT_MODELS, parse_rfc3339
from seatledger.cli import app

MONTH = "2026-10"
BILLING_ACTIVITY = {"login", "visit", "admin_panel_use", "chat_use"}
NOTIFICATIONS = {"notification_view", "push_notification_received", "email_notification_received"}


def _ndjson(*args, **kwargs) -> bytes:
    buf = io.BytesIO()
    write_ndjson(iter_events(*args, **kwargs), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def raw() -> bytes:
    # 2 generated months so a trial can end on day 1 of the second one
    return _ndjson(14, 1500, MONTH, months=2, seed=7)


@pytest.fixture(scope="module")
def events(raw) -> list[dict]:
    return [orjson.loads(line) for line in raw.splitlines()]


@pytest.fixture(scope="module")
def zones(events) -> dict[str, ZoneInfo]:
    return {e["company_id"]: ZoneInfo(e.get("timezone", "UTC")) for e in events if e["type"] == "company_registered"}


def _local(ev: dict, zones) -> datetime:
    return parse_rfc3339(ev["occurred_at"]).astimezone(zones[ev["company_id"]])


def _is_last_day(d: date) -> bool:
    return d.day == monthrange(d.year, d.month)[1]


# -- contract -------------------------------------------------------------------------------------


def test_every_event_kind_of_the_contract_appears(events):
    assert set(Counter(e["type"] for e in events)) == set(EVENT_MODELS)


def test_every_line_passes_the_contract_validation(raw):
    lines = raw.splitlines()
    assert len(lines) > 10_000
    for line in lines:
        validate_event(orjson.loads(line))


def test_ids_match_the_identifier_alphabet_and_user_ids_are_unique_per_company(events):
    owner: dict[str, str] = {}
    for e in events:
        assert e["company_id"].startswith("c-")
        if "user_id" in e:
            assert owner.setdefault(e["user_id"], e["company_id"]) == e["company_id"]
    assert len(owner) > 1000


def test_timestamps_carry_offsets_mostly_z_and_some_local(events):
    suffixes = Counter("Z" if e["occurred_at"].endswith("Z") else e["occurred_at"][-6:] for e in events)
    z = suffixes.pop("Z")
    assert z > sum(suffixes.values()) > 0
    assert len(suffixes) >= 2  # several different local offsets


def test_offset_formatting_keeps_the_instant():
    t = 1_790_000_000
    utc = parse_rfc3339(format_z(t))
    for off in (0, 19800, 20700, -12600, 46800, -18000):
        assert parse_rfc3339(format_offset(t, off)) == utc


# -- determinism ------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_output():
    assert _ndjson(6, 400, MONTH, seed=3) == _ndjson(6, 400, MONTH, seed=3)


def test_different_seed_gives_different_output():
    assert _ndjson(6, 400, MONTH, seed=3) != _ndjson(6, 400, MONTH, seed=4)


def test_company_sizes_are_skewed_sum_to_the_accounts_and_are_at_least_one():
    sizes = Workload(40, 4000, MONTH, seed=1).sizes
    assert sum(sizes) == 4000 and min(sizes) >= 1
    ordered = sorted(sizes, reverse=True)
    assert sum(ordered[:8]) > sum(ordered[8:])  # the biggest fifth holds most accounts


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        Workload(5, 4, MONTH)
    with pytest.raises(ValueError):
        Workload(1, 1, "2026-13")


# -- companies --------------------------------------------------------------------------------------


def test_each_company_starts_with_company_registered(events):
    first: dict[str, tuple[datetime, str]] = {}
    for e in events:
        t = parse_rfc3339(e["occurred_at"])
        if e["company_id"] not in first or t < first[e["company_id"]][0]:
            first[e["company_id"]] = (t, e["type"])
    assert len(first) == 14
    assert all(kind == "company_registered" for _, kind in first.values())


def test_companies_span_time_zones_with_odd_offsets(events):
    tz = {e["timezone"] for e in events if e["type"] == "company_registered"}
    assert {"Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Australia/Adelaide"} <= tz
    assert len(tz) >= 10


def test_plans_include_the_premium_default_and_changes_on_day_1_and_day_2(events, zones):
    with_plan = {e["company_id"] for e in events if e["type"] == "plan_changed"}
    assert len(zones) > len(with_plan)  # some companies never send plan_changed: premium
    local_days = {
        _local(e, zones).day
        for e in events
        if e["type"] == "plan_changed" and _local(e, zones).strftime("%Y-%m") >= MONTH
    }
    assert {1, 2} <= local_days


def test_trials_default_and_explicit_ending_on_a_last_day_and_on_a_day_1(events):
    trials = [e for e in events if e["type"] == "trial_started"]
    assert any("last_trial_day" not in e for e in trials)
    ends = [date.fromisoformat(e["last_trial_day"]) for e in trials if "last_trial_day" in e]
    assert any(_is_last_day(d) for d in ends)
    assert any(d.day == 1 for d in ends)
    assert any(d.day > 1 and not _is_last_day(d) for d in ends)


def test_nonprofits_valid_malformed_excluded_and_revoked(events):
    verified = [e for e in events if e["type"] == "nonprofit_verified"]
    tokens = [e["techsoup_token"] for e in verified]
    assert any(
        "@" in t and t.replace("@", "").replace(".", "").replace("_", "").replace("-", "").isalnum() for t in tokens
    )
    assert any(" " in t for t in tokens) and any("!" in t for t in tokens)
    assert "religious" in {e["organization_type"] for e in verified}
    assert any(e["type"] == "nonprofit_revoked" for e in events)


def test_billing_profiles_include_amex_in_brazil_invoice_and_a_cleared_po(events):
    profiles = [e for e in events if e["type"] == "billing_profile_updated"]
    assert any(e.get("card_brand") == "amex" and e.get("billing_country") == "BR" for e in profiles)
    assert any(e.get("payment_method") == "invoice" and e.get("po_number") for e in profiles)
    assert any("po_number" in e and e["po_number"] is None for e in profiles)


# -- accounts ---------------------------------------------------------------------------------------


def test_employment_mix_and_frontline_and_desk_profiles(events):
    employment = {e.get("employment", "employee") for e in events if e["type"] == "account_provisioned"}
    assert employment == {"employee", "contractor", "volunteer", "other"}
    updates = [e for e in events if e["type"] == "profile_update"]
    assert {"customer_facing", "backstage", "public_service", "medical", "other"} <= {
        e["role_category"] for e in updates if "role_category" in e
    }
    assert any(e.get("has_email") is False for e in updates)
    assert any(e.get("hourly_paid") is True for e in updates)
    assert any(e.get("away_from_desk_pct", 0) >= 50 for e in updates)
    assert any(e.get("away_from_desk_pct", 100) < 50 for e in updates)
    assert any(
        len(set(e) & {"employment", "away_from_desk_pct", "hourly_paid", "has_email", "role_category"}) == 1
        for e in updates
    )  # partial updates


def test_most_accounts_exist_before_the_generated_month_and_some_are_never_invited(events):
    start = datetime(2026, 10, 1, tzinfo=ZoneInfo("UTC")) - timedelta(days=1)
    created: dict[str, datetime] = {}
    invited = set()
    for e in events:
        if e["type"] in ("account_provisioned", "invite", "claim"):
            t = parse_rfc3339(e["occurred_at"])
            created[e["user_id"]] = min(t, created.get(e["user_id"], t))
        if e["type"] in ("invite", "claim"):
            invited.add(e["user_id"])
    assert sum(t < start for t in created.values()) > 0.7 * len(created)
    assert len(invited) < len(created)


def test_invites_on_day_1_and_mid_month_in_local_time(events, zones):
    days = Counter(
        _local(e, zones).day for e in events if e["type"] == "invite" and _local(e, zones).strftime("%Y-%m") >= MONTH
    )
    assert days[1] > 0 and sum(n for d, n in days.items() if 5 <= d <= 25) > 0


def test_deactivations_mid_month_on_a_last_day_and_on_a_day_1_and_some_reactivations(events, zones):
    local = [_local(e, zones).date() for e in events if e["type"] == "deactivate"]
    assert any(_is_last_day(d) for d in local)
    assert any(d.day == 1 for d in local)
    assert any(5 <= d.day <= 25 for d in local)
    assert any(e["type"] == "reactivate" for e in events)


def test_guest_invites_name_known_and_unknown_home_companies(events):
    companies = {e["company_id"] for e in events}
    homes = [(e["company_id"], e["guest_home_company_id"]) for e in events if "guest_home_company_id" in e]
    known = [h for c, h in homes if h in companies]
    unknown = [h for c, h in homes if h not in companies]
    assert known and unknown
    assert all(c != h for c, h in homes)


def test_guest_home_companies_registered_before_the_invite(events):
    registered = {e["company_id"]: parse_rfc3339(e["occurred_at"]) for e in events if e["type"] == "company_registered"}
    for e in events:
        home = e.get("guest_home_company_id")
        if home in registered:
            assert registered[home] < parse_rfc3339(e["occurred_at"])


# -- activity ---------------------------------------------------------------------------------------


def test_activity_is_skewed_heavy_light_dormant_notification_only_admin_only(events):
    kinds: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        if e["type"] in ACCOUNT_TYPES:
            kinds[e["user_id"]]
        elif e["type"] in ACTIVITY_TYPES and e["occurred_at"].startswith(MONTH):
            kinds[e["user_id"]][e["type"]] += 1
    totals = sorted(sum(c.values()) for c in kinds.values())
    n = len(totals)
    assert totals[-1] > 200  # heavy users: hundreds a month
    assert totals[n // 2] < 60  # the median user is far lighter
    assert sum(t == 0 for t in totals) > 0.1 * n  # dormant
    assert any(c and set(c) <= NOTIFICATIONS for c in kinds.values())  # notification-only
    assert any(c and set(c) == {"admin_panel_use"} for c in kinds.values())  # admin-only
    assert any(c["chat_use"] > 10 for c in kinds.values())
    channels = {e.get("channel") for e in events if e["type"] in ("visit", "notification_view")}
    assert {"web", "mobile", None} <= channels


def test_average_events_per_account_per_month_is_in_the_expected_band():
    n = sum(1 for e in iter_events(10, 1500, MONTH, seed=11) if e["occurred_at"].startswith(MONTH))
    assert 30 <= n / 1500 <= 70


def test_no_activity_before_the_claim_or_after_a_deactivation(events):
    by_user: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for e in events:
        if "user_id" in e:
            by_user[e["user_id"]].append((parse_rfc3339(e["occurred_at"]), e["type"]))
    for evs in by_user.values():
        active = False
        for _, kind in sorted(evs, key=lambda x: x[0]):
            if kind in ("claim", "reactivate"):
                active = True
            elif kind == "deactivate":
                active = False
            elif kind in ACTIVITY_TYPES:
                assert active, evs


def test_boundary_events_just_before_and_after_local_midnight_of_month_ends(events, zones):
    before = after = 0
    for e in events:
        if e["type"] not in ACTIVITY_TYPES or zones[e["company_id"]].key == "UTC":
            continue
        loc = _local(e, zones)
        utc_date = parse_rfc3339(e["occurred_at"]).astimezone(ZoneInfo("UTC")).date()
        if _is_last_day(loc.date()) and loc.hour == 23 and loc.minute == 59 and loc.second >= 30:
            before += utc_date != loc.date()
        if loc.day == 1 and loc.hour == 0 and loc.minute == 0:
            after += utc_date != loc.date()
    assert before > 0 and after > 0


# -- delivery ---------------------------------------------------------------------------------------


def test_exact_duplicates_are_redelivered_with_the_same_content(raw):
    lines = raw.splitlines()
    by_id: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        by_id[orjson.loads(line)["event_id"]].append(line)
    dups = [v for v in by_id.values() if len(v) > 1]
    assert dups and all(len(set(v)) == 1 and len(v) == 2 for v in dups)
    assert len(dups) < 0.01 * len(lines)


def test_output_is_roughly_time_ordered_with_a_few_late_events(events):
    times = [parse_rfc3339(e["occurred_at"]) for e in events]
    late = minutes_late = days_late = 0
    high = times[0]
    for t in times:
        if t < high:
            late += 1
            minutes_late += high - t > timedelta(minutes=1)
            days_late += high - t > timedelta(days=1)
        else:
            high = t
    assert 0 < late < 0.02 * len(times)
    assert minutes_late > 0 and days_late > 0


def test_company_kinds_have_no_user_and_account_kinds_have_one(events):
    for e in events:
        assert ("user_id" in e) == (e["type"] not in COMPANY_TYPES)


# -- CLI --------------------------------------------------------------------------------------------


def test_cli_generate_writes_ndjson_to_a_file_and_prints_stats(tmp_path):
    out = tmp_path / "w.ndjson"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--companies",
            "3",
            "--accounts",
            "60",
            "--month",
            MONTH,
            "--seed",
            "5",
            "--out",
            str(out),
            "--stats",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert lines and all(validate_event(orjson.loads(line)) for line in lines)
    assert out.read_bytes() == _ndjson(3, 60, MONTH, seed=5)
    assert "company_registered" in result.stderr and "total" in result.stderr


def test_cli_generate_writes_to_stdout_without_out():
    result = CliRunner().invoke(app, ["generate", "--companies", "2", "--accounts", "10", "--month", MONTH])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == _ndjson(2, 10, MONTH, seed=0)


def test_cli_generate_refuses_fewer_accounts_than_companies():
    result = CliRunner().invoke(app, ["generate", "--companies", "5", "--accounts", "2", "--month", MONTH])
    assert result.exit_code != 0


def test_the_bytes_fast_path_writes_exactly_what_iter_events_and_write_ndjson_write():
    buf = io.BytesIO()
    n = Workload(5, 300, MONTH, seed=2).write(buf)
    assert buf.getvalue() == _ndjson(5, 300, MONTH, seed=2)
    assert n == buf.getvalue().count(b"\n")
