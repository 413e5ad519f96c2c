"""The sink's estimates: one run in force per company-month, apart from billed data."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import orjson

from ledger.writer import write_batch
from projections.calendar import to_us
from projections.estimate import estimate_company
from projections.snapshots import estimate_messages
from tests.support.given import World
from tests.unit.ledger.closes import TOPIC, Stream, q

MONTH = "2026-10"


def run_of(world: World, as_of: str, estimate_id: str) -> list[dict]:
    cm, decisions = world.decide_all("acme", MONTH)
    est = estimate_company(cm, decisions, to_us(datetime.fromisoformat(as_of)))
    return estimate_messages(est, estimate_id=estimate_id, as_of=as_of, partition=0, emitted_at=as_of)


def acme(users: int) -> World:
    w = World().company("acme").billing("acme", "2026-01-01", payment_method="card", card_brand="visa")
    for i in range(users):
        w.member("acme", f"u{i}")
    return w.do("login", "acme", "u0", "2026-10-03")


def test_a_run_is_stored_with_its_company_row_and_never_as_billed_data(db):
    s = Stream()
    res = write_batch(db, s.items(run_of(acme(3), "2026-10-10T12:00:00Z", "run-1")), topic=TOPIC)
    assert res.stored["estimates"] == 3 and res.stored["estimate_invoices"] == 1
    assert q(db, "SELECT user_id, status, status_reason FROM estimates ORDER BY user_id") == [
        ("u0", "on_track", "billable_so_far"),
        ("u1", "at_risk", "awaiting_billing_activity"),
        ("u2", "at_risk", "awaiting_billing_activity"),
    ]
    head = q(
        db, "SELECT estimate_id, accounts, on_track, at_risk, not_billed, subtotal_usd, invoice FROM estimate_invoices"
    )
    assert head[0][:6] == ("run-1", 3, 1, 2, 0, Decimal("4.00"))
    assert orjson.loads(head[0][6])["lines"][0]["count"] == 1
    for table in ("snapshot_versions", "invoices", "invoice_adjustments", "month_completions"):
        assert q(db, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_a_later_run_replaces_the_earlier_one_and_an_earlier_run_arriving_late_is_ignored(db):
    s = Stream()
    first = run_of(acme(3), "2026-10-10T12:00:00Z", "run-1")
    second = run_of(acme(3).do("visit", "acme", "u1", "2026-10-12"), "2026-10-15T12:00:00Z", "run-2")
    write_batch(db, s.items(first), topic=TOPIC)
    write_batch(db, s.items(second[:2]), topic=TOPIC)  # the run split across two batches
    assert q(db, "SELECT DISTINCT estimate_id FROM estimates ORDER BY 1") == [("run-1",), ("run-2",)]
    assert q(db, "SELECT estimate_id FROM estimate_invoices") == [("run-1",)]
    write_batch(db, s.items(second[2:]), topic=TOPIC)
    assert q(db, "SELECT DISTINCT estimate_id FROM estimates") == [("run-2",)]
    assert q(db, "SELECT estimate_id, on_track FROM estimate_invoices") == [("run-2", 2)]
    write_batch(db, s.items(first), topic=TOPIC)  # a redelivery of the older run
    assert q(db, "SELECT estimate_id, on_track FROM estimate_invoices") == [("run-2", 2)]
    assert q(db, "SELECT count(*) FROM estimates WHERE estimate_id = 'run-2'") == [(3,)]


def test_a_redelivered_run_stores_nothing_twice_and_a_malformed_message_is_kept_as_a_reject(db):
    s = Stream()
    msgs = run_of(acme(2), "2026-10-10T12:00:00Z", "run-1")
    write_batch(db, s.items(msgs + msgs), topic=TOPIC)
    write_batch(db, s.items(msgs), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM estimates") == [(2,)]
    bad = {**msgs[0], "status": "probably"}
    naive = {**msgs[-1], "as_of": "2026-10-10T12:00:00"}
    res = write_batch(db, s.items([bad, naive]), topic=TOPIC)
    assert res.rejects == 2
    errors = [e for (e,) in q(db, "SELECT error FROM sink_rejects ORDER BY kafka_offset")]
    assert errors == [
        "bad estimate: unknown status 'probably'",
        "bad company_estimate: as_of '2026-10-10T12:00:00' has no UTC offset",
    ]
