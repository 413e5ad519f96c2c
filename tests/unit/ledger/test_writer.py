"""The ledger's writer: batches of snapshot messages in, versioned rows and complete months out."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import orjson

from ledger.records import parse_record
from ledger.writer import read_positions, write_batch
from projections.snapshots import (
    checksum,
    company_month_message,
    decision_message,
    dispute_applied_message,
    encode,
    partition_done_message,
)
from tests.unit.ledger.closes import MONTH, TOPIC, Stream, close_msgs, dec, invoice_json, q


def test_versions_dedup_and_amendments(db):
    s = Stream()
    d1 = dec()
    m1 = decision_message(d1, version=1, partition=0)
    r = write_batch(db, s.items([m1, m1]), topic=TOPIC)  # redelivery within a batch
    assert r.stored["snapshot_versions"] == 1 and r.duplicates["decision"] == 1
    r = write_batch(db, s.items([m1]), topic=TOPIC)  # redelivery in a later batch
    assert r.rows_written == 0 and r.duplicates["decision"] == 1
    d2 = dataclasses.replace(d1, charged=False, billable=False, reason="deactivated", unit_price_usd=Decimal("0.00"))
    write_batch(
        db, s.items([decision_message(d2, version=2, corrects_version=1, amend_reason="late_event")]), topic=TOPIC
    )
    # the dispute tool's amendment also says "version 2": the sink numbers it 3
    d3 = dataclasses.replace(d1, reason="restored")
    write_batch(
        db, s.items([decision_message(d3, version=2, corrects_version=1, amend_reason="dispute:T-9")]), topic=TOPIC
    )
    rows = q(
        db,
        "SELECT version, corrects_version, amend_reason, emitted_version, charged FROM snapshot_versions "
        "ORDER BY version",
    )
    assert rows == [(1, None, None, 1, True), (2, 1, "late_event", 2, False), (3, 2, "dispute:T-9", 2, True)]
    assert q(db, "SELECT topic, partition, next_offset FROM sink_offsets") == [(TOPIC, 0, 5)]


def test_records_below_stored_position_are_not_written_twice(db):
    s = Stream()
    items = s.items([decision_message(dec(user=f"u{i}"), version=1) for i in range(5)])
    write_batch(db, items[:3], topic=TOPIC)
    r = write_batch(db, items, topic=TOPIC)  # a restart that re-read from an older position
    assert r.already_written == 3 and r.stored["snapshot_versions"] == 2
    assert q(db, "SELECT count(*) FROM snapshot_versions") == [(5,)]
    assert read_positions(db, TOPIC) == {0: 5}


def test_half_written_month_is_invisible(db):
    s = Stream()
    p0 = [dec("c1", f"u{i}") for i in range(3)]
    p1 = [dec("c2", f"u{i}", charged=i % 2 == 0) for i in range(4)]
    msgs, dones = close_msgs(MONTH, {0: p0, 1: p1})
    # partition 1's report arrives (on another topic partition) before all of its decisions
    first = [m for m in msgs if m.get("partition") == 0] + [m for m in msgs if m.get("partition") == 1][:2]
    rest = [m for m in msgs if m.get("partition") == 1][2:]
    write_batch(db, s.items(first) + s.items(dones, kp=1), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(0,)]
    assert q(db, "SELECT partitions_reported, partitions_expected, complete FROM month_closes") == [(2, 2, False)]
    assert q(db, "SELECT count(*) FROM invoices") == [(0,)]
    r = write_batch(db, s.items(rest), topic=TOPIC)
    assert r.months_completed == [MONTH]
    assert q(db, "SELECT count(*) FROM account_decisions") == [(7,)]
    assert q(db, "SELECT count(*) FROM billable_users") == [(5,)]
    assert q(db, "SELECT complete FROM month_closes") == [(True,)]
    assert read_positions(db, TOPIC) == {0: len(msgs), 1: 2}


def test_an_amended_decision_does_not_stand_in_for_a_missing_account(db):
    s = Stream()
    u1, u2 = dec("c1", "u1"), dec("c1", "u2")
    msgs, dones = close_msgs(MONTH, {0: [u1, u2]})
    u1b = dataclasses.replace(u1, charged=False, unit_price_usd=Decimal("0.00"))
    amend = decision_message(u1b, version=2, corrects_version=1, amend_reason="late_event", partition=0)
    u2_msg = [m for m in msgs if m.get("user_id") == "u2"]
    # two rows stored (u1's versions 1 and 2) for a report of two accounts: u2 is still missing
    r = write_batch(db, s.items([m for m in msgs if m not in u2_msg] + [amend] + dones), topic=TOPIC)
    assert r.months_completed == [] and q(db, "SELECT count(*) FROM snapshot_versions") == [(2,)]
    r = write_batch(db, s.items(u2_msg), topic=TOPIC)
    assert r.months_completed == [MONTH]
    assert q(db, "SELECT billable_accounts, charged_accounts, subtotal_usd FROM invoices") == [(2, 1, Decimal("10.00"))]


def test_one_report_missing_keeps_the_month_hidden(db):
    s = Stream()
    msgs, dones = close_msgs(MONTH, {0: [dec("c1")], 1: [dec("c2")]})
    write_batch(db, s.items(msgs + dones[:1]), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(0,)]
    write_batch(db, s.items(dones[1:]), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(2,)]


def test_company_month_versions_mau_and_reconciliation(db):
    s = Stream()
    d_in, d_out = dec("c1", "u1"), dec("c1", "u2", charged=False)
    cm = company_month_message(
        invoice_json("c1", MONTH, [d_in, d_out]),
        [(date(2026, 3, 1), 5), (date(2026, 3, 2), 6)],
        partition=0,
    )
    msgs = [
        decision_message(d_in, version=1, in_report=False, partition=0),
        decision_message(d_out, version=1, in_report=True, partition=0),
        cm,
        cm,
    ]
    done = partition_done_message(
        MONTH, 0, 1, close_id="x", companies=1, accounts=2, checksum_=checksum([d_in, d_out]), counts={}
    )
    r = write_batch(db, s.items(msgs + [done]), topic=TOPIC)
    assert r.duplicates["company_month"] == 1
    assert q(db, "SELECT day::VARCHAR, mau FROM mau_daily ORDER BY day") == [("2026-03-01", 5), ("2026-03-02", 6)]
    assert q(db, "SELECT user_id, explanation FROM reconciliation ORDER BY user_id") == [
        ("u1", "invoice_only:active_full_month"),
        ("u2", "report_only:no_billing_activity"),
    ]


def test_disputes_stored_once_per_ticket(db):
    s = Stream()
    m = dispute_applied_message(
        "T-1",
        "c1",
        MONTH,
        requested_by="ann",
        applied_at="2026-04-02T10:00:00Z",
        changes=[{"user_id": "u1", "to_version": 2}],
    )
    r = write_batch(db, s.items([m, m]), topic=TOPIC)
    r2 = write_batch(db, s.items([m]), topic=TOPIC)
    assert r.stored["disputes"] == 1 and r.duplicates["dispute_applied"] == 1 and r2.duplicates["dispute_applied"] == 1
    assert orjson.loads(q(db, "SELECT changes FROM disputes")[0][0]) == [{"user_id": "u1", "to_version": 2}]


def test_bad_records_are_kept_not_fatal(db):
    items = parse_record(0, 0, b"not json") + parse_record(0, 1, b'{"kind": "nope"}')
    items += parse_record(0, 2, orjson.dumps({"kind": "decision", "company_id": "c1"}))
    items += parse_record(0, 3, b"[" + encode(decision_message(dec(), version=1)) + b", 5]")
    r = write_batch(db, items, topic=TOPIC)
    assert r.rejects == 4 and r.stored["snapshot_versions"] == 1
    assert read_positions(db, TOPIC) == {0: 4}


def test_tampered_digest_is_counted(db):
    m = decision_message(dec(), version=1)
    m["charged"] = False
    r = write_batch(db, parse_record(0, 0, encode(m)), topic=TOPIC)
    assert r.digest_mismatches == 1


def test_a_packed_record_with_one_bad_element_stores_the_others_and_rejects_that_one_alone(db):
    good = [decision_message(dec(user=f"u{i}"), version=1, partition=0) for i in range(3)]
    bad_shape = decision_message(dec(user="u-shape"), version=1) | {"version": "one"}
    bad_value = decision_message(dec(user="u-value"), version=1) | {"tier": None}
    cm = company_month_message(invoice_json("c1", MONTH, [dec()]), [], partition=0)
    record = orjson.dumps([good[0], bad_shape, good[1], bad_value, good[2], cm])
    r = write_batch(db, parse_record(0, 0, record), topic=TOPIC)
    assert r.stored["snapshot_versions"] == 3 and r.stored["company_month_versions"] == 1 and r.rejects == 2
    assert q(db, "SELECT user_id, kafka_offset FROM snapshot_versions ORDER BY user_id") == [
        ("u0", 0),
        ("u1", 0),
        ("u2", 0),
    ]
    rejects = q(db, "SELECT kafka_offset, error, raw FROM sink_rejects ORDER BY error")
    assert [(off, err) for off, err, _ in rejects] == [
        (0, "bad decision: tier must be a string"),
        (0, "version must be an integer from -2147483648 to 2147483647"),
    ]
    assert [orjson.loads(raw)["user_id"] for _, _, raw in rejects] == ["u-value", "u-shape"]  # each its own bytes
    assert read_positions(db, TOPIC) == {0: 1}


def test_a_redelivered_packed_record_stores_nothing_twice(db):
    msgs = [decision_message(dec(user=f"u{i}"), version=1, partition=0) for i in range(4)]
    record = orjson.dumps(msgs)
    first = write_batch(db, parse_record(0, 0, record), topic=TOPIC)
    again = write_batch(db, parse_record(0, 0, record), topic=TOPIC)  # a sink restart re-reading it
    resent = write_batch(db, parse_record(0, 1, record), topic=TOPIC)  # the worker sending it again
    assert first.stored["snapshot_versions"] == 4
    assert (again.already_written, again.rows_written) == (4, 0)
    assert (resent.duplicates["decision"], resent.rows_written) == (4, 0)
    assert q(db, "SELECT count(*), max(version) FROM snapshot_versions") == [(4, 1)]
    assert read_positions(db, TOPIC) == {0: 2}
