"""One tenant cannot erase another tenant's events: the dedup key is (company_id, event_id), the
same id in two companies names two events, and every path agrees on it: the streaming worker
(in-process model), the batch replay of NDJSON and of the Parquet archive, the archive reader that
verify and dispute use, and the reference fold."""

from __future__ import annotations

import orjson
import pytest

from projections.calendar import Month
from replay import verify
from replay.archive import reader
from replay.archive.writer import ArchiveWriter
from replay.month import month_from_facts, run_month
from tests.support.given import World
from tests.support.worker_oracle import diff, latest_decisions, oracle, simulate

OCT = "2026-10"


def victim_and_attacker(attacker_first: bool) -> list[dict]:
    """c1 bills ann (advanced: invited and claimed long ago) and c2 invites a guest from `home`;
    `evil`, a company nobody registered, publishes events reusing every one of their event ids
    (c2's guest invite too)."""
    w = World().company("c1", tz="Europe/Amsterdam", plan="advanced").member("c1", "ann")
    w.company("c2", plan="advanced").invite("c2", "gus", "2026-09-20", guest_home_company_id="home", event_id="g1")
    theirs = list(w.raw)
    evil = World()
    for e in theirs:
        user = {"user_id": "mallory"} if "user_id" not in e else {}
        kind = "login" if e["type"] in ("company_registered", "plan_changed") else e["type"]
        evil.event(kind, "evil", "2026-09-01T00:00:00Z", **(e | user | {"type": kind, "company_id": "evil"}))
    return evil.raw + theirs if attacker_first else theirs + evil.raw


def batch_rows(result) -> dict:
    return {
        (d.company_id, d.user_id, d.month): d.row() | {"unit_price_usd": str(d.unit_price_usd)}
        for d in result.decisions
    }


@pytest.mark.parametrize("attacker_first", [True, False], ids=["attacker first", "victim first"])
def test_reused_ids_erase_nothing_and_every_path_bills_alike(tmp_path, attacker_first):
    events = victim_and_attacker(attacker_first)
    expected = oracle(events, OCT)
    ann = expected[("c1", "ann", OCT)]
    assert (ann["billable"], ann["charged"], ann["unit_price_usd"]) == (True, True, "6.00")
    assert ("evil", "mallory", OCT) in expected

    streamed, dead, _ = simulate([orjson.dumps(e) for e in events], OCT)
    assert dead == [] and diff(expected, latest_decisions(streamed)) == []

    nd = tmp_path / "events.ndjson"
    nd.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    from_ndjson = run_month(str(nd), OCT, with_mau=False)
    assert from_ndjson.loaded is not None and from_ndjson.loaded.conflict_count == 0
    assert diff(expected, batch_rows(from_ndjson)) == []

    root = tmp_path / "archive"
    writer = ArchiveWriter(root, "events", clock=lambda: 1_790_000_000_000_000)
    writer.open_partition(0)
    for i, e in enumerate(events):
        writer.add(0, i, orjson.dumps(e), 1_780_000_000_000_000 + i)
    writer.flush()
    assert diff(expected, batch_rows(run_month(str(root), OCT, with_mau=False))) == []

    facts, n = verify.archive_facts(root, Month(2026, 11))  # what verify recomputes from
    assert n == len(events)
    assert diff(expected, batch_rows(month_from_facts(facts, Month(2026, 10), with_mau=False))) == []
    own = reader.read_company_rows(root, "c1", Month(2026, 11))  # what dispute reads
    assert sorted(r["event_id"] for r in own) == sorted(e["event_id"] for e in events if e["company_id"] == "c1")


def test_the_home_company_keeps_both_guest_invites_that_share_an_id():
    events = victim_and_attacker(attacker_first=True)
    from projections.facts import fold_all
    from schemas.decode import validate_event

    home = fold_all([validate_event(e) for e in events]).company("home")
    assert sorted(r.get("company_id") for r in home.guest_invites.values()) == ["c2", "evil"]
