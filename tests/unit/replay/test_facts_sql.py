"""The DuckDB fact builder (replay.facts_sql) equals the reference fold (facts.fold_all)."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from projections.calendar import Month, zone
from projections.facts import fold_all
from replay import facts_sql as batch
from replay import verify
from replay.archive.layout import ARCHIVE_SCHEMA
from replay.events_source import load_events
from replay.facts_sql import build_facts, zone_segments
from replay.month import run_month
from replay.rows import event_row, rows_to_table
from schemas.decode import validate_event
from tests.support.given import World


def table_of(events):
    return rows_to_table([event_row(e) for e in events])


def assert_same_facts(events, companies=None):
    got = build_facts(duckdb.connect(), table_of(events), companies=companies)
    ref = fold_all(events)
    if companies is not None:
        keep = set(companies)
        ref.companies = {c: v for c, v in ref.companies.items() if c in keep}
        ref.accounts = {k: v for k, v in ref.accounts.items() if k[0] in keep}
        ref.activity = {k: v for k, v in ref.activity.items() if k[0] in keep}
    assert got.companies == ref.companies
    assert got.accounts == ref.accounts
    assert got.activity == ref.activity
    return got


def rich_world() -> World:
    w = World()
    w.company("ams", tz="Europe/Amsterdam", plan="advanced").company("la", tz="America/Los_Angeles")
    w.company("ktm", tz="Asia/Kathmandu").nonprofit("ktm", "2026-09-01", token="bad token").billing(
        "ktm", "2026-09-02", payment_method="card", card_brand="amex", billing_country="BR", po_number="PO-1"
    )
    w.trial("la", "2026-09-19").trial("ams", "2026-09-01", last_trial_day="2026-10-31")
    for cid in ("ams", "la", "ktm", "unreg"):
        w.member(cid, "ann", employment="contractor").profile(
            cid, "ann", "2026-09-03", hourly_paid=True, away_from_desk_pct=70, role_category="medical"
        )
        w.profile(cid, "ann", "2026-09-04", employment=None)
        for at in (
            "2026-09-30T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T22:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-09-30T18:15:00Z",
        ):
            for kind in ("login", "notification_view", "push_notification_received", "admin_panel_use"):
                w.do(kind, cid, "ann", at)
        w.do("visit", cid, "bob", "2026-10-05", channel="mobile").deactivate(cid, "bob", "2026-10-06").reactivate(
            cid, "bob", "2026-10-07"
        )
        w.invite(cid, "gus", "2026-10-03", guest_home_company_id="newco")
    w.event(
        "trial_started",
        "newco",
        "2026-10-03T12:00:00Z",
        event_id="derived-trial:x1",
        source="seatledger.R5",
        guest_of="ams",
    )
    return w


def test_builder_equals_fold_all_on_zones_dst_days_records_and_guests():
    facts = assert_same_facts(rich_world().events)
    assert facts.company("newco").guest_invites  # R5 candidates reached the home company
    assert facts.company("ktm").timezone_name == "Asia/Kathmandu"


def test_builder_restricted_to_companies_equals_fold_all_restricted():
    assert_same_facts(rich_world().events, companies=["ams", "newco"])


def test_ties_in_the_same_microsecond_are_broken_by_event_id_then_type():
    w = World().company("acme", tz="Europe/Amsterdam")
    for eid, kind in (
        ("z9", "login"),
        ("a1", "visit"),
        ("m5", "chat_use"),
        ("b2", "push_notification_received"),
        ("a0", "email_notification_received"),
    ):
        w.do(kind, "acme", "ann", "2026-10-05T10:00:00Z", event_id=eid)
    facts = assert_same_facts(w.events)
    act = next(iter(facts.activity.values()))
    assert act.first_bill[1] == "a1" and act.first_notify[1] == "a0"


def test_records_keep_the_first_of_conflicting_duplicates_in_input_order():
    w = World().company("acme")
    w.profile("acme", "ann", "2026-10-05", event_id="dup", hourly_paid=True)
    w.profile("acme", "ann", "2026-10-05", event_id="dup", hourly_paid=False)
    facts = assert_same_facts(w.events)
    assert facts.accounts[("acme", "ann")].records["dup"].get("hourly_paid") is True


def test_attr_values_keep_their_python_types():
    w = (
        World()
        .company("acme")
        .profile("acme", "ann", "2026-10-05", away_from_desk_pct=55, hourly_paid=False, has_email=True)
    )
    rec = next(iter(build_facts(duckdb.connect(), table_of(w.events)).accounts[("acme", "ann")].records.values()))
    assert dict(rec.attrs) == {"away_from_desk_pct": 55, "hourly_paid": False, "has_email": True}
    assert type(rec.get("away_from_desk_pct")) is int and type(rec.get("hourly_paid")) is bool


def test_many_transitions_use_the_asof_join_and_stay_exact(monkeypatch):
    monkeypatch.setattr(batch, "MAX_CASE_TRANSITIONS", 0)
    w = World().company("ams", tz="Europe/Amsterdam").company("la", tz="America/Los_Angeles")
    for m in range(1, 13):
        for cid in ("ams", "la"):
            w.do("login", cid, "ann", f"2026-{m:02d}-01T07:30:00Z").do(
                "visit", cid, "ann", f"2026-{m:02d}-28T23:30:00Z"
            )
    assert_same_facts(w.events)


def test_zone_segments_find_dst_transitions_to_the_second():
    segs = zone_segments("Europe/Amsterdam", 1_790_000_000_000_000, 1_794_000_000_000_000)
    # 2026-10-25T01:00:00Z: CEST (+2h) -> CET (+1h)
    assert segs[1:] == [(1_792_890_000_000_000, 3_600_000_000)]
    assert zone_segments("Asia/Kathmandu", 1_790_000_000_000_000, 1_794_000_000_000_000) == [(-(2**63), 20_700_000_000)]


def test_empty_input_gives_empty_facts():
    facts = build_facts(duckdb.connect(), table_of([]))
    assert (facts.companies, facts.accounts, facts.activity) == ({}, {}, {})


def test_parquet_archive_and_ndjson_give_the_same_decisions(tmp_path):
    w = rich_world()
    part = tmp_path / "archive" / "month=2026-10" / "bucket=03"
    part.mkdir(parents=True)
    pq.write_table(table_of(w.events), part / "part-x.parquet")
    (tmp_path / "archive" / "rejected").mkdir()
    nd = tmp_path / "events.ndjson"
    nd.write_text("".join(__import__("json").dumps(e) + "\n" for e in w.raw))
    a = run_month(str(tmp_path / "archive"), "2026-10")
    b = run_month(str(nd), "2026-10")
    assert [d.row() for d in a.decisions] == [d.row() for d in b.decisions]
    assert {c: i.to_json() for c, i in a.invoices.items()} == {c: i.to_json() for c, i in b.invoices.items()}


def test_ndjson_source_reports_invalid_lines_packed_arrays_and_conflicts(tmp_path):
    f = tmp_path / "e.ndjson"
    good = '{"event_id":"1","type":"login","occurred_at":"2026-10-02T08:00:00Z","company_id":"acme","user_id":"u1"}'
    conflict = '{"event_id":"1","type":"login","occurred_at":"2026-10-03T08:00:00Z","company_id":"acme","user_id":"u1"}'
    packed = '[{"event_id":"2","type":"claim","occurred_at":"2026-10-02T08:00:00Z","company_id":"acme","user_id":"u1"}, {"event_id":"3","type":"nope"}]'
    f.write_text(
        "\n".join(
            [
                good,
                "not json",
                good,
                conflict,
                packed,
                '{"event_id":"4","type":"login","occurred_at":"2026-10-02T08:00:00","company_id":"acme","user_id":"u1"}',
            ]
        )
        + "\n"
    )
    loaded = load_events(duckdb.connect(), str(f))
    assert loaded.rows == 2 and loaded.duplicates == 1 and loaded.conflict_count == 1
    assert [(i.line, i.index) for i in loaded.invalid] == [(2, None), (5, 1), (6, None)]
    assert "unknown event type 'nope'" in loaded.invalid[1].reason
    assert "offset" in loaded.invalid[2].reason


def workload_events(companies, accounts, month, months, seed):
    wl = pytest.importorskip("devtools.workload", reason="the workload generator (devtools.workload) is not there yet")
    if not hasattr(wl, "iter_events"):
        pytest.skip("devtools.workload has no iter_events yet")
    return [validate_event(e) for e in wl.iter_events(companies, accounts, month, months, seed)]


@pytest.mark.parametrize("seed", [1, 2])
def test_builder_equals_fold_all_on_the_workload_generator(seed):
    assert_same_facts(workload_events(12, 300, "2026-10", 2, seed))


# Cost and exactness of the zone offsets (issue 10) -----------------------------------------------


def _hourly_transitions(zone_name: str, year: int) -> list[tuple[int, int]]:
    """The reference: an hourly scan of the year, each change bisected to the second."""
    from replay.facts_sql import _YEAR_S, _offset_us

    tz = zone(zone_name)
    t, end = _YEAR_S[year], _YEAR_S[year + 1]
    cur, out = _offset_us(tz, t * 1_000_000), []
    while t < end:
        nxt = min(t + 3600, end)
        if _offset_us(tz, nxt * 1_000_000) != cur:
            a, b = t, nxt
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if _offset_us(tz, mid * 1_000_000) == cur else (a, mid)
            cur = _offset_us(tz, b * 1_000_000)
            out.append((b * 1_000_000, cur))
        t = nxt
    return out


@pytest.mark.parametrize(
    ("zone_name", "year"),
    [("Asia/Gaza", 2040), ("Asia/Hebron", 2040), ("America/Boa_Vista", 2000), ("America/Noronha", 2000),
     ("America/Argentina/Tucuman", 2004), ("Europe/Amsterdam", 2026), ("Australia/Lord_Howe", 2026)],
)  # fmt: skip
def test_year_transitions_find_the_closest_transitions_tzdata_has(zone_name, year):
    """Transitions are probed every TRANSITION_STEP_S: exact while no two are closer. These are the
    zone-years where they are closest between 2000 and 2100 (6.96 days, tzdata 2026f)."""
    assert list(batch.year_transitions(zone_name, year)) == _hourly_transitions(zone_name, year)


def test_the_cost_of_zone_offsets_does_not_grow_with_far_apart_dates(monkeypatch):
    """The issue's probe: two activity events dated 2000 and 2099 from a company nobody
    registered used to make every zone walk the century day by day."""
    calls = []
    real = batch._offset_us
    monkeypatch.setattr(batch, "_offset_us", lambda tz, us: calls.append(us) or real(tz, us))

    def probes(events) -> int:
        batch.year_transitions.cache_clear()
        calls.clear()
        build_facts(duckdb.connect(), table_of(events))
        return len(calls)

    w = (
        World()
        .company("ams", tz="Europe/Amsterdam")
        .company("la", tz="America/Los_Angeles")
        .company("np", tz="Asia/Kathmandu")
    )
    for cid in ("ams", "la", "np"):
        w.member(cid, "ann").do("login", cid, "ann", "2026-10-05")
    base = probes(w.events)
    w.do("login", "nobody", "x", "2000-01-01T00:00:00Z").do("login", "nobody", "x", "2099-12-31T23:59:59Z")
    assert probes(w.events) == base
    w.do("login", "ams", "ann", "2000-01-01T00:00:00Z").do("login", "ams", "ann", "2099-12-31T23:59:59Z")
    assert probes(w.events) < base + 3 * 25_000  # those years once for this zone, at a fixed cost per year
    assert_same_facts(w.events)


def test_archive_rows_today_s_contract_refuses_are_left_out_and_reported(tmp_path):
    """An archive written before these rules may hold a host zone or an instant in year 9999: the
    batch path leaves those rows out, says how many and why, and bills the rest."""
    w = World().company("acme", tz="Europe/Amsterdam", plan="advanced").member("acme", "ann")
    rows = [event_row(e) for e in w.events]
    old = validate_event(w.raw[0] | {"company_id": "old", "event_id": "tz"})
    rows.append((*event_row(old)[:5], '{"timezone":"right/Europe/Amsterdam"}', *event_row(old)[6:]))
    rows.append(("far", "login", 253_402_300_799_000_000, "acme", "ann", None, None, None))  # 9999-12-31
    rows.append(("a\nb", "login", 1_790_000_000_000_000, "acme", "ann", None, None, None))
    part = tmp_path / "archive" / "month=2026-10" / "bucket=03"
    part.mkdir(parents=True)
    archived = [(*r, 1_790_000_000_000_000, 1_790_000_000_000_001) for r in rows]  # published, archived at
    pq.write_table(rows_to_table(archived, ARCHIVE_SCHEMA), part / "part-x.parquet")
    loaded = load_events(duckdb.connect(), str(tmp_path / "archive"))
    assert loaded.rows == len(rows) - 2 and loaded.invalid_count == 2  # the old id "a\nb" bills no one differently
    assert [str(i) for i in loaded.invalid] == [
        "<parquet archive>: 1 row(s): occurred_at is outside the accepted range "
        "[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z) (e.g. event_id 'far')",
        "<parquet archive>: 1 row(s): timezone is not a zone of the shipped tzdata (e.g. event_id 'tz')",
    ]
    res = run_month(loaded, "2026-10", with_mau=False)
    assert [(d.user_id, d.billable) for d in res.decisions] == [("ann", True)]
    facts, n = verify.archive_facts(tmp_path / "archive", Month(2026, 11))  # verify and dispute leave them out too
    assert n == len(rows) - 2 and set(facts.companies) == {"acme"}
