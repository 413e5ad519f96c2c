"""The worker's fold and close logic, in-process over dict stores, against the batch oracle."""

from __future__ import annotations

import random

import orjson
import pytest

from devtools.workload import iter_events
from projections.snapshots import checksum, checksum_of_digests, decision_from_row
from streams.state import FoldState, Stores, norm
from tests.support.worker_oracle import diff, latest_decisions, oracle, simulate

MONTH = "2026-10"


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return list(iter_events(5, 250, MONTH, seed=7))


@pytest.fixture(scope="module")
def expected(events) -> dict:
    return oracle(events, MONTH)


def _one_per_message(events):
    return [orjson.dumps(e) for e in events]


def _packed(events, size=300):
    by_company: dict[str, list] = {}
    for e in events:
        by_company.setdefault(e["company_id"], []).append(e)
    out = []
    for evs in by_company.values():
        out.extend(orjson.dumps(evs[i : i + size]) for i in range(0, len(evs), size))
    return out


def test_in_order_equals_oracle(events, expected):
    out, dead, _ = simulate(_one_per_message(events), MONTH)
    assert not dead
    assert diff(expected, latest_decisions(out)) == []
    assert all(m["version"] == 1 for m in out if m["kind"] == "decision")


def test_packed_equals_oracle(events, expected):
    out, dead, _ = simulate(_packed(events), MONTH)
    assert not dead
    assert diff(expected, latest_decisions(out)) == []


def test_shuffled_and_duplicated_equals_oracle(events, expected):
    rng = random.Random(3)
    msgs = _one_per_message(events) + _one_per_message(rng.sample(events, len(events) // 5))
    rng.shuffle(msgs)  # company_registered after activity, duplicates anywhere
    out, _, state = simulate(msgs, MONTH)
    assert diff(expected, latest_decisions(out)) == []
    assert not state.s.pending.raw  # every company registered: nothing left waiting


def test_late_deactivate_gives_one_amendment(events, expected):
    target = next(k for k, v in sorted(expected.items()) if v["billable"])
    cid, uid, _ = target
    late = {
        "event_id": "late-deact-1", "type": "deactivate", "occurred_at": "2026-10-15T12:00:00Z",
        "company_id": cid, "user_id": uid,
    }  # fmt: skip
    marker = orjson.dumps({"seatledger_control": "close_month", "month": MONTH, "close_id": "x", "partitions": 4})
    msgs = [*_packed(events), marker, orjson.dumps(late), orjson.dumps(late)]
    out, _, _ = simulate(msgs, MONTH)
    amendments = [m for m in out if m["kind"] == "decision" and m["version"] > 1]
    assert len(amendments) == 1
    a = amendments[0]
    assert (a["company_id"], a["user_id"], a["version"], a["corrects_version"], a["amend_reason"]) == (
        cid, uid, 2, 1, "late_event",
    )  # fmt: skip
    assert a["billable"] is False
    assert diff(oracle([*events, late], MONTH), latest_decisions(out)) == []
    cms = [m for m in out if m["kind"] == "company_month" and m["company_id"] == cid]
    assert [m["version"] for m in cms][-1] >= 1


def test_partition_done_counts_and_checksum(events, expected):
    out, _, _ = simulate(_packed(events), MONTH)
    done = [m for m in out if m["kind"] == "partition_done"]
    assert sorted(m["partition"] for m in done) == [0, 1, 2, 3]
    assert sum(m["accounts"] for m in done) == len(expected)
    decisions = [m for m in out if m["kind"] == "decision"]
    for d in done:
        mine = [decision_from_row(m) for m in decisions if m["partition"] == d["partition"]]
        assert d["checksum"] == checksum(mine)


def test_checksum_of_digests_matches_projection():
    from projections.snapshots import digest

    rows = [decision_from_row({**r, "plan": ""}) for r in list(oracle(iter_events(2, 40, MONTH), MONTH).values())]
    assert checksum_of_digests([digest(d) for d in rows]) == checksum(rows)


def test_values_survive_a_changelog_round_trip(events):
    """A recovered table holds JSON values: the state must see them as unchanged (no rewrites)."""
    state = FoldState(Stores(), 4)
    items = events[:3000]
    for e in items:
        state.fold_items([e], 0)
    for name in ("companies", "accounts", "activity", "pending"):
        kv = getattr(state.s, name)
        assert kv.raw == norm(kv.raw)
    writes = []
    for name in ("companies", "accounts", "activity", "pending"):
        getattr(state.s, name)._write = lambda k, v, n=name: writes.append((n, k))
    for name in ("companies", "accounts", "activity", "pending"):  # as recovered from the changelog
        getattr(state.s, name).raw = norm(getattr(state.s, name).raw)
    state.reset_caches()
    res = state.fold_items(items, 0)
    assert writes == [] and res.changed == 0 and res.duplicates == len(items)


def test_fast_mau_equals_projection():
    from projections.calendar import Month
    from projections.facts import MonthActivity
    from projections.mau import mau_daily
    from streams.close import mau_daily_fast

    rng = random.Random(1)
    for month in (Month(2026, 10), Month(2026, 3), Month(2024, 3), Month(2026, 1)):
        hist_months = [month.prev().prev(), month.prev(), month]
        users = {}
        for u in range(60):
            h = {}
            for m in hist_months:
                if rng.random() < 0.7:
                    bits = 0
                    for _ in range(rng.randrange(0, 4)):
                        bits |= 1 << rng.randrange(m.days)
                    h[m] = MonthActivity(report_days=bits)
                else:
                    h[m] = None
            users[f"u{u}"] = h
        assert mau_daily_fast(month, users) == mau_daily(month, users)
    assert mau_daily_fast(Month(2026, 10), {}) == mau_daily(Month(2026, 10), {})


def test_encoded_decision_message_and_in_report_equal_the_projections():
    from projections.calendar import Month
    from projections.facts import MonthActivity
    from projections.mau import in_report, months_needed
    from projections.snapshots import DecisionEncoder, decision_message, digest
    from streams.close import history_of

    rows = list(oracle(iter_events(3, 80, MONTH, seed=5), MONTH).values())
    for i, r in enumerate(rows):
        d = decision_from_row({**r, "plan": "premium" if i % 2 else ""})
        kw = {
            "version": 1 + i % 3,
            "corrects_version": i % 3 or None,
            "amend_reason": "late_event" if i % 3 else None,
            "in_report": bool(i % 2),
            "close_id": "c",
            "partition": i % 4,
            "emitted_at": "2026-11-01T00:00:00.000+00:00",
        }
        enc = DecisionEncoder(close_id="c", partition=i % 4, emitted_at="2026-11-01T00:00:00.000+00:00")
        raw, dg = enc.encode(
            d, version=kw["version"], corrects_version=kw["corrects_version"], amend_reason=kw["amend_reason"],
            in_report=kw["in_report"],
        )  # fmt: skip
        assert dg == digest(d)
        assert raw == orjson.dumps(decision_message(d, **kw))
    rng = random.Random(2)
    for ms in ("2026-10", "2026-03", "2024-03", "2026-01", "2026-02"):
        h = history_of(ms)
        month = Month.parse(ms)
        for _ in range(300):
            hist, mask = {}, 0
            for off, m in zip(h.offsets, months_needed(month), strict=True):
                bits = 0
                for _ in range(rng.randrange(0, 3)):
                    bits |= 1 << rng.randrange(m.days)
                hist[m] = MonthActivity(report_days=bits) if bits or rng.random() < 0.5 else None
                mask |= bits << off
            assert h.in_report(mask) == in_report(month, hist)
