"""The close decides from the stored values in bulk (streams.stored_decide); its messages must be
byte for byte what the per-account path makes: `decide_account` on the decoded facts, then
`orjson.dumps(decision_message(...))`, the invoice from those decisions and the MAU from the
projection, for a close and for the amendments a late event causes.

Random facts with many accounts over few instants (the strategies of test_bulk_decide), so that
accounts share stored keys and templates with their own evidence; companies with and without a
registration (activity waiting in `pending`), both rule sets."""

from __future__ import annotations

from datetime import datetime
from unittest.mock import patch

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.calendar import Month, to_us, zone
from projections.decide import company_known_by, company_month, decide_account, evidence_json, known_by
from projections.facts import MonthActivity
from projections.invoice import build_invoice
from projections.mau import in_report, mau_daily, months_needed
from projections.rulesets import RULESETS, RuleSet
from projections.snapshots import checksum_of_digests, company_month_message, decision_message
from schemas.decode import validate_event
from streams.close import Closer
from streams.state import SEP, FoldState, Stores, decode_account
from streams.stored_decide import evidence_of
from tests.support.given import PRICES
from tests.support.snapshot_messages import snapshot_messages
from tests.unit.projections.test_bulk_decide import COMPANIES, INSTANTS, USERS, a_company_event, an_account_event

NOW = "2026-11-02T00:00:00.000Z"
INSTANTS_US = [to_us(datetime.fromisoformat(i.replace("Z", "+00:00"))) for i in INSTANTS]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def events_of_many_accounts(draw, min_size: int = 1):
    """Valid events of a few companies (each may lack its registration) and their accounts. Half
    the time each company's accounts draw their events from a small palette at any of the
    instants: accounts of one stored key with other evidence, and keys a bucket apart, meet."""
    raw = []
    palette = draw(st.booleans())
    for cid in COMPANIES:
        raw += draw(st.lists(a_company_event(cid), max_size=4))
        kinds = draw(st.lists(an_account_event(cid, ""), min_size=1, max_size=3))
        for uid in USERS[: draw(st.integers(1, len(USERS)))]:
            if palette:
                picks = draw(st.lists(st.sampled_from(kinds), min_size=min_size, max_size=4))
                raw += [{**e, "user_id": uid, "occurred_at": draw(st.sampled_from(INSTANTS))} for e in picks]
            else:
                raw += draw(st.lists(an_account_event(cid, uid), min_size=min_size, max_size=4))
    ids = draw(
        st.lists(st.text("abcdef0123", min_size=6, max_size=6), min_size=len(raw), max_size=len(raw), unique=True)
    )
    events = [{"event_id": i, **e} for i, e in zip(ids, raw, strict=True)]
    for e in events:
        validate_event(e)  # every one valid: the fold must take them all
    return events


def history(state: FoldState, cid: str, uid: str, month: Month) -> dict[Month, MonthActivity | None]:
    """The user's activity in the months a report window reaches, waiting activity merged in."""
    pend = state.pending_activity(cid) if not state.company(cid).registered else {}
    out: dict[Month, MonthActivity | None] = {}
    for m in months_needed(month):
        a = state.activity_of(cid, uid, str(m))
        p = pend.get((uid, str(m)))
        out[m] = p if a is None else a if p is None else a.merge(p)
    return out


def reference(state: FoldState, cid: str, month: Month, rs: RuleSet) -> tuple[list, dict, dict]:
    """(the decisions, each user's report history, the company month) of the per-account path."""
    cm = company_month(cid, state.company(cid), month)
    prefix = cid + SEP
    decisions, hists = [], {}
    for key in sorted(k for k in state.s.accounts.raw if k.startswith(prefix)):
        uid = key[len(prefix) :]
        acc = decode_account(state.s.accounts.raw[key])
        if not known_by(acc, cm.bounds.end_us):
            continue
        hists[uid] = history(state, cid, uid, month)
        decisions.append(decide_account(cm, uid, acc, hists[uid][month], PRICES, rs))
    return decisions, hists, cm


@SETTINGS
@given(events_of_many_accounts(), st.sampled_from(sorted(RULESETS)), st.sampled_from(["2026-09", "2026-10", "2026-11"]))
def test_a_close_emits_the_bytes_of_the_per_account_path(events, version, month_s):
    """One message per decision (`blocks=False`): the bytes of decision_message of each; in
    decision_block messages (the default): exactly those messages once expanded. The blocks' run
    writes every company's evidence as a column (streams.evidence_column), however few accounts."""
    rs, month = RULESETS[version], Month.parse(month_s)
    state = FoldState(Stores(), 1)
    state.fold_items(events, 0)
    expected, digests = [], []
    for cid in sorted(state.s.companies.raw):
        decisions, hists, cm = reference(state, cid, month, rs)
        if not company_known_by(state.company(cid), cm.bounds.end_us):
            continue  # it first appeared after the month: no invoice for it
        for d in decisions:
            msg = decision_message(
                d, version=1, in_report=in_report(month, hists[d.user_id]), close_id="", partition=0, emitted_at=NOW
            )
            expected.append(orjson.dumps(msg))
            digests.append(msg["digest"])
        inv = build_invoice(cm, decisions).to_json()
        expected.append(orjson.dumps(company_month_message(inv, mau_daily(month, hists), partition=0, emitted_at=NOW)))
    with patch("streams.close._now", lambda: NOW):
        got = [v for _, v, _ in Closer(state, PRICES, rs, blocks=False).close(0, month_s)]
        state = FoldState(Stores(), 1)  # the same facts, nothing emitted yet
        state.fold_items(events, 0)
        with patch("streams.evidence_column.COLUMN_MIN", 0):
            in_blocks = [v for _, v, _ in Closer(state, PRICES, rs).close(0, month_s)]
    assert got[:-1] == expected
    expanded = [m for v in in_blocks[:-1] for m in snapshot_messages(v)]
    assert [orjson.dumps(m) for m in expanded] == expected
    for raw in (got[-1], in_blocks[-1]):
        done = orjson.loads(raw)
        assert (done["kind"], done["accounts"], done["checksum"]) == (
            "partition_done",
            len(digests),
            checksum_of_digests(digests),
        )


@SETTINGS
@given(events_of_many_accounts(), events_of_many_accounts(min_size=0), st.sampled_from(sorted(RULESETS)))
def test_amendments_after_late_events_are_the_bytes_of_the_per_account_path(events, late, version):
    """A late event re-decides the accounts it touched: every decision emitted again is the
    per-account decision with the next version; the others keep the digest emitted before."""
    rs, month_s = RULESETS[version], "2026-10"
    month = Month.parse(month_s)
    state = FoldState(Stores(), 1)
    closer = Closer(state, PRICES, rs)
    state.on_new_account = closer.account_seen
    state.fold_items(events, 0)
    last: dict[tuple[str, str], dict] = {}
    with patch("streams.close._now", lambda: NOW):
        for _, v, _ in closer.close(0, month_s):
            for msg in snapshot_messages(v):
                if msg["kind"] == "decision":
                    last[(msg["company_id"], msg["user_id"])] = msg
        for item in late:
            res = state.fold_items([item], 0)
            for aff in res.affected.values():
                for _, v, _ in closer.recompute(0, aff):
                    msg = orjson.loads(v)
                    if msg["kind"] != "decision":
                        continue
                    decisions, hists, _ = reference(state, msg["company_id"], month, rs)
                    d = next(d for d in decisions if d.user_id == msg["user_id"])
                    prev = last.get((d.company_id, d.user_id))
                    want = decision_message(
                        d, version=1 if prev is None else prev["version"] + 1,
                        corrects_version=None if prev is None else prev["version"], amend_reason="late_event",
                        in_report=in_report(month, hists[d.user_id]), close_id="", partition=0, emitted_at=NOW,
                    )  # fmt: skip
                    assert v == orjson.dumps(want)
                    last[(d.company_id, d.user_id)] = want
    for cid in {c for c, _ in last}:
        decisions, hists, _ = reference(state, cid, month, rs)
        for d in decisions:
            want = decision_message(d, version=1, in_report=in_report(month, hists[d.user_id]))
            assert last[(cid, d.user_id)]["digest"] == want["digest"]


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.sampled_from(INSTANTS_US), st.sampled_from(["e1", "e2", 'e"3']), st.sampled_from(["login", "invite"])
        ),
        min_size=0,
        max_size=4,
    ),
    as_lists=st.booleans(),
    zone_name=st.sampled_from(["UTC", "Europe/Amsterdam", "Asia/Kathmandu"]),
)
def test_the_close_writes_the_evidence_text_of_present_items(items, as_lists, zone_name):
    """`evidence_of`'s one- and two-event paths are `evidence_json`, an event twice written once."""
    tz = zone(zone_name)
    given_items = [list(it) for it in items] if as_lists else items
    assert evidence_of(given_items, tz) == evidence_json(items, tz)


@SETTINGS
@given(events_of_many_accounts(), st.integers(0, 40))
def test_the_companies_with_activity_stay_those_of_the_table_as_events_are_folded(events, split):
    """The close looks up earlier months' activity only for companies with activity in that month
    (FoldState.companies_with_activity): read once, it must keep up with keys folded after it."""
    months = ["2026-08", "2026-09", "2026-10", "2026-11", "2026-12"]
    state = FoldState(Stores(), 1)
    state.fold_items(events[:split], 0)
    for m in months:
        state.companies_with_activity(m)  # read now, from the table
    state.fold_items(events[split:], 0)
    from_table: dict[str, set[str]] = {}
    for key in state.s.activity.raw:
        cid, _, month = key.split(SEP)
        from_table.setdefault(month, set()).add(cid)
    assert {m: state.companies_with_activity(m) for m in months} == {m: from_table.get(m, set()) for m in months}
